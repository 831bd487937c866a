"""Run ingest: `python -m services.ingest` (MLSD_INGEST_HOST/PORT, MLSD_KAFKA_*, MLSD_REDIS_URL)."""

from __future__ import annotations

from services.common.http import serve
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    serve(create_app, settings, settings.ingest_host, settings.ingest_port)


if __name__ == "__main__":
    main()
