"""Integration tests (real servers) of the ingest service."""
