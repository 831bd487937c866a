"""The catalog ETL: title metadata from a file (CSV, JSON lines, Parquet) onto the catalog topic."""
