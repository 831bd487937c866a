"""The viewing world: users with latent tastes, a title catalog, watch events and a click model.

How a user picks what to watch (the ground truth every recommender tries to recover):

    logit(u, i) = TASTE_SCALE * user_factors[u] · item_factors[i]                (latent taste)
                + GENRE_SCALE * n_genres * mean of user_genre_pref[u] over i's genres  (genre taste)
                + item_bias[i]                         (long-tailed appeal + a boost for new titles)

and -inf for titles above the profile's maturity limit. A user's titles are a draw without
replacement from softmax(logit(u, ·)) (Gumbel top-k), so taste, popularity and recency all shape
what is watched. Latent factors are built from genre vectors plus noise: genres carry part of the
taste (content-based methods can learn something) and the rest is only visible in co-watching
(collaborative methods learn more). Each watch gets a time: uniform over the window for titles
released before it, an exponential burst after the release for titles released inside it (what
`trending` later detects), at an evening-heavy hour of the day. The last `holdout_days` are the
held-out future.

The click model that A/B simulations use is `click_probability` (formula in its docstring).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.common.arrays import FloatArray, IntArray
from services.designs import model_features
from services.trainer.worlds import Frames

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family",
    "Fantasy", "Horror", "Musical", "Mystery", "Reality", "Romance", "Science Fiction",
    "Thriller", "War", "Western",
)
# How common each genre is in the catalog (relative), and its typical maturity level (0 = G).
_GENRE_FREQUENCY = (9, 5, 4, 10, 6, 4, 12, 4, 4, 5, 1.5, 4, 2, 6, 4, 7, 1.5, 1)
_GENRE_MATURITY = (2.6, 1.8, 0.6, 1.8, 3.2, 1.2, 2.4, 0.4, 1.6, 3.3, 0.8, 2.5, 1.7, 2.0, 2.2,
                   3.0, 3.1, 2.3)
_KIDS_GENRES = ("Animation", "Family", "Adventure", "Comedy", "Fantasy", "Musical")

MATURITY_RATINGS = model_features.MATURITY_RATINGS  # a title's maturity level is its index there

PROFILES: dict[str, int] = {"kids": 1, "teen": 2, "adult": 4}
"""Profile kind -> the highest maturity level it may watch (kids: up to PG, teen: up to PG-13)."""

TASTE_SCALE = 1.0
GENRE_SCALE = 0.5
POSITION_BIAS_ETA = 0.8
"""Examination probability of slot p (0 = top) is (1 + p) ** -POSITION_BIAS_ETA."""
CLICK_OFFSET_QUANTILE = 0.995
CLICK_OFFSET_MARGIN = 1.0

_ADJECTIVES = (
    "Silent", "Crimson", "Hidden", "Last", "Broken", "Golden", "Midnight", "Frozen", "Wild",
    "Distant", "Burning", "Secret", "Hollow", "Electric", "Savage", "Gentle", "Lost", "Iron",
    "Velvet", "Restless", "Endless", "Shattered", "Northern", "Quiet", "Fearless", "Little",
    "Forgotten", "Brave", "Dark", "Lucky",
)
_NOUNS = (
    "Harbor", "Protocol", "Kingdom", "Signal", "Garden", "Empire", "River", "Frontier", "Mirror",
    "Horizon", "Witness", "Orchard", "Circuit", "Lantern", "Tide", "Summit", "Voyage", "Detective",
    "Dragon", "Academy", "Station", "Island", "Heist", "Letter", "Storm", "Promise", "Machine",
    "Carnival", "Outlaw", "Planet",
)


@dataclass(frozen=True)
class ViewingConfig:
    """Everything that decides a viewing world; the same config always gives the same world."""

    seed: int = 42
    n_users: int = 6_000
    n_titles: int = 2_500
    days: int = 84                      # the observed window; its last holdout_days are the future
    holdout_days: int = 7
    start: datetime = datetime(2026, 8, 3, tzinfo=UTC)
    latent_dim: int = 16
    median_watches: float = 24.0        # per user over the window; log-normal, so a long tail
    max_watches: int = 300
    kids_share: float = 0.10
    teen_share: float = 0.08
    new_release_share: float = 0.06     # titles released inside the window (bursts for trending)
    popularity_sd: float = 1.1          # sd of the log-appeal of titles: the popularity long tail
    recency_boost: float = 1.0          # extra logit for a brand-new title, decaying over 2 years

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    @property
    def split(self) -> datetime:
        """Events at or after this instant are the held-out future."""
        return self.end - timedelta(days=self.holdout_days)


@dataclass(frozen=True)
class LatentTruth:
    """The generator's hidden state, kept so that simulated users behave as they were drawn."""

    user_factors: FloatArray          # [n_users, latent_dim]
    item_factors: FloatArray          # [n_titles, latent_dim]
    user_genre_pref: FloatArray       # [n_users, n_genres], rows sum to 1
    item_genres: FloatArray           # [n_titles, n_genres] multi-hot
    item_bias: FloatArray             # [n_titles]
    click_offset: float               # logit at which an examined title is clicked half the time


