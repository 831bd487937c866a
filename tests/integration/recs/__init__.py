"""Integration tests (real servers) of the recommender design and service."""
