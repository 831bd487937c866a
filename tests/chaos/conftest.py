"""Chaos fixtures: the cluster topology, its services, and where each fault writes its report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures shared with the end-to-end tier)
    cluster_client,
    cluster_topics,
    model_repository,
    on_cluster,
    start_service,
)
from tests.harness import REPO_ROOT


@pytest.fixture(scope="session")
def report_dir() -> Path:
    """reports/chaos/, or MLSD_CHAOS_REPORT_DIR (benchmarks/results/chaos for committed runs)."""
    folder = Path(os.environ.get("MLSD_CHAOS_REPORT_DIR", REPO_ROOT / "reports" / "chaos"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
