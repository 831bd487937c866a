"""Integration tests (real servers) of the platform's (services/common)."""
