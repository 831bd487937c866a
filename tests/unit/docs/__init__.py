"""Unit tests (fakes, no servers) of the docs' numbers and the layering rules."""
