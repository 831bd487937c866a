"""`make seed`: replay the synthetic worlds' history through Kafka so a fresh stack has features."""
