"""Every figure block in the docs is what benchmarks/doc_numbers.py renders from the results.

A result refreshed without its pages, or a page edited by hand between the markers, fails here;
`.venv/bin/python benchmarks/doc_numbers.py` rewrites the blocks.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from services.common.bus.topics import MIN_PARTITIONS, TRANSACTIONS
from tests.harness import REPO_ROOT
from tests.support.scripts import load_script


def numbers_module() -> ModuleType:
    return load_script("benchmarks/doc_numbers.py", "interview_numbers")


@pytest.fixture(scope="module")
def numbers() -> ModuleType:
    return numbers_module()


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """The results, the pages and the fraud policy, copied so a test can change one and leave
    the tree alone."""
    shutil.copytree(REPO_ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs",
                    ignore=shutil.ignore_patterns("*.png", "*.svg", "*.csv"))
    evaluation = REPO_ROOT / "docs" / "evaluation"
    # the make-load runs' tallies are left out: the tests below add their own
    tallies = [path for path in evaluation.rglob("*_served_from.csv")
               if not path.relative_to(evaluation).parts[0].startswith("make-load-")]
    for csv_file in [*evaluation.rglob("*_slo.csv"), *tallies]:
        target = tmp_path / csv_file.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(csv_file, target)
    shutil.copy(REPO_ROOT / "README.md", tmp_path / "README.md")
    (tmp_path / "load-tests").mkdir()
    shutil.copy(REPO_ROOT / "load-tests" / "README.md", tmp_path / "load-tests" / "README.md")
    shutil.copytree(REPO_ROOT / "config" / "fraud", tmp_path / "config" / "fraud")
    return tmp_path


def test_every_block_in_the_pages_is_what_the_committed_results_render(numbers: ModuleType) -> None:
    assert numbers.stale(REPO_ROOT) == [], "run: .venv/bin/python benchmarks/doc_numbers.py"


def test_every_block_is_shown_on_some_page_and_every_marker_names_a_block(
        numbers: ModuleType) -> None:
    shown = {match["name"] for page in numbers.pages(REPO_ROOT)
             for match in numbers.BLOCK.finditer(page.read_text("utf-8"))}
    assert shown == set(numbers.BLOCKS)


def test_the_interview_pages_and_the_readme_hold_their_blocks(numbers: ModuleType) -> None:
    def names(page: str) -> set[str]:
        text = (REPO_ROOT / page).read_text("utf-8")
        return {match["name"] for match in numbers.BLOCK.finditer(text)}

    assert {"recs-scale", "recs-cores", "recs-ten"} <= names("docs/interview/recommendations.md")
    assert {"fraud-scale", "fraud-cores", "fraud-ten"} <= names("docs/interview/fraud.md")
    assert "readme-status" in names("README.md")


def test_a_changed_result_makes_its_pages_stale_until_rewritten(numbers: ModuleType,
                                                                 copy: Path) -> None:
    path = copy / "benchmarks" / "results" / "fraud_stream.json"
    result = json.loads(path.read_text("utf-8"))
    two = next(t for t in result["throughput"] if t["processes"] == 2)
    two["lag_probe"]["tx_per_s"] = 7_777
    path.write_text(json.dumps(result), "utf-8")

    stale = numbers.stale(copy)
    assert "docs/interview/fraud.md: fraud-cores" in stale
    assert "README.md: readme-status" in stale
    # the one sentence on the scorers 10,000 tx/s needs moves on every page that quotes it
    assert {"docs/streaming.md: fraud-stream-capacity", "docs/fraud.md: fraud-stream-capacity",
            "docs/fraud-features-online.md: fraud-stream-capacity"} <= set(stale)
    numbers.write(copy)
    assert numbers.stale(copy) == []
    assert "7,777 tx/s" in (copy / "docs" / "interview" / "fraud.md").read_text("utf-8")


def test_a_hand_edited_figure_between_the_markers_is_caught(numbers: ModuleType,
                                                             copy: Path) -> None:
    page = copy / "docs" / "interview" / "recommendations.md"
    text = page.read_text("utf-8")
    body = next(numbers.BLOCK.finditer(text))["body"]
    page.write_text(text.replace(body, body.replace("1", "7", 1), 1), "utf-8")

    assert any(line.startswith("docs/interview/recommendations.md") for line in numbers.stale(copy))


def test_a_new_make_load_run_is_read_and_its_mix_and_machine_stated(numbers: ModuleType,
                                                                     copy: Path) -> None:
    older = sorted((copy / "docs" / "evaluation").glob("make-load-*"))[0]  # no tally: summary's
    newer = copy / "docs" / "evaluation" / "make-load-2031-01-01T0745Z"
    shutil.copytree(older, newer)
    summary = newer / "recs" / "summary.md"
    summary.write_text(summary.read_text("utf-8").replace("cache 84%", "cache 41%"), "utf-8")
    (newer / "run.json").write_text(json.dumps(
        {"recs_mix": "population", "machine": {"cpu": "AMD EPYC 7B13"}}), "utf-8")

    run = numbers.Results(copy).load_run()
    assert run.folder.endswith("make-load-2031-01-01T0745Z")
    assert run.mix == "population" and run.cache_share["open"] == "41 %"
    assert run.machine == "the AMD EPYC machine"
    written = numbers.load_table(numbers.Results(copy), "docs/x.md")
    assert "41 %" in written and "on the AMD EPYC machine" in written


def test_the_newest_run_on_another_machine_is_stated_where_its_verdict_differs(
        numbers: ModuleType, copy: Path) -> None:
    runs = numbers.Results(copy).load_runs()
    newest = runs[-1]
    other = next(run for run in reversed(runs) if run.cpu != newest.cpu)
    written = numbers.load_table(numbers.Results(copy), "docs/x.md")
    if other.passed == newest.passed:
        assert other.stamp not in written
    else:
        assert f"On {other.machine} ({other.stamp} UTC) the same defaults" in written


def test_a_committed_served_from_tally_is_preferred_to_the_summary(numbers: ModuleType,
                                                                   copy: Path) -> None:
    newest = sorted((copy / "docs" / "evaluation").glob("make-load-*"))[-1]  # what is read
    (newest / "recs" / "openloop_served_from.csv").write_text(
        "served_from,answers\ncache,30\ncomputed,70\nfallback,0\n", "utf-8")

    run = numbers.Results(copy).load_run()
    assert run.cache_share["open"] == "30 %"
    assert run.cache_share["closed"] != "30 %"  # still the summary's closed-loop column


def recs_cpu_result() -> dict[str, Any]:
    """A recs_cpu.json as benchmarks/recs_cpu.py writes it: its own capacity() over made-up
    per-process CPU figures, so the shape follows the script."""
    script = REPO_ROOT / "benchmarks" / "recs_cpu.py"
    spec = importlib.util.spec_from_file_location("recs_cpu", script)
    assert spec is not None and spec.loader is not None
    recs_cpu = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recs_cpu
    spec.loader.exec_module(recs_cpu)
    miss = {"service": 2.0, "redis": 0.2, "kafka": 0.1, "stream": 0.2, "driver": 0.5}
    hit = {"service": 0.5, "redis": 0.05, "kafka": 0.05, "stream": 0.1, "driver": 0.5}
    run = {"answered": 4000, "served_from": {"computed": 4000}, "p50_ms": 3.0, "p99_ms": 20.0,
           "cpu_ms_per_request": miss, "processes_found": {}}
    cached = {**run, "served_from": {"cache": 3900, "computed": 100}, "cpu_ms_per_request": hit}
    return {"when": "2026-12-06T07:45:00+00:00",
            "machine": {"platform": "Linux", "cpus": 2, "python": "3.11.7",
                        "load_average_at_end": [1.0, 1.0, 1.0]},
            "load": {"rps": 200, "duration_s": 20, "seed": 7,
                     "driver": "load-tests/openloop.py, poisson arrivals, population mix"},
            "runs": {"uncached, BLAS 1 thread": run, "cached (second pass)": cached},
            "capacity": recs_cpu.capacity(miss, hit, [0.0, 0.8])}


def test_recs_cores_say_not_measured_until_recs_cpu_json_exists_then_show_it(
        numbers: ModuleType, copy: Path) -> None:
    results = numbers.Results(copy)
    cpu_file = copy / "benchmarks" / "results" / "recs_cpu.json"
    cpu_file.unlink(missing_ok=True)
    assert "Not measured yet" in numbers.recs_cores(results, "docs/interview/recommendations.md")

    cpu_file.write_text(json.dumps(recs_cpu_result()), "utf-8")
    block = numbers.recs_cores(results, "docs/interview/recommendations.md")
    assert "Not measured yet" not in block
    assert "**87.5**" in block  # 35,000 req/s x 2.5 ms of CPU: the file's own capacity row
    assert "cache 98 %" in block


def test_the_partition_count_is_the_codes(numbers: ModuleType) -> None:
    assert MIN_PARTITIONS[TRANSACTIONS] == numbers.TRANSACTIONS_PARTITIONS


def test_the_brief_arithmetic(numbers: ModuleType) -> None:
    average, peak = numbers.recs_rates()
    assert round(average) == 11_574 and round(peak) == 34_722
    assert round(numbers.error_budget_minutes(), 1) == 43.2


# ------------------------------------------------- contradictions a machine can catch


def page_texts(numbers: ModuleType) -> dict[str, str]:
    """Every page the numbers are rendered into, and CONTRIBUTING.md, by repository path."""
    paths = [*numbers.pages(REPO_ROOT), REPO_ROOT / "CONTRIBUTING.md"]
    return {str(path.relative_to(REPO_ROOT)): path.read_text("utf-8") for path in paths}


def go_mod_version() -> str:
    mods = []
    for folder, subfolders, files in os.walk(REPO_ROOT):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]  # .venv, .state
        mods += [Path(folder) / "go.mod"] if "go.mod" in files else []
    found = {match[1] for path in mods
             for match in re.finditer(r"^go (\d+\.\d+)", path.read_text("utf-8"), re.M)}
    assert len(found) == 1, f"go.mod files disagree: {found}"
    return found.pop()


def test_every_go_version_the_docs_name_is_go_mods(numbers: ModuleType) -> None:
    version = go_mod_version()
    named = {(page, match[1]) for page, text in page_texts(numbers).items()
             for match in re.finditer(r"\bGo \(?(?:>= ?)?(\d+\.\d+)", text)}
    assert named, "no page names the Go version any more: drop this test or the go.mod"
    assert {found for _, found in named} == {version}, sorted(named)


RESULT_PATH = re.compile(r"(?:benchmarks/results|docs/evaluation)/[\w./-]*[\w/]")
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")


def named_results(page: str, text: str) -> set[str]:
    """The result files and folders a page names: written out from the root, or linked."""
    found = {match[0].rstrip("/.") for match in RESULT_PATH.finditer(text)}
    for match in LINK.finditer(text):
        if not match[1] or "://" in match[1]:
            continue
        target = (REPO_ROOT / page).parent / match[1]
        rel = Path(os.path.normpath(target)).relative_to(REPO_ROOT) if str(target).startswith(
            str(REPO_ROOT)) else None
        if rel is not None and str(rel).startswith(("benchmarks/results", "docs/evaluation")):
            found.add(str(rel))
    return found


def test_every_result_file_a_page_names_is_committed(numbers: ModuleType) -> None:
    missing = sorted(f"{page}: {name}" for page, text in page_texts(numbers).items()
                     for name in named_results(page, text) if not (REPO_ROOT / name).exists())
    assert missing == []


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text("utf-8"), flags=re.S)
    seen: dict[str, int] = {}
    out = set()
    for match in re.finditer(r"^#{1,6} (.+)$", text, re.M):
        base = slug(match[1])
        out.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return out


def test_every_link_to_a_section_of_a_page_finds_that_section(numbers: ModuleType) -> None:
    broken = []
    for page, text in page_texts(numbers).items():
        for match in LINK.finditer(text):
            target, anchor = match[1], match[2]
            if not anchor or not (target == "" or target.endswith(".md")) or "://" in target:
                continue
            path = (REPO_ROOT / page).parent / target if target else REPO_ROOT / page
            if path.exists() and anchor not in anchors(path):
                broken.append(f"{page}: {target}#{anchor}")
    assert broken == []


def settings_defaults() -> dict[str, Any]:
    """`MLSD_...` environment variable -> its default, from every settings class in services/."""
    defaults: dict[str, Any] = {}
    for path in sorted((REPO_ROOT / "services").rglob("*settings*.py")):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings):
                prefix = str(value.model_config.get("env_prefix", "")).upper()
                for name, field in value.model_fields.items():
                    defaults[f"{prefix}{name.upper()}"] = field.default
    return defaults


QUOTED_DEFAULTS = (
    # "(`MLSD_FRAUD_WORKERS`, default 1", "`MLSD_X` (default 2", "`MLSD_X` scorers (default 2"
    re.compile(r"`(?P<var>MLSD_[A-Z0-9_]+)`(?: [a-z]+)?\)?,?\s\(?default `?(?P<value>[\w.]+)`?"),
    # a settings table: "| `MLSD_INGEST_RETRY_AFTER_S` | 2 | ..."
    re.compile(r"^\| `(?P<var>MLSD_[A-Z0-9_]+)` \| `?(?P<value>[\d.]+)`? ", re.M),
    # "a refresh every 5 s (`MLSD_...`)", "a 20 ms deadline (`MLSD_..._S`)"
    re.compile(r"(?P<value>\d+(?:\.\d+)?) (?P<unit>ms|s)\b[\w\s]{0,20}\s"
               r"\(`(?P<var>MLSD_[A-Z0-9_]+_S)`\)"),
)


def test_every_default_a_page_quotes_for_a_setting_is_the_settings(numbers: ModuleType) -> None:
    defaults = settings_defaults()
    checked, wrong = 0, []
    for page, text in page_texts(numbers).items():
        for pattern in QUOTED_DEFAULTS:
            for match in pattern.finditer(text):
                var, value = match["var"], match["value"]
                if var not in defaults:
                    continue
                actual = defaults[var]
                if isinstance(actual, bool):
                    continue
                if isinstance(actual, int | float):
                    scale = 1000 if match.groupdict().get("unit") == "ms" else 1
                    ok = math.isclose(float(value) / scale, float(actual))
                else:
                    ok = str(getattr(actual, "value", actual)) == value
                checked += 1
                if not ok:
                    wrong.append(f"{page}: {var} quoted as {match[0]!r}, the default is {actual!r}")
    assert checked >= 10  # the patterns still find the pages' settings
    assert wrong == []


def test_a_section_quoting_an_uncommitted_run_says_its_figures_are_historical(
        numbers: ModuleType) -> None:
    """A run whose raw file sits in the git-ignored reports/ has no committed result: the section
    that quotes it must say so, so no reader takes it for today's figure."""
    unmarked = []
    for page, text in page_texts(numbers).items():
        for section in re.split(r"^#{1,6} ", text, flags=re.M):
            if re.search(r"[Rr]aw (?:samples|numbers|file)[^.]*`reports/", section) and \
                    "historical" not in section.lower():
                unmarked.append(f"{page}: {section.splitlines()[0]}")
    assert unmarked == []


def test_a_target_is_met_only_while_its_committed_run_passes(numbers: ModuleType,
                                                             copy: Path) -> None:
    results = numbers.Results(copy)
    uncached = "uncached: >= 600 req/s"
    assert "**met**" in next(row for row in numbers.recs_targets(results, "docs/x.md").splitlines()
                             if row.startswith(f"| {uncached}"))
    run = sorted((copy / "docs" / "evaluation").glob("freshness-*"))[-1] / "openloop_slo.csv"
    run.write_text(run.read_text("utf-8").replace(",PASS,", ",FAIL,"), "utf-8")

    assert "**not met**" in next(row for row in numbers.recs_targets(results, "docs/x.md")
                                 .splitlines() if row.startswith(f"| {uncached}"))
