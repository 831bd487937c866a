"""Unit tests (fakes, no servers) of the console."""
