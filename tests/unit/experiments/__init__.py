"""Unit tests (fakes, no servers) of the experiments design and service."""
