"""MovieLens 100k as a world: the loader on tiny files in its format, the trainer, the real data."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from services.trainer import pipeline
from services.trainer import recs_models as rm
from services.trainer.recs import (
    ALGORITHMS,
    OFFLINE_LISTS_FILE,
    RecsTrainingResult,
    train_recommendations,
)
from services.trainer.worlds import movielens
from services.trainer.worlds.movielens import GENRES, MovieLensWorld, load_movielens

DAY = 86_400
START = 874_724_710  # MovieLens 100k's first rating, 1997-09-20
FAMILY_GENRES = ("Animation Children's Comedy", "Children's Musical", "Animation Comedy")
ADULT_GENRES = ("Crime Film-Noir Thriller", "Drama War", "Sci-Fi Thriller", "Horror")


def write_fixture(directory: Path, n_users: int = 60, n_items: int = 40, seed: int = 3) -> Path:
    """RecBole atomic files shaped like the wheel's ml-100k, including its two odd rows."""
    rng = np.random.default_rng(seed)
    item_lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for item in range(1, n_items + 1):
        genres = (FAMILY_GENRES if item % 2 else ADULT_GENRES)[item % 3]
        item_lines.append(f"{item}\tMovie {item}, The\t{1990 + item % 9}\t{genres}")
    item_lines[3] = "3\tunkonwn\tunkonwn\tunknown"
    item_lines[4] = "4\tLand Before Time III (1995)\tV\tAnimation Children's"
    user_lines = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    user_lines += [f"{u}\t{20 + u % 40}\t{'MF'[u % 2]}\tother\t{10000 + u}"
                   for u in range(1, n_users + 1)]
    inter_lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for user in range(1, n_users + 1):
        family = user % 2 == 1  # two tastes, so collaborative filtering has something to find
        pool = [i for i in range(1, n_items + 1) if (i % 2 == 1) == family]
        items = rng.choice(pool, size=12, replace=False)
        days = np.sort(rng.uniform(0, 200, size=12))
        inter_lines += [f"{user}\t{item}\t{rng.integers(1, 6)}\t{START + int(d * DAY)}"
                        for item, d in zip(items, days, strict=True)]
    for name, lines in (("item", item_lines), ("user", user_lines), ("inter", inter_lines)):
        (directory / f"ml-100k.{name}").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture(tmp_path_factory.mktemp("ml-100k"))


@pytest.fixture(scope="module")
def world(fixture_dir: Path) -> MovieLensWorld:
    return load_movielens(fixture_dir, holdout_days=28)


def test_ids_stay_movielens_own_opaque_strings(world: MovieLensWorld) -> None:
    assert world.users["user_id"].iloc[:3].tolist() == ["1", "2", "3"]
    assert world.titles["content_id"].iloc[:3].tolist() == ["1", "2", "3"]
    assert set(world.interactions["user_id"]) <= set(world.users["user_id"])


def test_titles_carry_names_with_years_genres_in_vocabulary_order_and_no_maturity(
    world: MovieLensWorld,
) -> None:
    titles = world.titles.set_index("content_id")

    assert titles.loc["1", "title"] == "Movie 1, The (1991)"
    assert titles.loc["1", "genres"] == "Children's|Musical"
    assert titles.loc["1", "release_date"] == pd.Timestamp("1991-01-01", tz="UTC")
    assert (titles["maturity_level"] == 0).all()
    assert (world.users["max_maturity"] == 4).all()
    for genres in titles["genres"]:
        names = genres.split("|")
        assert names == sorted(names, key=GENRES.index)


def test_the_missing_title_and_the_year_left_in_a_name_are_repaired(
    world: MovieLensWorld,
) -> None:
    titles = world.titles.set_index("content_id")
    known_years = titles.drop(index=["3"])["release_year"]

    assert titles.loc["3", "title"] == "unknown"
    assert titles.loc["3", "genres"] == "unknown"
    assert titles.loc["3", "release_year"] == int(known_years.median())
    assert titles.loc["4", "title"] == "Land Before Time III (1995)"
    assert titles.loc["4", "release_year"] == 1995


def test_every_rating_is_a_watch_completed_from_four_stars(world: MovieLensWorld) -> None:
    frame = world.interactions

    assert len(frame) == 60 * 12
    assert frame["timestamp"].is_monotonic_increasing
    np.testing.assert_array_equal(frame["completed"], frame["rating"] >= 4)
    assert frame["event_id"].is_unique


def test_the_split_is_a_global_cut_whole_days_before_the_last_rating(
    world: MovieLensWorld,
) -> None:
    last = world.interactions["timestamp"].max()

    assert world.end == (last.floor("D") + pd.Timedelta(days=1)).to_pydatetime()
    assert world.end - world.split == pd.Timedelta(days=28)
    assert (world.train["timestamp"] < world.split).all()
    assert len(world.train) + len(world.future) == len(world.interactions)


def test_genre_columns_follow_the_worlds_vocabulary(world: MovieLensWorld) -> None:
    titles = rm.Titles.of(world)

    assert titles.genre_names == GENRES
    assert titles.genres.shape == (len(world.titles), 19)
    film_noir = GENRES.index("Film-Noir")
    noir_titles = world.titles["genres"].str.contains("Film-Noir").to_numpy()
    np.testing.assert_array_equal(titles.genres[:, film_noir] == 1, noir_titles)


