"""Unit tests (fakes, no servers) of the platform's (services/common)."""
