"""Unit tests (fakes, no servers) of the fraud design and service."""
