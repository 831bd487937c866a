"""Integration tests (real servers) of the console."""
