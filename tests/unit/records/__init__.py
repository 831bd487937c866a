"""Unit tests (fakes, no servers) of the records service and store."""