@dataclass
class ViewingWorld(Frames):
    """A generated world: three frames and the latent truth. Row i of users is u{i}, of titles t{i}.

    users:        user_id, profile (kids | teen | adult), max_maturity (highest level allowed)
    titles:       content_id, title, genres ("Crime|Drama", names from GENRES), release_date
                  (UTC), release_year, maturity_rating (MATURITY_RATINGS), maturity_level,
                  kind (movie | series), runtime_minutes
    interactions: event_id, user_id, content_id, timestamp (UTC, sorted), watch_seconds,
                  completed, rating (1-5, or <NA> when the user did not rate)
    """

    config: ViewingConfig
    users: pd.DataFrame
    titles: pd.DataFrame
    interactions: pd.DataFrame
    truth: LatentTruth

    @property
    def genres(self) -> tuple[str, ...]:
        """The genre vocabulary: column order of every multi-hot built from `titles`."""
        return GENRES

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def split(self) -> datetime:
        return self.config.split

    @property
    def holdout_days(self) -> int:
        return self.config.holdout_days



def user_id_of(row: int) -> str:
    """The id of the user in row `row` of the users frame: u0, u1, ..."""
    return f"u{row}"


def content_id_of(row: int) -> str:
    """The id of the title in row `row` of the titles frame: t0, t1, ..."""
    return f"t{row}"


# --- Generation --------------------------------------------------------------------------------


def generate_viewing(config: ViewingConfig = ViewingConfig()) -> ViewingWorld:
    """Draw a whole world from `config.seed`: catalog, users, tastes and watch events."""
    rng = np.random.default_rng(config.seed)
    titles, item_genres = _generate_titles(config, rng)
    users, user_genre_pref = _generate_users(config, rng)
    genre_vectors = rng.normal(0.0, 1.0, (len(GENRES), config.latent_dim))
    item_factors = _factors_from_genres(item_genres, genre_vectors, rng, noise=0.8)
    user_factors = _factors_from_genres(user_genre_pref, genre_vectors, rng, noise=0.8)
    age_years = (config.end - titles["release_date"]).dt.days.to_numpy() / 365.25
    appeal = rng.normal(0.0, config.popularity_sd, config.n_titles)
    item_bias = appeal + config.recency_boost * np.exp(-age_years / 2.0)
    truth = LatentTruth(user_factors, item_factors, user_genre_pref, item_genres, item_bias,
                        click_offset=np.nan)  # known once the logits have been drawn
    allowed = _maturity_allowed(users, titles)
    interactions, click_offset = _generate_interactions(config, truth, allowed, titles, rng)
    truth = replace(truth, click_offset=click_offset)
    return ViewingWorld(config, users, titles, interactions, truth)


