"""The layering contracts of `make lint` hold on this tree, and each one fails on a violation.

The contracts live in pyproject.toml ([tool.importlinter]; CONTRIBUTING.md explains them). Each
violation case copies `services/` and pyproject.toml into a temporary directory, adds one import
that breaks one rule, and runs `lint-imports` there: exactly that contract must break and every
other one must stay kept, so no contract is vacuous and none catches more than its rule.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPO_ROOT

CONFIG: dict[str, dict[str, Any]] = {
    contract["id"]: contract
    for contract in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"]["contracts"]
}
CONTRACTS = {contract_id: contract["name"] for contract_id, contract in CONFIG.items()}


@dataclass(frozen=True)
class Violation:
    """One deliberate break: the module written (or appended to), the line, the contract broken."""

    module: str
    line: str
    contract: str
    reported: str  # what the report must say, naming the offending import


VIOLATIONS = {
    "platform imports a service": Violation(
        "services/common/layering_probe.py", "from services.fraud import settings",
        "platform", "services.common is not allowed to import services.fraud"),
    "platform imports a design": Violation(
        "services/common/layering_probe.py", "from services.designs import payloads",
        "platform", "services.common is not allowed to import services.designs"),
    "a design imports a service": Violation(
        "services/designs/layering_probe.py", "from services.fraud import settings",
        "designs", "services.designs is not allowed to import services.fraud"),
    "a design imports another design": Violation(
        "services/designs/fraud/layering_probe.py", "from services.designs.recs import keys",
        "designs-independent",
        "services.designs.fraud is not allowed to import services.designs.recs"),
    "a service imports another service": Violation(
        "services/fraud/layering_probe.py", "from services.recommender import rerank",
        "services", "services.fraud is not allowed to import services.recommender"),
    "a service reads another's code beyond its settings": Violation(
        "services/console/upstreams.py", "from services.fraud import scorer",
        "services", "services.console is not allowed to import services.fraud"),
    "the stream scorer imports the HTTP app": Violation(
        "services/fraud/stream.py", "from services.fraud.app import create_app",
        "entry-points", "services.fraud.stream is not allowed to import services.fraud.app"),
    "the rules engine imports redis": Violation(
        "services/fraud/rules.py", "import redis",
        "pure-domain", "services.fraud.rules is not allowed to import redis"),
    # catchup already has a listed exception (it runs the stream's concerns): a NEW forbidden
    # import through another path must still break the contract
    "a module with a listed exception gains a new one": Violation(
        "services/seeder/catchup.py", "from services.recommender import service",
        "jobs", "services.seeder is not allowed to import services.recommender"),
    "rerank imports fastapi indirectly": Violation(
        "services/recommender/rerank.py", "from services.common import http",
        "pure-domain", "services.recommender.rerank is not allowed to import fastapi"),
    "serving imports the trainer": Violation(
        "services/recommender/layering_probe.py", "from services.trainer import recs_models",
        "serving-not-training", "services.recommender is not allowed to import services.trainer"),
    "serving imports scikit-learn": Violation(
        "services/fraud/layering_probe.py", "import sklearn",
        "serving-not-training", "services.fraud is not allowed to import sklearn"),
    "a job imports a service's internals": Violation(
        "services/simulator/layering_probe.py", "from services.recommender import service",
        "jobs", "services.simulator is not allowed to import services.recommender"),
    # the seeder's listed exceptions name its modules: a new module of it is held to the rule
    "a new seeder module runs the stream's handlers": Violation(
        "services/seeder/layering_probe.py", "from services.stream import concerns",
        "jobs", "services.seeder is not allowed to import services.stream"),
    "a job imports another job": Violation(
        "services/analytics/layering_probe.py", "from services.seeder import history",
        "jobs-independent", "services.analytics is not allowed to import services.seeder"),
}


def lint_imports_program() -> str:
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed: `make setup` installs the dev extra "
                    "(import-linter, pinned in pyproject.toml).", pytrace=False)
    return found


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` as `make lint` runs it, over the `services` package found from `cwd`."""
    # The copy must shadow the installed (editable) package: import-linter puts the working
    # directory first on sys.path, and PYTHONPATH makes sure of it. A wide terminal keeps each
    # contract's verdict on one line.
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [lint_imports_program(), "--no-logo", "--no-cache"],
        cwd=cwd, env=env, text=True, capture_output=True, timeout=120, check=False)


def verdicts(report: str) -> dict[str, str]:
    """Each contract's KEPT or BROKEN, by id, from the report's summary lines."""
    found = {}
    for contract_id, name in CONTRACTS.items():
        match = re.search(rf"^{re.escape(name)} (KEPT|BROKEN)", report, re.MULTILINE)
        assert match is not None, f"no verdict for {name!r} in:\n{report}"
        found[contract_id] = match.group(1)
    return found


def copy_of_tree(into: Path) -> Path:
    shutil.copytree(REPO_ROOT / "services", into / "services",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO_ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def test_every_part_is_a_service_or_a_job_and_under_every_contract_of_its_kind() -> None:
    """A new folder under services/ that no contract names would be checked by none."""
    parts = {f"services.{path.parent.name}"
             for path in (REPO_ROOT / "services").glob("*/__init__.py")}
    services = set(CONFIG["services"]["modules"])
    jobs = set(CONFIG["jobs"]["source_modules"])

    shared = {"services.common", "services.designs"}
    assert services | jobs == parts - shared
    assert services & jobs == set()
    assert set(CONFIG["platform"]["forbidden_modules"]) == services | jobs | {"services.designs"}
    assert set(CONFIG["designs"]["forbidden_modules"]) == services | jobs
    assert set(CONFIG["serving-not-training"]["source_modules"]) == services | shared
    assert set(CONFIG["jobs"]["forbidden_modules"]) == services
    assert set(CONFIG["jobs-independent"]["modules"]) == jobs


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO_ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == dict.fromkeys(CONTRACTS, "KEPT")


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_deliberate_violation_breaks_exactly_its_contract(case: str, tmp_path: Path) -> None:
    violation = VIOLATIONS[case]
    tree = copy_of_tree(tmp_path)
    module = tree / violation.module
    before = module.read_text() if module.exists() else '"""A deliberate layering violation."""\n'
    module.write_text(before + violation.line + "\n")

    result = lint_imports(tree)

    assert result.returncode == 1, result.stdout + result.stderr
    expected = dict.fromkeys(CONTRACTS, "KEPT") | {violation.contract: "BROKEN"}
    assert verdicts(result.stdout) == expected, result.stdout
    assert violation.reported in result.stdout


def test_a_listed_exception_that_no_longer_exists_is_an_error(tmp_path: Path) -> None:
    """When the layout sweep removes an import, its ignore_imports entry must go with it."""
    tree = copy_of_tree(tmp_path)
    catchup = tree / "services/seeder/catchup.py"
    listed = "services.stream.concerns"
    catchup.write_text(catchup.read_text().replace(f"from {listed} import", "from typing import"))

    result = lint_imports(tree)

    assert result.returncode != 0
    report = result.stdout + result.stderr
    assert f"No matches for ignored import services.seeder.catchup -> {listed}" in report
