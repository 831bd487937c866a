"""Training from what the system saw: the fraud training set built from the lake equals, row by
row, the feature vectors the online path serves for the same events, and it is point in time.

A generated world's transactions and labels go where the seeder sends them (the real broker),
the lake sink writes them to Parquet, services/trainer/lake_sets.py reads them back with DuckDB.
The served vectors come from the production path on the real Redis, as in
test_fraud_online_parity.py (its replay: record-and-read per batch, labels as they arrive).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from services.common.lake.sql import open_lake
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import RedisRecsStore
from services.seeder.history import transaction_messages, watch_messages
from services.stream.watches import WatchFeaturesHandler
from services.trainer import recs_models as rm
from services.trainer.lake_sets import fraud_training_set, lake_interactions
from services.trainer.worlds.transactions import generate_transactions
from tests.harness import ServerProcess
from tests.support import recs_parity
from tests.support.fraud_parity import WORLD, replay
from tests.support.lake import through_the_sink

pytestmark = pytest.mark.integration
EVERY_LABEL = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass
class Lake:
    root: Path
    transactions: pd.DataFrame


@pytest.fixture(scope="module")
def world_in_lake(kafka_server: ServerProcess,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    transactions = generate_transactions(WORLD).transactions
    root = tmp_path_factory.mktemp("lake") / "lake"
    messages = list(transaction_messages(transactions, timedelta(0), now=EVERY_LABEL))
    through_the_sink(kafka_server, root, [messages[start:start + 5_000]
                                          for start in range(0, len(messages), 5_000)],
                     "the world in the lake")
    yield Lake(root, transactions)


def test_features_built_from_the_lake_equal_the_vectors_served_online(
        world_in_lake: Lake, redis_client: redis.Redis) -> None:
    world = world_in_lake.transactions
    with open_lake(world_in_lake.root) as con:
        training = fraud_training_set(con, EVERY_LABEL).set_index("transaction_id")
    served = np.stack([vector for vector, _ in replay(redis_client, world)])

    assert len(training) == len(world)
    from_lake = training.loc[world["transaction_id"], list(FRAUD_FEATURE_NAMES)].to_numpy()
    wrong = ~np.isclose(from_lake, served, rtol=1e-5, atol=1e-4)
    by_feature = {FRAUD_FEATURE_NAMES[j]: int(n) for j, n in enumerate(wrong.sum(axis=0)) if n}
    assert not by_feature, f"lake != served on {len(world)} rows: {by_feature}"
    assert (training.loc[world["transaction_id"], "is_fraud"].to_numpy()
            == world["is_fraud"].to_numpy()).all()
    assert (from_lake[:, FRAUD_FEATURE_NAMES.index("terminal_risk_30d")] > 0).sum() > 10


def test_a_set_built_as_of_an_earlier_instant_knows_nothing_after_it(world_in_lake: Lake) -> None:
    world = world_in_lake.transactions
    as_of_naive = world["tx_datetime"].min() + pd.Timedelta(days=30)
    as_of = as_of_naive.to_pydatetime().replace(tzinfo=UTC)
    with open_lake(world_in_lake.root) as con:
        early = fraud_training_set(con, as_of).set_index("transaction_id")
        full = fraud_training_set(con, EVERY_LABEL).set_index("transaction_id")

    seen = world[world["tx_datetime"] <= as_of_naive]
    assert sorted(early.index) == sorted(seen["transaction_id"])
    # a fraud counts only if its label had arrived by then
    known = seen["is_fraud"].astype(bool) & (seen["label_time"] <= as_of_naive)
    assert (early.loc[seen["transaction_id"], "is_fraud"].to_numpy().astype(bool)
            == known.to_numpy()).all()
    assert known.sum() < seen["is_fraud"].sum()  # some labels were still to come
    # the rows it has carry the same features as when everything is known: no leak from later
    names = list(FRAUD_FEATURE_NAMES)
    assert np.allclose(early.loc[seen["transaction_id"], names].to_numpy(),
                       full.loc[seen["transaction_id"], names].to_numpy(), rtol=1e-5, atol=1e-4)
    # labels that cannot change any more: reported, or older than the label delay
    assert early["label_final"].sum() < len(early)


# The recommender parity test's world and served artifacts, shared as fixtures here.
offline = recs_parity.offline
items = recs_parity.items


def test_ranker_features_built_from_the_lakes_watches_equal_those_served(
        kafka_server: ServerProcess, redis_client: redis.Redis, offline: recs_parity.Offline,
        items: ItemArtifacts, tmp_path: Path) -> None:
    world = offline.world
    root = tmp_path / "lake"
    through_the_sink(kafka_server, root, [list(watch_messages(world.train, timedelta(0)))],
                     "the watches in the lake")
    with open_lake(root) as con:
        watches = lake_interactions(con, world.split)

    lake_world = dataclasses.replace(world, interactions=watches)
    state = rm.state_at(rm.Events.of(lake_world), len(world.users), offline.titles,
                        offline.as_of)
    assert len(watches) == len(world.train)
    np.testing.assert_array_equal(state.watch_counts, offline.state.watch_counts)
    assert (state.weights != offline.state.weights).nnz == 0
    from_lake = recs_parity.Offline(world, state, offline.titles, offline.embeddings,
                                    offline.as_of)

    recs_parity.replay(WatchFeaturesHandler(redis_client, items), world)
    users, candidates = recs_parity.sample_pairs(offline)
    served, _ = recs_parity.online_features(RedisRecsStore(redis_client, items), items, offline,
                                            users, candidates)
    recs_parity.assert_same_features(
        served, recs_parity.offline_features(from_lake, users, candidates))
