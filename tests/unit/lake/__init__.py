"""Unit tests (fakes, no servers) of the lake sink and its jobs."""
