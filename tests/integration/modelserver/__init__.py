"""Integration tests (real servers) of the model server."""
