"""The interpreter's switch interval comes from the settings, once a process starts."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from services.common.settings import PlatformSettings


@pytest.fixture
def restored() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_the_switch_interval_is_cpythons_unless_set(restored: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSD_GIL_SWITCH_INTERVAL_MS", raising=False)
    sys.setswitchinterval(0.1)
    PlatformSettings().apply_to_interpreter()
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_the_switch_interval_is_read_from_the_environment(restored: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_GIL_SWITCH_INTERVAL_MS", "0.5")
    PlatformSettings().apply_to_interpreter()
    assert sys.getswitchinterval() == pytest.approx(0.0005)


@pytest.mark.parametrize("value", ["0", "-1", "1000"])
def test_a_switch_interval_out_of_range_is_refused(value: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_GIL_SWITCH_INTERVAL_MS", value)
    with pytest.raises(ValidationError, match="gil_switch_interval_ms"):
        PlatformSettings()