def _generate_titles(
    config: ViewingConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, FloatArray]:
    n = config.n_titles
    genre_p = np.asarray(_GENRE_FREQUENCY) / np.sum(_GENRE_FREQUENCY)
    n_genres = rng.choice([1, 2, 3], size=n, p=[0.35, 0.45, 0.20])
    # Gumbel top-k: each title's genres are a weighted draw without replacement.
    keys = np.log(genre_p)[None, :] + rng.gumbel(size=(n, len(GENRES)))
    order = np.argsort(-keys, axis=1)
    multi_hot = np.zeros((n, len(GENRES)))
    picked = np.arange(len(GENRES))[None, :] < n_genres[:, None]
    np.put_along_axis(multi_hot, order, picked.astype(float), axis=1)

    mean_maturity = multi_hot @ np.asarray(_GENRE_MATURITY) / n_genres
    maturity = np.clip(np.rint(mean_maturity + rng.normal(0.0, 0.7, n)), 0, 4).astype(np.int64)

    new = rng.random(n) < config.new_release_share
    last_release_day = config.days - config.holdout_days - 1
    days_before_start = np.minimum(rng.exponential(8 * 365.25, n), 66 * 365.25)
    release_day = np.where(new, rng.uniform(0, last_release_day, n), -days_before_start)
    release = pd.Timestamp(config.start) + pd.to_timedelta(np.floor(release_day), unit="D")

    is_series = rng.random(n) < 0.35
    runtime = np.where(is_series, rng.integers(22, 61, n), rng.integers(80, 151, n))
    titles = pd.DataFrame({
        "content_id": [content_id_of(i) for i in range(n)],
        "title": _title_names(rng, n),
        "genres": ["|".join(GENRES[g] for g in np.flatnonzero(row)) for row in multi_hot],
        "release_date": release,
        "release_year": release.year.astype(np.int64),
        "maturity_rating": np.asarray(MATURITY_RATINGS)[maturity],
        "maturity_level": maturity,
        "kind": np.where(is_series, "series", "movie"),
        "runtime_minutes": runtime.astype(np.int64),
    })
    return titles, multi_hot


def _title_names(rng: np.random.Generator, n: int) -> list[str]:
    adjectives = rng.integers(0, len(_ADJECTIVES), n)
    nouns = rng.integers(0, len(_NOUNS), (n, 2))
    patterns = rng.integers(0, 4, n)
    names: list[str] = []
    seen: dict[str, int] = {}
    for adj, (noun, other), pattern in zip(adjectives, nouns, patterns, strict=True):
        a, b, c = _ADJECTIVES[adj], _NOUNS[noun], _NOUNS[other]
        name = (f"The {a} {b}", f"{a} {b}", f"{b} of the {a} {c}", f"{c} and the {a} {b}")[pattern]
        seen[name] = seen.get(name, 0) + 1
        # A repeated name becomes a sequel, as catalogs do.
        names.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return names


def _generate_users(
    config: ViewingConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, FloatArray]:
    n = config.n_users
    draw = rng.random(n)
    profile = np.where(draw < config.kids_share, "kids",
                       np.where(draw < config.kids_share + config.teen_share, "teen", "adult"))
    # Sparse Dirichlet: most users love a few genres. Kids lean towards family genres.
    alpha = np.full((n, len(GENRES)), 0.25)
    kids_columns = [GENRES.index(g) for g in _KIDS_GENRES]
    alpha[np.ix_(profile == "kids", kids_columns)] = 1.5
    pref = rng.gamma(alpha)
    pref /= pref.sum(axis=1, keepdims=True)
    users = pd.DataFrame({
        "user_id": [user_id_of(i) for i in range(n)],
        "profile": profile,
        "max_maturity": np.asarray([PROFILES[p] for p in profile], dtype=np.int64),
    })
    return users, pref


def _factors_from_genres(
    weights: FloatArray, genre_vectors: FloatArray, rng: np.random.Generator, noise: float
) -> FloatArray:
    """Genre-driven factors plus idiosyncratic noise, each part with unit variance per dim."""
    norm = np.sqrt((weights**2).sum(axis=1, keepdims=True))
    from_genres = weights @ genre_vectors / np.maximum(norm, 1e-12)
    mixed = from_genres + noise * rng.normal(0.0, 1.0, from_genres.shape)
    scaled: FloatArray = mixed / np.sqrt((1.0 + noise**2) * genre_vectors.shape[1] ** 0.5)
    return scaled


def _maturity_allowed(users: pd.DataFrame, titles: pd.DataFrame) -> npt.NDArray[np.bool_]:
    limit = users["max_maturity"].to_numpy()[:, None]
    allowed: npt.NDArray[np.bool_] = titles["maturity_level"].to_numpy()[None, :] <= limit
    return allowed


