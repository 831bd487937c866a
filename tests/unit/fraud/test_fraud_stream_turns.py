"""The stream drain in turns (benchmarks/fraud_stream_turns.py): its summary of two sides."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.harness import REPO_ROOT
from tests.support.scripts import load_script

SESSION18 = REPO_ROOT / "benchmarks/results/fraud_stream_session18_2026-12-07"


@pytest.fixture(scope="module")
def turns() -> ModuleType:
    return load_script("benchmarks/fraud_stream_turns.py", "fraud_stream_turns")


def reports() -> dict[tuple[str, int], dict[str, Any]]:
    # the committed runs of session 18 (two rounds, 1 and 2 scorers), as the tool kept them
    return {(side, r): json.loads((SESSION18 / f"{side}-{r}.json").read_text())
            for side in ("old", "new") for r in (1, 2)}


def test_each_round_and_scorer_count_gets_both_sides_and_their_ratio(
        turns: ModuleType) -> None:
    rows = turns.summarise(reports())
    assert [(row["round"], row["scorers"]) for row in rows] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    first = rows[0]
    assert (first["old"]["commit"], first["new"]["commit"]) == ("41d4e6a", "5e21c2d")
    assert (first["old"]["tx_per_s"], first["new"]["tx_per_s"]) == (3479, 4031)
    assert first["tx_per_s_new_over_old"] == round(4031 / 3479, 3)
    # CPU a transaction from the run's cores: the scorer's 0.64 core at 3,479 tx/s
    assert first["old"]["scorer_us_per_tx"] == round(0.64 / 3479 * 1e6, 1)
    assert first["new"]["redis_scripts_us_per_tx"] == 77.56
    assert all(row["old"]["degraded"] == row["new"]["degraded"] == {"features": 0, "model": 0}
               for row in rows)


def test_a_scorer_count_only_one_side_ran_is_left_out(turns: ModuleType) -> None:
    runs = reports()
    runs["new", 2]["throughput"] = runs["new", 2]["throughput"][:1]
    assert [(row["round"], row["scorers"]) for row in turns.summarise(runs)] == [
        (1, 1), (1, 2), (2, 1)]


def test_both_sides_drain_a_cold_broker_even_when_one_could_warm_it_up(
        turns: ModuleType, tmp_path: Path) -> None:
    args = argparse.Namespace(drain_scorers=[1, 2], backlog=1000, model_repository=tmp_path)
    this = turns.drain_command(REPO_ROOT, "/tmp/r", args)
    assert "--no-warm-up-drain" in this  # this checkout's benchmark warms up by default
    older = tmp_path / "older"
    (older / "benchmarks").mkdir(parents=True)
    (older / "benchmarks/fraud_stream.py").write_text('"""drains, no warm-up flag"""\n')
    assert "--no-warm-up-drain" not in turns.drain_command(older, "/tmp/r", args)
    assert this[this.index("--drain-scorers") + 1:this.index("--rates")] == ["1", "2"]


def test_a_runs_report_is_kept_where_asked_and_returned(turns: ModuleType, tmp_path: Path) -> None:
    def command(report_dir: str) -> list[str]:  # stands for fraud_stream.py: writes its report
        return ["sh", "-c", f'echo \'{{"commit": "abc"}}\' > {report_dir}/fraud_stream.json']

    out = tmp_path / "old-1.json"
    assert turns.reported(command, tmp_path, out) == {"commit": "abc"}
    assert json.loads(out.read_text()) == {"commit": "abc"}
