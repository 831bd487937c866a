"""Run the recommender: `python -m services.recommender` (MLSD_RECOMMENDER_HOST/PORT, ...)."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import configure_logging
from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings


def main() -> None:
    settings = RecommenderSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.recommender_host,
                port=settings.recommender_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
