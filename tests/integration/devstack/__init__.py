"""Integration tests (real servers) of the local stack: the balancer process."""
