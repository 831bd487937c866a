"""Seeding another dataset clears the recommendation state first, and only it (real Redis)."""

from __future__ import annotations

import pytest
import redis

from services.designs.recs import keys
from services.seeder.__main__ import reset_if_other_dataset
from services.trainer.pipeline import TrainerSettings
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration


def settings(server: ServerProcess, dataset: str) -> TrainerSettings:
    return TrainerSettings(redis_url=server.address, dataset=dataset)


def test_a_switch_of_dataset_clears_the_recommendation_state_and_keeps_the_rest(
        redis_server: ServerProcess, redis_client: redis.Redis) -> None:
    recs_keys = [keys.history_key("u1"), keys.user_view_key("u1"), keys.rec_cache_key("u1"),
                 keys.profile_key("u1"), keys.trending_key(), keys.title_release_key(),
                 keys.catalog_titles_key(), keys.catalog_version_key(),
                 keys.title_watches_key(20_000), "fs:dedupe:stream-watch-features:{e1}",
                 "fs:dedupe:stream-catalog-titles:{e2}"]
    kept = ["fs:fraud_card_log:{card1}", "fs:exp_definitions:{experiments}", "fs:exp_unit:{u1}",
            "fs:dedupe:stream-transaction-features:{e3}"]
    for key in recs_keys + kept:
        redis_client.set(key, "x")
    redis_client.set(keys.dataset_key(), "synthetic")

    reset_if_other_dataset(settings(redis_server, "synthetic"))         # same dataset: no-op
    assert all(redis_client.exists(key) for key in recs_keys + kept)

    reset_if_other_dataset(settings(redis_server, "movielens"))
    assert [key for key in recs_keys if redis_client.exists(key)] == []
    assert all(redis_client.exists(key) for key in kept)
    assert redis_client.get(keys.dataset_key()) == b"movielens"
