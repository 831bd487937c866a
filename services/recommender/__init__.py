"""The recommendation service: candidates, filter, score, rerank, inside 100 ms (port 8030)."""
