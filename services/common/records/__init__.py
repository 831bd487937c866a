"""The system of record on PostgreSQL: settings, pool, migrations and one module per table group."""
