"""Free loopback ports for servers about to start, chosen where no outgoing connection is
given one: the harness's servers, the seeder's replayer, the load sweep's floor."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Ports handed out from here up to the kernel's ephemeral range.
PORT_FLOOR = 20000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A loopback port nothing listens on now, chosen below the kernel's ephemeral range.

    bind(0) hands out a port from that range, the one the kernel also takes the local port of
    every outgoing connection from: a connection made between the pick and the server's own
    bind seconds later (a cluster's nodes connect to each other while Kafka starts) could hold
    it, and the server exited with "Address already in use" (a Kafka node of a chaos topology,
    twice in a day of runs). Below the range only another listener can take it."""
    ephemeral_low = _ephemeral_low()
    if ephemeral_low - PORT_FLOOR >= 1000:
        for _ in range(50):
            port = random.randrange(PORT_FLOOR, ephemeral_low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
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
