"""Integration tests (real servers) of the fraud design and service."""
