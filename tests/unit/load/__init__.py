"""Unit tests (fakes, no servers) of the load tests' modules (load-tests/)."""
