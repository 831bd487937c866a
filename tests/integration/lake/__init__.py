"""Integration tests (real servers) of the lake sink and its jobs."""
