"""Unit tests (fakes, no servers) of the model server."""
