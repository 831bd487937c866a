"""Run ingest: `python -m services.ingest` (MLSD_INGEST_HOST/PORT, MLSD_KAFKA_*, MLSD_REDIS_URL)."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import configure_logging
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.ingest_host, port=settings.ingest_port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
