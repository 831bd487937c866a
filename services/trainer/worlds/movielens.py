"""MovieLens 100k as a world the recommendation trainer reads: real users, titles and ratings.

The data are GroupLens's (F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and
Context", ACM TiiS 5(4), 2015). Their terms forbid redistributing it, so the repository holds none:
the files are read at run time from the `recbole` wheel (`make setup` installs it with --no-deps,
so without torch), which ships them as RecBole atomic files under dataset_example/ml-100k:

    ml-100k.inter  user_id  item_id  rating (1-5)  timestamp (unix seconds)    100,000 rows
    ml-100k.item   item_id  movie_title  release_year  class (genres, space-separated)  1,682
    ml-100k.user   user_id  age  gender  occupation  zip_code                    943

How MovieLens becomes a viewing world (each choice is neutral where MovieLens is silent):
- ids are MovieLens's own, as opaque strings: users "1".."943", titles "1".."1682";
- every rating is a watch at the rating's time; a rating of COMPLETED_RATING (4) or more counts as
  a completed watch (taste weight 1), a lower one as a partial watch (0.5), the same two weights
  the synthetic world's completed flag gives;
- genres are MovieLens's 19 flags, "unknown" included, in u.item's column order (GENRES);
- a release date is 1 January of the release year (u.item's dates are almost all 1 January; the
  wheel keeps only the year); the one title with no year ("unknown", item 267) gets the catalog's
  median year;
- MovieLens has no certificates: every title gets maturity level 0 and every user the highest
  limit (4), so no maturity filter removes anything, and the maturity part of the content vectors
  is the same for every title (it carries no signal, as it should not);
- a title is named as MovieLens names it, "Toy Story (1995)": the year tells apart remakes that
  share a name (Cape Fear 1962 and 1991).

The split is a global time cut (see `MovieLensWorld.split`).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from services.trainer.worlds import Frames

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
"""MovieLens's 19 genre flags, in the column order of u.item."""

PACKAGE = "recbole"
PACKAGE_PIN = "recbole==1.2.1"
DATA_DIR = Path("dataset_example") / "ml-100k"
COMPLETED_RATING = 4
TITLE_MATURITY = 0        # no certificate known: the lowest level, so no limit ever removes it
USER_MAX_MATURITY = 4     # and every user may see every level
HOLDOUT_DAYS = 56
"""Validation and test windows of 8 weeks each (history: the first ~103 days). Two thirds of
MovieLens 100k's users rate everything within one day, so a global cut evaluates only users active
on both sides of it: 4-week windows leave 80 such users, 8-week windows 129, longer ones no more
(while the history shrinks)."""
SEED = 42
_MISSING = {"unknown", "unkonwn", ""}  # how the wheel spells the one missing title and year
_YEAR_IN_NAME = re.compile(r"\((\d{4})\)\s*$")


class MovieLensNotInstalled(FileNotFoundError):
    """The data files are not where the wheel puts them."""


