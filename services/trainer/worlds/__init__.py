"""Synthetic worlds with known ground truth, deterministic by seed (no data set is downloadable)."""
