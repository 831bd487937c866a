"""Unit tests (fakes, no servers) of the recommender design and service."""
