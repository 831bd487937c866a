"""The lake sink: every event topic, as consumed from Kafka, into Parquet files by hour."""
