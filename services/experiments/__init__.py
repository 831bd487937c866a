"""The experiments service: definitions (admin API), assignments, exposures, results (port 8020)."""
