"""The lake: every event topic as Parquet files on disk, laid out by topic, date and hour."""
