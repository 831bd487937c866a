"""A benchmark's or tool's script loaded as a module, so its pure parts can be unit-tested."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from services.devstack.servers import REPO_ROOT


def load_script(relative_path: str, name: str) -> ModuleType:
    """The script at REPO_ROOT / relative_path as module `name`, registered in sys.modules (its
    dataclasses look their module up while they are built)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
