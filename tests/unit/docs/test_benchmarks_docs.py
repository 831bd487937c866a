"""docs/benchmarks.md and the README's comparison line show the committed peers result, verbatim.

Both are rendered by benchmarks/peers/report.py from benchmarks/results/peers.json; a page edited
by hand, or a result committed without its page, fails here.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from tests.harness import REPO_ROOT
from tests.support.scripts import load_script


def report_module() -> ModuleType:
    return load_script("benchmarks/peers/report.py", "peers_report")


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return report_module()


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "benchmarks" / "results" / "peers.json").read_text("utf-8"))


def test_the_benchmarks_page_holds_the_tables_of_the_committed_result(
        report: ModuleType, result: dict[str, Any]) -> None:
    page = (REPO_ROOT / "docs" / "benchmarks.md").read_text("utf-8")
    begin, end = page.index(report.BEGIN) + len(report.BEGIN), page.index(report.END)

    assert page[begin:end].strip() == report.tables(result).strip()


def test_the_readme_comparison_line_is_the_committed_results(report: ModuleType,
                                                             result: dict[str, Any]) -> None:
    assert report.headline_paragraph(result) in (REPO_ROOT / "README.md").read_text("utf-8")


def test_the_committed_result_says_when_where_with_what_and_how_much(
        result: dict[str, Any]) -> None:
    assert result["date"] and result["machine"]["cpus"] and result["load_avg_1m"]
    assert {"ours (.venv)", "Feast venv", "MLServer venv"} <= set(result["versions"])
    assert result["samples"]["assignment_ids"] == 1_000_000
    assert all(c["mismatches"] == 0 and c["non_ascii_mismatches"] == 0
               for c in result["assignment"]["experiments"])
