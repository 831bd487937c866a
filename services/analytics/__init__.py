"""Analytics over the lake: SQL (DuckDB) on the Parquet files the lake sink wrote."""
