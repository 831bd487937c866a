"""Ingest: typed events in over HTTP, on Kafka when the broker acknowledged them, port 8000."""
