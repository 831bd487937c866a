"""The records service: topics and the outbox in and out of PostgreSQL, off every request path."""
