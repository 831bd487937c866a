"""Unit tests (fakes, no servers) of the jobs: catalog ETL, seeder, simulator."""