def true_logits(truth: LatentTruth, user_rows: IntArray, item_rows: IntArray | None = None
                ) -> FloatArray:
    """logit(u, i) of the module docstring for the given users and titles (all titles if None)."""
    items = slice(None) if item_rows is None else item_rows
    taste = truth.user_factors[user_rows] @ truth.item_factors[items].T
    genres = truth.item_genres[items]
    genre_mean = truth.user_genre_pref[user_rows] @ genres.T / genres.sum(axis=1)
    logits: FloatArray = (TASTE_SCALE * taste + GENRE_SCALE * len(GENRES) * genre_mean
                          + truth.item_bias[items][None, :])
    return logits


def _generate_interactions(
    config: ViewingConfig,
    truth: LatentTruth,
    allowed: npt.NDArray[np.bool_],
    titles: pd.DataFrame,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, float]:
    n_users = config.n_users
    n_watches = np.rint(config.median_watches * rng.lognormal(0.0, 0.8, n_users)).astype(np.int64)
    # At most half of what the profile may watch, so a small catalog still leaves choices open.
    most = np.maximum(np.minimum(config.max_watches, allowed.sum(axis=1) // 2), 1)
    n_watches = np.clip(n_watches, np.minimum(3, most), most)
    users_out, items_out, z_out = [], [], []
    offsets: list[FloatArray] = []
    for lo in range(0, n_users, 1_000):
        rows = np.arange(lo, min(lo + 1_000, n_users))
        logits = np.where(allowed[rows], true_logits(truth, rows), -np.inf)
        finite = np.where(allowed[rows], logits, np.nan)
        mean = np.nanmean(finite, axis=1, keepdims=True)
        sd = np.nanstd(finite, axis=1, keepdims=True)
        offsets.append(np.nanquantile(finite, CLICK_OFFSET_QUANTILE, axis=1))
        order = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1)
        take = np.arange(logits.shape[1])[None, :] < n_watches[rows][:, None]
        user_of = np.broadcast_to(rows[:, None], order.shape)[take]
        item_of = order[take]
        users_out.append(user_of)
        items_out.append(item_of)
        z_out.append(((logits - mean) / sd)[user_of - lo, item_of])
    user_rows = np.concatenate(users_out)
    item_rows = np.concatenate(items_out)
    # How much a user likes a title relative to the other titles they chose: drives completion
    # and stars (everything chosen is liked more than the catalog's average).
    z = np.concatenate(z_out)
    z = (z - z.mean()) / z.std()
    click_offset = float(np.median(np.concatenate(offsets))) + CLICK_OFFSET_MARGIN

    times = _watch_times(config, titles, item_rows, rng)
    runtime = titles["runtime_minutes"].to_numpy()[item_rows] * 60
    completed = rng.random(len(z)) < _sigmoid(0.8 + 1.0 * z)
    fraction = np.where(completed, rng.uniform(0.92, 1.0, len(z)), rng.uniform(0.05, 0.9, len(z)))
    rated = rng.random(len(z)) < 0.3
    stars = np.clip(np.rint(3.3 + 0.8 * z + np.where(completed, 0.3, -0.8)
                            + rng.normal(0.0, 0.7, len(z))), 1, 5)
    frame = pd.DataFrame({
        "user_id": pd.Series(user_rows).map(user_id_of),
        "content_id": pd.Series(item_rows).map(content_id_of),
        "timestamp": pd.to_datetime(times, unit="s", utc=True).astype("datetime64[ns, UTC]"),
        "watch_seconds": np.rint(fraction * runtime).astype(np.int64),
        "completed": completed,
        "rating": pd.array(np.where(rated, stars, np.nan), dtype="Int8"),
    })
    frame = frame.sort_values(["timestamp", "user_id", "content_id"], kind="stable")
    frame.insert(0, "event_id", [f"w{i}" for i in range(len(frame))])
    return frame.reset_index(drop=True), click_offset


def _watch_times(
    config: ViewingConfig, titles: pd.DataFrame, item_rows: IntArray, rng: np.random.Generator
) -> FloatArray:
    """Unix seconds: uniform days for old titles, a post-release burst for new ones."""
    n = len(item_rows)
    start_s = config.start.timestamp()
    release_s = titles["release_date"].astype("int64").to_numpy() / 1e9
    release_day = (release_s[item_rows] - start_s) / 86_400.0
    uniform_day = rng.uniform(0.0, config.days, n)
    burst_day = release_day + rng.exponential(10.0, n)
    late = burst_day >= config.days
    burst_day = np.where(late, rng.uniform(np.maximum(release_day, 0.0), config.days), burst_day)
    day = np.floor(np.where(release_day > 0.0, burst_day, uniform_day))
    # Evening-heavy viewing: hour weights peak at 20:00-22:00.
    hour_weight = 1.0 + 4.0 * np.exp(-0.5 * ((np.arange(24) - 21.0) / 2.5) ** 2)
    hour_weight[:6] *= 0.4
    hour = rng.choice(24, size=n, p=hour_weight / hour_weight.sum())
    seconds = start_s + day * 86_400.0 + hour * 3_600.0 + rng.uniform(0.0, 3_600.0, n)
    # Whole seconds, never before the release (a burst starts at the release instant).
    released = start_s + np.maximum(release_day, 0.0) * 86_400.0
    whole: FloatArray = np.floor(np.maximum(seconds, released))
    return whole


def taste_shifted(world: ViewingWorld, since: datetime, genres: tuple[str, ...],
                  weight: float, seed: int = 0) -> ViewingWorld:
    """A drift scenario: from `since` on, every user's genre taste moves `weight` of the way to
    `genres` (a craze: a hit series' genres), and the watches after `since` are drawn again from
    the moved tastes. The same users watch as often and at the same instants, each title at
    most once (titles watched before `since` stay watched); who completed or rated what is
    kept, only which title changes. A ranker trained before the shift meets users whose recent
    history and candidates it has not seen (make drift-recs, benchmarks/recs_drift_scenario.py).
    """
    if not 0 < weight <= 1:
        raise ValueError(f"a taste shift's weight must be in (0, 1], got {weight}")
    unknown = sorted(set(genres) - set(GENRES))
    if not genres or unknown:
        raise ValueError(f"a taste shift needs genres of the vocabulary; unknown: {unknown}")
    target = np.zeros(len(GENRES))
    target[[GENRES.index(g) for g in genres]] = 1.0 / len(genres)
    truth = world.truth
    shifted = replace(truth, user_genre_pref=(1 - weight) * truth.user_genre_pref
                      + weight * target[None, :])
    frame = world.interactions
    user_rows = frame["user_id"].str.slice(1).astype(np.int64).to_numpy()
    item_rows = frame["content_id"].str.slice(1).astype(np.int64).to_numpy()
    after = (frame["timestamp"] >= pd.Timestamp(since)).to_numpy()
    allowed = _maturity_allowed(world.users, world.titles)
    released = world.titles["release_date"].astype("int64").to_numpy()
    seconds = frame["timestamp"].astype("int64").to_numpy()
    rng = np.random.default_rng(seed)
    new_items = item_rows.copy()
    for user in np.unique(user_rows[after]):
        mine = np.flatnonzero(user_rows == user)         # the frame is in time order
        open_ = allowed[user].copy()
        open_[item_rows[mine[~after[mine]]]] = False      # watched before the shift
        # One Gumbel draw a user, then each watch takes the best open title already released
        # at its instant: a draw without replacement from softmax(logits), as generated.
        noisy = true_logits(shifted, np.array([user]))[0] + rng.gumbel(size=len(open_))
        for event in mine[after[mine]]:
            choice = np.where(open_ & (released <= seconds[event]), noisy, -np.inf)
            best = int(np.argmax(choice))
            if np.isfinite(choice[best]):
                new_items[event], open_[best] = best, False
            else:
                new_items[event] = -1                     # nothing left to watch: dropped
    kept = new_items >= 0
    interactions = frame.assign(content_id=pd.Series(new_items).map(content_id_of))[kept]
    return replace(world, interactions=interactions.reset_index(drop=True), truth=shifted)


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


# --- Click model -------------------------------------------------------------------------------


def click_probability(
    world: ViewingWorld, user_id: str, content_ids: Any, positions: Any
) -> FloatArray:
    """P(click) for titles shown to a user at 0-based slots (position-based click model).

        P(click | u, i, p) = (1 + p) ** -POSITION_BIAS_ETA * sigmoid(logit(u, i) - click_offset)

    The first factor is the chance the slot is looked at; the second is how attractive the title
    is to this user (the generator's own logit; click_offset is the median over users of their
    99.5th-percentile logit plus CLICK_OFFSET_MARGIN). Titles above the profile's maturity limit
    are never clicked. Deterministic; `simulate_clicks` draws from it.
    """
    user = world.user_rows([user_id])
    items = world.title_rows(content_ids)
    slots = np.asarray(positions, dtype=np.float64).reshape(-1)
    if slots.shape != items.shape:
        raise ValueError("content_ids and positions must have the same length")
    if (slots < 0).any():
        raise ValueError("positions are 0-based slots and cannot be negative")
    logits = true_logits(world.truth, user, items)
    probability: FloatArray = _click(world, logits, user[:, None], items[None, :], slots)[0]
    return probability


def expected_clicks(world: ViewingWorld, user_rows: IntArray, lists: IntArray) -> FloatArray:
    """Expected clicks on each user's list (title rows, best first, -1 for an empty slot)."""
    slots = np.arange(lists.shape[1], dtype=np.float64)
    totals = np.zeros(len(user_rows))
    for lo in range(0, len(user_rows), 1_000):  # chunks: one logit row per user and title
        users = user_rows[lo: lo + 1_000]
        shown = np.where(lists[lo: lo + 1_000] >= 0, lists[lo: lo + 1_000], 0)
        logits = np.take_along_axis(true_logits(world.truth, users), shown, axis=1)
        p = _click(world, logits, users[:, None], shown, slots)
        totals[lo: lo + 1_000] = (p * (lists[lo: lo + 1_000] >= 0)).sum(axis=1)
    return totals


def _click(world: ViewingWorld, logits: FloatArray, user_rows: IntArray, item_rows: IntArray,
           slots: FloatArray) -> FloatArray:
    attractive = _sigmoid(logits - world.truth.click_offset)
    examined = (1.0 + slots) ** -POSITION_BIAS_ETA
    limit = world.users["max_maturity"].to_numpy()[user_rows]
    allowed = world.titles["maturity_level"].to_numpy()[item_rows] <= limit
    probability: FloatArray = np.where(allowed, examined * attractive, 0.0)
    return probability


def simulate_clicks(
    world: ViewingWorld, user_id: str, content_ids: Any, positions: Any, rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """One draw of the click model: the same rng state gives the same clicks."""
    p = click_probability(world, user_id, content_ids, positions)
    clicks: npt.NDArray[np.bool_] = rng.random(len(p)) < p
    return clicks


# --- Persistence -------------------------------------------------------------------------------


def save(world: ViewingWorld, directory: Path) -> None:
    """Frames as parquet, latent truth as npz, config as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    world.users.to_parquet(directory / "users.parquet", index=False)
    world.titles.to_parquet(directory / "titles.parquet", index=False)
    world.interactions.to_parquet(directory / "interactions.parquet", index=False)
    truth = world.truth
    np.savez(directory / "truth.npz", user_factors=truth.user_factors,
             item_factors=truth.item_factors, user_genre_pref=truth.user_genre_pref,
             item_genres=truth.item_genres, item_bias=truth.item_bias,
             click_offset=np.float64(truth.click_offset))
    config = asdict(world.config) | {"start": world.config.start.isoformat()}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load(directory: Path) -> ViewingWorld:
    raw = json.loads((directory / "config.json").read_text())
    known = {f.name for f in fields(ViewingConfig)}
    config = ViewingConfig(**({k: v for k, v in raw.items() if k in known}
                              | {"start": datetime.fromisoformat(raw["start"])}))
    with np.load(directory / "truth.npz") as arrays:
        truth = LatentTruth(arrays["user_factors"], arrays["item_factors"],
                            arrays["user_genre_pref"], arrays["item_genres"],
                            arrays["item_bias"], float(arrays["click_offset"]))
    return ViewingWorld(
        config,
        pd.read_parquet(directory / "users.parquet"),
        pd.read_parquet(directory / "titles.parquet"),
        pd.read_parquet(directory / "interactions.parquet"),
        truth,
    )
