"""Fraud and the recommender warm their request path before they say they are ready, on a 3+3
Redis Cluster: every master holds their scripts and a connection from them before their first
request, and the recommender has run its ranker (the soak's start, docs/reliability.md). A
Redis that does not answer at start is reported, not raised: the service starts as before."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.redis_client import request_path_redis
from services.common.redis_scripts import warm
from services.common.settings import PlatformSettings
from services.designs.fraud.records import DecisionOfRecord
from services.designs.recs.redis_store import CACHE_PUT
from services.devstack.cluster import redis_roles
from services.fraud.app import create_app as create_fraud
from services.fraud.settings import FraudSettings
from services.fraud.state_store import STORE_SCRIPTS
from services.recommender.app import create_app as create_recommender
from services.recommender.settings import RecommenderSettings
from tests import recommender_world as world
from tests.harness import ClusterTopology, free_port
from tests.support import fraud as fraud_support
from tests.support import recs as recs_support

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture
def masters(redis_cluster_nodes: ClusterTopology) -> Iterator[list[redis.Redis]]:
    """Each master, its scripts flushed: what a fresh node knows."""
    roles = redis_roles(redis_cluster_nodes.redis_addresses, redis_cluster_nodes.redis_password)
    clients = [redis.Redis.from_url(f"redis://{address}/0",
                                    password=redis_cluster_nodes.redis_password)
               for address, role in roles.items() if role == "master"]
    for client in clients:
        client.script_flush()
    yield clients
    for client in clients:
        client.close()


def cluster(topology: ClusterTopology) -> dict[str, object]:
    return {"redis_url": topology.redis_url, "redis_cluster": True,
            "redis_password": topology.redis_password}


class NoRecord:
    """The decisions of record: none asked for here."""

    def find(self, transaction_id: str) -> DecisionOfRecord | None:
        return None


def test_fraud_loads_its_scripts_on_every_master_before_its_first_request(
        redis_cluster_nodes: ClusterTopology, masters: list[redis.Redis],
        tmp_path: Path) -> None:
    fraud_support.model_repository(tmp_path)
    settings = FraudSettings(fraud_policy_path=fraud_support.POLICY_PATH,
                             model_repository=tmp_path, environment="test",
                             **cluster(redis_cluster_nodes))  # type: ignore[arg-type]
    app = create_fraud(settings, model=fraud_support.FakeModel(),
                       publisher=InMemoryPublisher(InMemoryBroker()),
                       record=NoRecord())
    shas = [script.sha for script in STORE_SCRIPTS]
    assert not any(any(m.script_exists(*shas)) for m in masters)
    with TestClient(app):  # the lifespan has run: what a worker does before it accepts
        assert all(all(m.script_exists(*shas)) for m in masters)


def test_the_recommender_runs_its_ranker_and_loads_its_script_before_ready(
        redis_cluster_nodes: ClusterTopology, masters: list[redis.Redis],
        tmp_path: Path) -> None:
    settings = RecommenderSettings(
        model_repository=world.repository(tmp_path / "models").root,
        recommender_experiment=None, **cluster(redis_cluster_nodes))  # type: ignore[arg-type]
    model = recs_support.FakeModel()
    app = create_recommender(settings, model=model,
                             publisher=InMemoryPublisher(InMemoryBroker()))
    with TestClient(app):
        assert model.calls == [(1, None)]  # one row, the production version
        assert all(m.script_exists(CACHE_PUT.sha) == [True] for m in masters)


def test_a_redis_that_does_not_answer_is_reported_and_the_start_goes_on() -> None:
    settings = PlatformSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = request_path_redis(settings)
    started = time.monotonic()
    assert warm(client, [CACHE_PUT]) is False
    assert time.monotonic() - started < 5
    client.close()
