"""Integration tests (real servers) of the experiments design and service."""
