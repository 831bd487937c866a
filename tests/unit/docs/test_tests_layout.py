"""The tests' own layout holds: no test module imports another, shared helpers live in support.

A helper two test modules need goes to tests/support/ (or tests/factories-like modules beside the
tier, such as tests/chaos/load.py), never into a test_*.py that others import: importing a test
module runs its fixtures' and tests' imports too and ties one test file's edits to another's.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from tests.harness import REPO_ROOT

TESTS = REPO_ROOT / "tests"


def imported_test_modules(source: str) -> list[str]:
    """The test modules (a dotted name whose last part starts with test_) a source imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            # `from tests.unit import test_x` names the test module in the imported names
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found
            if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")]


def python_files() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "data" not in path.parts)


def test_the_check_sees_each_way_of_importing_a_test_module() -> None:
    source = ("import tests.unit.fraud.test_fraud_rules\n"
              "from tests.unit.ingest.test_ingest_batching import watch\n"
              "from tests.integration.recs import test_recs_online_parity as parity\n"
              "from tests.support.fraud import POLICY_PATH\n"
              "from tests import recommender_world\n")
    assert imported_test_modules(source) == [
        "tests.unit.fraud.test_fraud_rules", "tests.unit.ingest.test_ingest_batching",
        "tests.integration.recs.test_recs_online_parity"]


def test_no_module_under_tests_imports_a_test_module() -> None:
    offenders = {str(path.relative_to(REPO_ROOT)): names for path in python_files()
                 if (names := imported_test_modules(path.read_text()))}
    assert offenders == {}, "move what they share to tests/support/"


def test_test_module_names_are_unique_within_each_tier() -> None:
    """The part folders are for reading: a module's name alone still says which it is in its tier
    (`pytest tests/unit -k test_fraud_rules`); a unit and an e2e module may share one."""
    for tier in sorted(path for path in TESTS.iterdir() if (path / "__init__.py").exists()):
        names = Counter(path.name for path in tier.rglob("test_*.py"))
        assert [name for name, count in names.items() if count > 1] == [], tier.name


def test_every_folder_with_test_modules_is_a_package() -> None:
    """Packages give each module its dotted name (tests.unit.fraud.test_x), so pytest imports
    them by that name and the tiers' shared helpers import the same way everywhere."""
    folders = {path.parent for path in python_files() if path.name.startswith("test_")}
    assert sorted(str(folder.relative_to(REPO_ROOT)) for folder in folders
                  if not (folder / "__init__.py").exists()) == []
