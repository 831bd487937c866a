"""Unit tests (fakes, no servers) of the designs' shared domain (services/designs)."""
