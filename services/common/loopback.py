"""Free loopback ports for servers about to start, chosen where no outgoing connection is
given one: the harness's servers, the seeder's replayer, the load sweep's floor."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Ports handed out from here up to the kernel's ephemeral range.
PORT_FLOOR = 20000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")

# Every port handed out by this process: a topology draws its ~18 ports before any server binds
# one, so a check that nothing listens cannot see a port drawn a moment earlier. At random from
# ~12,800 ports, 18 draws hold a pair about once in a hundred topologies (a Redis node's bus
# port once collided so, 2026-12-07, "Address already in use").
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, chosen below the kernel's ephemeral range.

    bind(0) hands out a port from that range, the one the kernel also takes the local port of
    every outgoing connection from: a connection made between the pick and the server's own
    bind seconds later (a cluster's nodes connect to each other while Kafka starts) could hold
    it, and the server exited with "Address already in use" (a Kafka node of a chaos topology,
    twice in a day of runs). Below the range only another listener can take it, and no port is
    handed out twice by one process, so a topology's servers never draw the same one."""
    ephemeral_low = _ephemeral_low()
    if ephemeral_low - PORT_FLOOR >= 1000:
        if len(_handed_out) > (ephemeral_low - PORT_FLOOR) // 2:
            _handed_out.clear()  # a long-lived process: its early servers are long gone
        for _ in range(50):
            port = random.randrange(PORT_FLOOR, ephemeral_low)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where unreadable)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
