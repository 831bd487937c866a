"""Run the fraud API: `python -m services.fraud` (MLSD_FRAUD_HOST/PORT, MLSD_REDIS_URL, ...)."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import configure_logging
from services.fraud.app import create_app
from services.fraud.settings import FraudSettings


def main() -> None:
    settings = FraudSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.fraud_host, port=settings.fraud_port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