def data_directory() -> Path:
    """The installed wheel's ml-100k directory (the package is located, never imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MovieLensNotInstalled(
            f"MovieLens 100k is read from the {PACKAGE} wheel: install it with "
            f"`.venv/bin/pip install --no-deps {PACKAGE_PIN}` (make setup does)")
    directory = Path(next(iter(spec.submodule_search_locations))) / DATA_DIR
    if not (directory / "ml-100k.inter").is_file():
        raise MovieLensNotInstalled(f"no ml-100k.inter in {directory}")
    return directory


@dataclass
class MovieLensWorld(Frames):
    """MovieLens 100k as three frames, the columns of `WatchWorld` plus MovieLens's own.

    users:        user_id, max_maturity, age, gender, occupation, zip_code
    titles:       content_id, title, genres, release_date, release_year, maturity_level
    interactions: event_id, user_id, content_id, timestamp (UTC, sorted), rating, completed
    """

    users: pd.DataFrame
    titles: pd.DataFrame
    interactions: pd.DataFrame
    holdout_days: int = HOLDOUT_DAYS
    seed: int = SEED

    @property
    def genres(self) -> tuple[str, ...]:
        return GENRES

    @property
    def end(self) -> datetime:
        """Midnight UTC after the last rating: the windows are whole days back from it."""
        last = pd.Timestamp(self.interactions["timestamp"].max())
        end: datetime = (last.floor("D") + pd.Timedelta(days=1)).to_pydatetime()
        return end

    @property
    def split(self) -> datetime:
        """A global time cut: ratings at or after it are the held-out future.

        A global cut rather than leave-last-n-out per user, because it is what the service lives
        through: the models, popularity and trending are all as of one instant, and nothing a
        user rated after it (nor anyone else's later ratings) leaks into training.
        """
        return self.end - timedelta(days=self.holdout_days)



def read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file: tab-separated, header cells "name:type"; every cell read as text."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [str(c).split(":", 1)[0] for c in frame.columns]
    return frame


def load_movielens(directory: Path | None = None, holdout_days: int = HOLDOUT_DAYS
                   ) -> MovieLensWorld:
    """MovieLens 100k from `directory` (default: the installed wheel's) as a MovieLensWorld."""
    directory = data_directory() if directory is None else directory
    titles = _titles(read_atomic(directory / "ml-100k.item"))
    users = _users(read_atomic(directory / "ml-100k.user"))
    interactions = _interactions(read_atomic(directory / "ml-100k.inter"))
    for column, known, kind in (("user_id", users["user_id"], "users"),
                                ("content_id", titles["content_id"], "titles")):
        stray = ~interactions[column].isin(known)
        if stray.any():
            raise ValueError(f"{int(stray.sum())} ratings name {kind} missing from the files, "
                             f"e.g. {interactions.loc[stray, column].iloc[0]!r}")
    return MovieLensWorld(users, titles, interactions, holdout_days=holdout_days)


def _titles(items: pd.DataFrame) -> pd.DataFrame:
    names, years = zip(*(_name_and_year(n, y) for n, y in
                         zip(items["movie_title"], items["release_year"], strict=True)),
                       strict=True)
    known = pd.Series(years, dtype="Int64")
    filled = known.fillna(int(known.median())).astype(np.int64)
    return pd.DataFrame({
        "content_id": items["item_id"].to_numpy(dtype=str),
        "title": [n if y is None else f"{n} ({y})" for n, y in zip(names, years, strict=True)],
        "genres": [_genres(text) for text in items["class"]],
        "release_date": pd.to_datetime(filled.astype(str) + "-01-01", utc=True),
        "release_year": filled.to_numpy(),
        "maturity_level": np.full(len(items), TITLE_MATURITY, dtype=np.int64),
    })


def _name_and_year(name: str, year: str) -> tuple[str, int | None]:
    """The wheel moved the year out of the name; once (item 1412, a "(V)" video) it did not."""
    name, year = name.strip(), year.strip()
    if name in _MISSING:
        name = "unknown"
    if year.isdigit():
        return name, int(year)
    found = _YEAR_IN_NAME.search(name)
    if found:
        return name[: found.start()].rstrip(), int(found.group(1))
    return name, None


def _genres(text: str) -> str:
    names = text.split()
    unknown = sorted(set(names) - set(GENRES))
    if unknown:
        raise ValueError(f"genres outside MovieLens's 19: {unknown}")
    # Vocabulary order, whatever order the file lists them in; no genre at all is "unknown".
    return "|".join(g for g in GENRES if g in names) or "unknown"


def _users(users: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": users["user_id"].to_numpy(dtype=str),
        "max_maturity": np.full(len(users), USER_MAX_MATURITY, dtype=np.int64),
        "age": pd.to_numeric(users["age"]).astype(np.int64),
        "gender": users["gender"].to_numpy(dtype=str),
        "occupation": users["occupation"].to_numpy(dtype=str),
        "zip_code": users["zip_code"].to_numpy(dtype=str),
    })


def _interactions(inter: pd.DataFrame) -> pd.DataFrame:
    rating = pd.to_numeric(inter["rating"]).astype(np.int64)
    seconds = pd.to_numeric(inter["timestamp"]).astype(np.int64)
    frame = pd.DataFrame({
        "user_id": inter["user_id"].to_numpy(dtype=str),
        "content_id": inter["item_id"].to_numpy(dtype=str),
        "timestamp": pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[ns, UTC]"),
        "rating": rating.astype(np.int8),
        "completed": (rating >= COMPLETED_RATING).to_numpy(),
    })
    frame = frame.sort_values(["timestamp", "user_id", "content_id"], kind="stable")
    frame.insert(0, "event_id", [f"ml100k-{i}" for i in range(len(frame))])
    return frame.reset_index(drop=True)


def save(world: MovieLensWorld, directory: Path) -> None:
    """The three frames as parquet (under .state: derived data stays out of the repository)."""
    directory.mkdir(parents=True, exist_ok=True)
    world.users.to_parquet(directory / "users.parquet", index=False)
    world.titles.to_parquet(directory / "titles.parquet", index=False)
    world.interactions.to_parquet(directory / "interactions.parquet", index=False)
