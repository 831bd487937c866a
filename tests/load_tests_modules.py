"""Importing the load tests' modules in tests: load-tests/ is not a package (Locust puts the
locustfile's folder on sys.path, so its files import each other as top-level modules)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.harness import REPO_ROOT


def load(name: str) -> ModuleType:
    """load-tests/<name>.py as the module `load_tests_<name>`."""
    path = REPO_ROOT / "load-tests" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"load_tests_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module
