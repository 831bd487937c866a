"""Unit tests (fakes, no servers) of the local stack: processes, compose, Prometheus, scaling."""
