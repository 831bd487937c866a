"""Integration tests (real servers) of the records service and store."""
