"""Integration tests (real servers) of the jobs: catalog ETL, seeder, simulator."""
