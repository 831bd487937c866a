"""How many processes each fraud path runs: the settings, the worker entry point, and
infra/supervisord.conf read by supervisor's own parser with the environment `make run` gives it
(one scorer per port from the settings; every part the stack waits for is a process)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from supervisor.options import ServerOptions
from uvicorn.importer import import_from_string

from services.common.settings import PlatformSettings
from services.devstack.parts import stack_parts, supervisor_environment
from services.fraud.__main__ import WORKER_APP, worker_app
from services.fraud.settings import FraudSettings
from tests.harness import REPO_ROOT

CONFIG = REPO_ROOT / "infra" / "supervisord.conf"


def supervised(monkeypatch: pytest.MonkeyPatch, fraud: FraudSettings) -> dict[str, dict[str, str]]:
    """Process name -> its own environment, as supervisord would start them."""
    for name, value in supervisor_environment(fraud).items():
        monkeypatch.setenv(name, value)
    options = ServerOptions()  # reads the environment for %(ENV_...)s now
    options.configfile = str(CONFIG)
    options.process_config(do_usage=False)
    return {process.name: process.environment or {}
            for group in options.process_group_configs for process in group.process_configs}


def test_make_run_starts_two_fraud_scorers_on_consecutive_ports_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    processes = supervised(monkeypatch, FraudSettings())

    scorers = {name: env for name, env in processes.items() if name.startswith("fraud-stream")}
    assert scorers == {"fraud-stream-8041": {"MLSD_FRAUD_STREAM_METRICS_PORT": "8041"},
                       "fraud-stream-8042": {"MLSD_FRAUD_STREAM_METRICS_PORT": "8042"}}
    assert "fraud" in processes  # the HTTP service: one supervised parent of its workers


def test_the_scorer_count_and_first_port_come_from_the_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fraud = FraudSettings(fraud_stream_processes=4, fraud_stream_metrics_port=9100)

    processes = supervised(monkeypatch, fraud)

    assert sorted(n for n in processes if n.startswith("fraud-stream")) == [
        f"fraud-stream-{port}" for port in (9100, 9101, 9102, 9103)]
    assert fraud.fraud_stream_ports() == [9100, 9101, 9102, 9103]


def test_every_part_the_stack_waits_for_is_a_supervised_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_FRAUD_STREAM_PROCESSES", "3")
    parts = stack_parts(PlatformSettings())

    processes = supervised(monkeypatch, FraudSettings())

    assert [p.name for p in parts if p.name.startswith("fraud-stream")] == [
        "fraud-stream-8041", "fraud-stream-8042", "fraud-stream-8043"]
    assert {p.name for p in parts} <= set(processes)


def test_more_scorers_than_partitions_of_transactions_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than the 12 partitions of transactions"):
        FraudSettings(fraud_stream_processes=13)
    assert FraudSettings(fraud_stream_processes=16, kafka_topic_partitions=16)


def test_fraud_http_runs_one_worker_unless_told_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert FraudSettings().fraud_workers == 1
    monkeypatch.setenv("MLSD_FRAUD_WORKERS", "3")
    assert FraudSettings().fraud_workers == 3
    with pytest.raises(ValidationError, match="fraud_workers"):
        FraudSettings(fraud_workers=0)


def test_each_worker_imports_the_app_factory_by_its_import_string() -> None:
    assert import_from_string(WORKER_APP) is worker_app
