"""The stream's drain by cores (benchmarks/fraud_stream_cores.py): what it runs and how it
summarises the core sets' runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.harness import REPO_ROOT
from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def cores() -> ModuleType:
    return load_script("benchmarks/fraud_stream_cores.py", "fraud_stream_cores")


def test_a_taskset_list_is_counted_in_cores(cores: ModuleType) -> None:
    assert [cores.cores_of(c) for c in ("0", "0,1", "0-3", "0,2-3")] == [1, 2, 4, 3]


def test_every_process_of_the_run_is_started_under_taskset_on_the_given_cores(
        cores: ModuleType) -> None:
    args = argparse.Namespace(scorers=2, backlog=300_600, model_repository=Path("/m"))
    command = cores.drain_command("0", "/out", args)
    assert command[:3] == ["taskset", "-c", "0"]  # the benchmark, and so every child
    assert command[command.index("--drain-scorers") + 1] == "2"
    assert command[command.index("--floor-processes") + 1] == "2"
    # no latency runs: --rates with no values
    assert command[command.index("--rates") + 1].startswith("--")


def run(cpus: str, round_: int, rate: float, floor: float) -> dict[str, Any]:
    return {"cpus": cpus, "cores": len(cpus.split(",")), "round": round_, "tx_per_s": rate,
            "floor_tx_per_s": floor}


def test_each_round_gives_the_rate_over_the_fewest_cores_for_scoring_and_the_floor(
        cores: ModuleType) -> None:
    # round 2 ran two cores first: the order does not change which is the base
    runs = [run("0", 1, 3000, 30000), run("0,1", 1, 5400, 45000),
            run("0,1", 2, 6000, 42000), run("0", 2, 3200, 28000)]
    rows = cores.summarise(runs)
    assert [(r["round"], r["cores"]) for r in rows] == [(1, "1 -> 2"), (2, "1 -> 2")]
    assert rows[0]["scoring_ratio"] == 1.8 and rows[0]["floor_ratio"] == 1.5
    assert rows[1]["scoring_ratio"] == round(6000 / 3200, 3)
    assert rows[1]["tx_per_s_per_core"] == [3200, 3000]


def test_the_committed_runs_give_the_committed_ratios(cores: ModuleType) -> None:
    found = json.loads((REPO_ROOT / "benchmarks/results/fraud_stream_cores.json").read_text())
    assert cores.summarise(found["runs"]) == found["ratios"]
    assert [r["scoring_ratio"] for r in found["ratios"]] == [2.267, 2.08]
