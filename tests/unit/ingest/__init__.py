"""Unit tests (fakes, no servers) of the ingest service."""
