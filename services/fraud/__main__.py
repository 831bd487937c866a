"""Run the fraud API: `python -m services.fraud` (MLSD_FRAUD_HOST/PORT, MLSD_REDIS_URL, ...)."""

from __future__ import annotations

from services.common.http import serve
from services.fraud.app import create_app
from services.fraud.settings import FraudSettings


def main() -> None:
    settings = FraudSettings()
    serve(create_app, settings, settings.fraud_host, settings.fraud_port)


if __name__ == "__main__":
    main()
