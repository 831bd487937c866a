"""Importing the load tests' modules in tests: load-tests/ is not a package (Locust puts the
locustfile's folder on sys.path, so its files import each other as top-level modules)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from tests.harness import REPO_ROOT

LOAD_TESTS = REPO_ROOT / "load-tests"


def load(name: str) -> ModuleType:
    """load-tests/<name>.py as the top-level module `<name>`, as Locust and `python
    load-tests/<script>.py` import it: openloop's `import slo` is then the test's `slo`."""
    if str(LOAD_TESTS) not in sys.path:
        sys.path.insert(0, str(LOAD_TESTS))
    module = importlib.import_module(name)
    # a same-named module from elsewhere would make these tests test something else
    assert module.__file__ == str(LOAD_TESTS / f"{name}.py"), module.__file__
    return module
