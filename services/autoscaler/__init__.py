"""Adds or removes a service's worker processes from its measured p99 and queue depth."""
