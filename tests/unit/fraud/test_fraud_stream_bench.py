"""The stream benchmark's variants (benchmarks/fraud_stream.py): scorer settings and Redis's."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services.common.models.repository import ModelRepository
from services.common.models.testing import logistic_model
from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("benchmarks/fraud_stream.py", "fraud_stream_bench")


def test_a_variant_splits_the_scorers_settings_from_redis_parameters(bench: ModuleType) -> None:
    variant = bench.Variant.parse(
        "mixed:MLSD_FRAUD_STREAM_FETCH_WAIT_MS=5,redis.auto-aof-rewrite-percentage=0")
    assert variant.name == "mixed"
    assert variant.env == {"MLSD_FRAUD_STREAM_FETCH_WAIT_MS": "5"}
    assert variant.redis == {"auto-aof-rewrite-percentage": "0"}
    assert variant.describe() == {"name": "mixed", "env": variant.env, "redis": variant.redis,
                                  "stream_concerns": None}
    assert variant.groups() == {}


def test_a_variant_can_run_a_stream_processor_beside_the_scorers(bench: ModuleType) -> None:
    variant = bench.Variant.parse(
        "twowriters:stream.concerns=transaction-features+fraud-labels,MLSD_LOG_LEVEL=INFO")
    assert variant.concerns == "transaction-features,fraud-labels"
    assert variant.env == {"MLSD_LOG_LEVEL": "INFO"}
    assert variant.groups() == {"stream-transaction-features": ["transactions"],
                                "stream-fraud-labels": ["fraud-labels"]}


def test_a_variant_keeps_roles_to_cores_for_its_run_and_frees_them_after(
        bench: ModuleType) -> None:
    variant = bench.Variant.parse("split:cpus.redis=1,cpus.scorer=0+1")
    assert variant.cpus == {"redis": {1}, "scorer": {0, 1}}
    assert variant.describe()["cpus"] == {"redis": [1], "scorer": [0, 1]}
    anywhere = os.sched_getaffinity(0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        one = {min(anywhere)}
        with bench.Variant("one", {}, cpus={"scorer": one}).pinned({"scorer": [child.pid]}):
            assert os.sched_getaffinity(child.pid) == one
        assert os.sched_getaffinity(child.pid) == anywhere
    finally:
        child.kill()
        child.wait()


def test_a_runs_waits_for_a_core_are_read_per_role(bench: ModuleType) -> None:
    meter = bench.CpuMeter({"me": [os.getpid()]})
    sum(range(2_000_000))  # some work, perhaps a wait
    meter.stop(1.0)
    waits = meter.waits(1.0)
    assert set(waits) == {"me"} and waits["me"] >= 0.0


def test_a_name_alone_changes_nothing(bench: ModuleType) -> None:
    variant = bench.Variant.parse("default")
    assert (variant.env, variant.redis) == ({}, {})


@pytest.mark.parametrize("text", ["", "x:FOO=1", "x:MLSD_A", "x:redis-appendonly=no", ":MLSD_A=1",
                                  "x:cpus.broker=0"])
def test_anything_else_is_refused_with_the_form_it_takes(bench: ModuleType, text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError,
                       match=r"MLSD_<setting>, redis\.<parameter>, stream\.concerns or cpus"):
        bench.Variant.parse(text)


def test_the_latency_table_shows_redis_forks_only_where_they_were_measured(
        bench: ModuleType) -> None:
    assert bench.forks_cell({"redis_forks": {"forks": 3, "seconds": 4.25}}) == "3 (4.2)"
    assert bench.forks_cell({}) == ""


def test_the_tail_is_placed_by_the_second_each_transaction_was_due(bench: ModuleType) -> None:
    # 10 tx/s for 3 s: the second second's transactions arrive 500 ms late, the others 20 ms
    index = list(range(30))
    late = [0.5 if 10 <= i < 20 else 0.02 for i in index]
    received = [100.0 + i / 10 + d for i, d in zip(index, late, strict=True)]
    seen = {"index": index, "received_s": received,
            "stored_ms": [(100.0 + i / 10) * 1000 for i in index]}
    summary = bench.latency_summary(10.0, 3.0, 100.0, seen)
    assert summary["p99_by_second_ms"] == [20.0, 500.0, 20.0]
    assert summary["decided"] == 30


def test_a_process_cpu_includes_the_children_it_reaped(bench: ModuleType) -> None:
    # Redis's AOF rewrite is a forked child: its seconds are Redis's, not "other work"
    before = bench.process_cpu_s(os.getpid())
    subprocess.run([sys.executable, "-c", "import time\nwhile time.process_time() < 0.3: pass"],
                   check=True)
    assert bench.process_cpu_s(os.getpid()) - before >= 0.25


def test_a_repository_without_a_production_fraud_model_is_refused_before_anything_starts(
        bench: ModuleType, tmp_path: Path) -> None:
    # session 17's drains ran in a checkout without models: every decision on the rules alone
    assert "run `make models` first" in bench.missing_model(tmp_path / "empty")
    repository = ModelRepository(tmp_path / "models")
    repository.register("fraud", logistic_model([0.1, 0.2]), feature_names=["a", "b"],
                        metrics={}, training_data_hash="x", description="test")
    assert bench.missing_model(tmp_path / "models") is None
    assert "'ranker'" in bench.missing_model(tmp_path / "models", "ranker")


def test_a_run_with_degraded_decisions_is_named_with_its_counts(bench: ModuleType) -> None:
    whole = {"metrics": {"degraded": {"features": 0, "model": 0}}}
    summary = {
        "throughput": [{"processes": 1, "variant": {"name": "default"}, **whole},
                       {"processes": 2, "variant": {"name": "default"},
                        "metrics": {"degraded": {"features": 0, "model": 300600}}}],
        "latency": [{"rate": 5000.0, "variant": {"name": "wait5"},
                     "metrics": {"degraded": {"features": 12, "model": 0}}},
                    {"rate": 2000.0, "variant": {"name": "default"}, **whole}],
    }
    assert bench.degraded_runs(summary) == [
        "throughput 2 scorers (default): degraded decisions {'features': 0, 'model': 300600}",
        "latency 5000.0 tx/s (wait5): degraded decisions {'features': 12, 'model': 0}"]
    assert bench.degraded_runs({"throughput": [{"processes": 1, **whole}], "latency": []}) == []
