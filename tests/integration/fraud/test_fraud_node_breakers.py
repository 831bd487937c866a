"""Fraud on a 3+3 Redis Cluster whose master is killed, behind a breaker per master: only the
transactions with a key on the dead master are decided degraded, only until the cluster names
its replica (fault 2 of docs/reliability.md)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.cluster import RedisCluster

from services.common.redis_client import RedisClient, node_of, request_path_redis
from services.common.telemetry import Metrics
from services.designs.fraud.commands import entity_keys
from services.fraud.metrics import FraudMetrics
from services.fraud.policy_file import load_engine
from services.fraud.scorer import FraudScorer, ReferenceCache
from services.fraud.settings import FraudSettings
from services.fraud.state_store import FraudStoreUnavailable, RedisFraudStore
from services.fraud.transaction import Transaction
from services.fraud.wiring import fraud_store
from tests.harness import ClusterTopology
from tests.support.fraud import POLICY_PATH, FakeModel, model_repository, transaction
from tests.support.redis_cluster import await_replicas_in_sync, slot_owner

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

FAIL_MAX = 3


def an_id_on(client: RedisClient, master: str, make: str) -> str:
    """The first `make.format(n)` whose own hash tag's slot the master holds."""
    return next(candidate for n in range(100_000)
                if node_of(client, f"{{{(candidate := make.format(n))}}}") == master)


def a_transaction_on(client: RedisClient, master: str, n: int) -> Transaction:
    """A transaction every key of which (its six entities' and its decision's) lives on the
    master."""
    def on(make: str) -> str:
        return an_id_on(client, master, make)

    # the n-th id of a kind on this master: distinct transactions and cards per call
    return transaction(transaction_id=on(f"tx{n}-{{}}"), card_id=on(f"card{n}-{{}}"),
                       user_id=on("cust{}"), terminal_id=on("term{}"), merchant_id=on("m{}"),
                       device_id=on("dev{}"), ip_address=on("10.0.{}.1"))


def masters_of(store: RedisFraudStore, client: RedisClient, txn: Transaction) -> set[str]:
    keys = (*entity_keys("fs", txn), store.decision_key(txn.transaction_id))
    return {node_of(client, key) for key in keys}


def test_a_dead_master_degrades_only_its_own_transactions_and_only_until_its_replica_serves(
        redis_cluster_nodes: ClusterTopology, tmp_path: Path) -> None:
    topology = redis_cluster_nodes
    await_replicas_in_sync(topology)
    # reset_s far past the test: only the re-read slot map can end the dead master's skipping
    settings = FraudSettings(redis_url=topology.redis_url, redis_cluster=True,
                             redis_password=topology.redis_password,
                             fraud_breaker_fail_max=FAIL_MAX, fraud_breaker_reset_s=600)
    client = request_path_redis(settings, settings.fraud_redis_timeout_s)
    assert isinstance(client, RedisCluster)
    store = fraud_store(settings, client)
    engine = load_engine(POLICY_PATH)
    scorer = FraudScorer(store=store, model=FakeModel(), policy=lambda: engine,
                         references=ReferenceCache(model_repository(tmp_path), "fraud"),
                         metrics=FraudMetrics(Metrics("fraud_test", CollectorRegistry())))
    scorer.warm_up()
    # The worst case for redis-py: the dead master is also the client's default node.
    victim = client.get_default_node().name
    others = sorted({node.name for node in client.get_primaries()} - {victim})
    counter = iter(range(1, 1_000))

    first = [a_transaction_on(client, master, 0) for master in [*others, victim]]

    def batch() -> list[Transaction]:
        """One transaction on each surviving master, then one with the keys of `first`'s on
        the victim (built once: after the promotion the client's map names it no more)."""
        n = next(counter)
        return [*(a_transaction_on(client, master, n) for master in others),
                replace(first[2], transaction_id=f"{first[2].transaction_id}-{n}")]

    for txn, master in zip(first, [*others, victim], strict=True):
        assert masters_of(store, client, txn) == {master}
    try:
        assert [s.decision.degraded for s in scorer.score(first, "http")] == [()] * 3
        topology.kill(next(name for name in topology.redis_names
                           if topology.nodes[name].address == victim))
        killed = time.monotonic()
        # Until its breaker opens, a batch that reaches the dead master fails as a whole (what
        # it wrote is unknown); the failures count against that master alone.
        for _ in range(FAIL_MAX):
            with pytest.raises(FraudStoreUnavailable):
                store.record_and_read(batch())
        # Open: the victim's transactions are skipped, the others' read and decided whole.
        scored = scorer.score(batch(), "http")
        assert [s.decision.degraded for s in scored[:2]] == [(), ()]
        assert scored[2].decision.degraded == (
            f"features: feature store skipped (circuit open: {victim})",)
        # ... all through the gap: while the cluster marks the master failed and until its
        # replica is promoted, the other masters answer for their own slots
        slot = client.keyslot(f"{{{first[2].card_id}}}")
        survivors = [a for a in topology.redis_addresses if a != victim]
        healthy_batches = 0
        while any(slot_owner(a, topology.redis_password, slot) in (victim, None)
                  for a in survivors):
            assert time.monotonic() - killed < 30, "no replica took over the killed master"
            assert [s.decision.degraded for s in scorer.score(batch()[:2], "http")] == [(), ()]
            healthy_batches += 1
            time.sleep(0.05)
        assert healthy_batches > 20  # the gap was seen (cluster-node-timeout alone is 2 s)
        promoted = time.monotonic()
        while scorer.score(batch(), "http")[2].decision.degraded:
            assert time.monotonic() - promoted < 5, "the promoted replica was never used"
            time.sleep(0.1)
        # whole again well before the dead master's half-open trial (reset_s = 600 s)
        again = scorer.score([replace(first[2], transaction_id="tx-after")], "http")
    finally:
        client.close()
    assert again[0].decision.degraded == ()
    assert victim not in masters_of(store, client, first[2])
