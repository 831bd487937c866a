"""Unit tests (fakes, no servers) of the stream service's handlers."""
