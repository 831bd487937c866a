"""free_port: ports for servers about to start, chosen where no outgoing connection is given one."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.common import loopback
from services.common.loopback import PORT_FLOOR, free_port


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_a_free_port_lies_below_the_kernels_ephemeral_range_and_can_be_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("32768\t60999\n")
    monkeypatch.setattr(loopback, "EPHEMERAL_RANGE", ephemeral)
    ports = {free_port() for _ in range(20)}
    assert all(PORT_FLOOR <= port < 32768 and bindable(port) for port in ports)
    assert len(ports) > 1  # picked at random: two harnesses rarely pick alike


def test_without_room_below_the_range_the_kernel_picks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text(f"{PORT_FLOOR + 10}\t60999\n")
    monkeypatch.setattr(loopback, "EPHEMERAL_RANGE", ephemeral)
    port = free_port()
    assert port >= PORT_FLOOR + 10 and bindable(port)


def test_an_unreadable_range_is_taken_as_linuxs_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopback, "EPHEMERAL_RANGE", tmp_path / "missing")
    assert PORT_FLOOR <= free_port() < 32768


def test_no_port_is_handed_out_twice_by_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A topology draws all its ports before any server binds: the draws must differ even
    from a range so small that random picks would repeat."""
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text(f"{PORT_FLOOR + 1000}\t60999\n")
    monkeypatch.setattr(loopback, "EPHEMERAL_RANGE", ephemeral)
    monkeypatch.setattr(loopback, "_handed_out", set())
    ports = [free_port() for _ in range(200)]  # 200 of 1,000: repeats near certain at random
    assert len(set(ports)) == len(ports)