def test_a_genre_outside_movielens_is_refused(tmp_path: Path) -> None:
    directory = write_fixture(tmp_path)
    item = directory / "ml-100k.item"
    item.write_text(item.read_text().replace("Drama War", "Drama Biopic"))

    with pytest.raises(ValueError, match="Biopic"):
        load_movielens(directory)


def test_a_rating_of_a_title_missing_from_the_catalog_is_refused(tmp_path: Path) -> None:
    directory = write_fixture(tmp_path)
    with (directory / "ml-100k.inter").open("a") as inter:
        inter.write(f"1\t999\t5\t{START}\n")

    with pytest.raises(ValueError, match="'999'"):
        load_movielens(directory)


def test_a_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    with pytest.raises(movielens.MovieLensNotInstalled, match=r"--no-deps recbole==1\.2\.1"):
        movielens.data_directory()


@pytest.fixture(scope="module")
def result(world: MovieLensWorld, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[RecsTrainingResult, Path]:
    report_dir = tmp_path_factory.mktemp("report")
    return train_recommendations(world, report_dir), report_dir


def test_the_trainer_runs_on_movielens_through_the_same_code(
    result: tuple[RecsTrainingResult, Path],
) -> None:
    trained, _ = result
    shares = trained.evaluation

    assert tuple(shares.index) == ALGORITHMS
    assert "expected_clicks_at_10" not in shares  # no click model outside the synthetic world
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert (trained.intervals["recall_at_10_low"] <= shares["recall_at_10"]).all()
    assert (shares["recall_at_10"] <= trained.intervals["recall_at_10_high"]).all()
    assert trained.ease_validation.idxmax() in (10.0, 30.0, 100.0, 300.0, 1_000.0, 3_000.0)


def test_the_artifacts_carry_movielens_genre_names_and_ids(
    result: tuple[RecsTrainingResult, Path], world: MovieLensWorld,
) -> None:
    trained, _ = result
    with np.load(io.BytesIO(trained.ranker.extra_files["embeddings.npz"])) as stored:
        assert tuple(stored["genre_names"]) == GENRES
        np.testing.assert_array_equal(stored["title_ids"], world.titles["content_id"])
        assert stored["genre_multi_hot"].shape == (len(world.titles), 19)
        assert set(stored["user_ids"]) <= set(world.users["user_id"])


def test_the_ranker_keeps_the_offline_lists_the_online_check_compares_with(
    result: tuple[RecsTrainingResult, Path], world: MovieLensWorld,
) -> None:
    trained, _ = result
    kept = json.loads(trained.ranker.extra_files[OFFLINE_LISTS_FILE])

    assert kept["dataset"] == "movielens" and kept["k"] == 10
    assert kept["as_of"] == world.split.timestamp()
    assert len(kept["users"]) == trained.ranker.metrics["eval_users"]
    assert set(kept["users"]) <= set(world.users["user_id"])
    for algorithm in ("hybrid blend", "ranker"):
        lists = kept["lists"][algorithm]
        assert len(lists) == len(kept["users"]) and all(len(t) <= 10 for t in lists)
        assert {t for top in lists for t in top} <= set(world.titles["content_id"])
        assert kept["recall_at_10"][algorithm] == pytest.approx(
            trained.evaluation.loc[algorithm, "recall_at_10"])


def test_the_movielens_page_and_its_results_are_written(
    result: tuple[RecsTrainingResult, Path],
) -> None:
    trained, report_dir = result
    page = (report_dir / "movielens.md").read_text()
    table = pd.read_csv(report_dir / "movielens.csv", index_col="algorithm")

    ranker_recall = trained.evaluation.loc["ranker", "recall_at_10"]
    assert f"| ranker | {ranker_recall:.3f} |" in page
    assert table.loc["ranker", "recall_at_10"] == pytest.approx(ranker_recall, abs=1e-6)
    assert (report_dir / "movielens.json").is_file()
    assert not (report_dir / "recommendations.md").exists()


def test_the_ease_weights_are_the_closed_form_with_a_zero_diagonal() -> None:
    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=float)
    lam = 0.5

    similarity = rm.ease_similarity(sp.csr_matrix(x), lam)

    p = np.linalg.inv(x.T @ x + lam * np.eye(3))
    expected = np.eye(3) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(similarity, expected)
    assert np.all(np.diag(similarity) == 0.0)


def test_the_installed_movielens_100k_has_its_published_shape() -> None:
    # No skip: `make setup` installs the recbole wheel, so a missing one fails here.
    world = load_movielens()

    assert len(world.interactions) == 100_000
    assert world.users["user_id"].nunique() == 943
    assert world.titles["content_id"].nunique() == 1_682
    assert world.interactions["rating"].between(1, 5).all()
    assert set(world.users["user_id"]) == {str(u) for u in range(1, 944)}


def test_mlsd_dataset_makes_the_pipeline_train_the_recommender_on_movielens(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLSD_DATASET", "movielens")
    monkeypatch.setattr(movielens, "data_directory", lambda: fixture_dir)
    settings = pipeline.TrainerSettings(world_dir=tmp_path)

    world, step = pipeline._viewing_world(settings, pipeline.SCALES["small"], lambda _: None)

    assert isinstance(world, MovieLensWorld)
    assert step == "MovieLens 100k"
    assert (tmp_path / "movielens" / "interactions.parquet").is_file()
    assert not (tmp_path / "viewing").exists()


def test_the_synthetic_world_stays_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSD_DATASET", raising=False)

    assert pipeline.TrainerSettings().dataset == "synthetic"
