"""Every process's /metrics passes `promtool check metrics`, and every name carries its service.

One test per Prometheus job (tests/support/expositions.py builds each app without starting it).
promtool lints what CONTRIBUTING.md convention 6 asks: counters end in `_total`, base units
(seconds, not milliseconds), snake_case, help text on every metric.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.expositions import APPS, exposition, sample_labels


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: `make setup` installs it (Debian package `prometheus`).",
            pytrace=False,
        )
    return path


@pytest.mark.parametrize("job", sorted(APPS))
def test_every_metric_of_the_service_passes_promtool_check_metrics(
        job: str, tmp_path: Path) -> None:
    _, text = exposition(job, tmp_path)

    result = subprocess.run([promtool(), "check", "metrics"], input=text, text=True,
                            capture_output=True, timeout=60, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "_http_request_duration_seconds_bucket{" in text  # the shared shell's histogram


@pytest.mark.parametrize("job", sorted(APPS))
def test_every_metric_name_starts_with_its_service_name(job: str, tmp_path: Path) -> None:
    """`<service>_<what>_<unit>`: a dashboard finds a service's series by the prefix."""
    metrics, text = exposition(job, tmp_path)

    foreign = [name for name in sample_labels(text)
               if not name.startswith(f"{metrics.service}_")]

    assert foreign == []


def test_promtool_rejects_a_counter_without_total_and_a_unit_in_milliseconds() -> None:
    """The control for the checks above: promtool does flag what the rule forbids."""
    text = ("# HELP demo_requests requests\n# TYPE demo_requests counter\ndemo_requests 1\n"
            "# HELP demo_latency_milliseconds latency\n# TYPE demo_latency_milliseconds gauge\n"
            "demo_latency_milliseconds 3\n")

    result = subprocess.run([promtool(), "check", "metrics"], input=text, text=True,
                            capture_output=True, timeout=60, check=False)

    assert result.returncode != 0
    assert "counter metrics should have \"_total\" suffix" in result.stdout + result.stderr
    assert "milliseconds" in result.stdout + result.stderr
