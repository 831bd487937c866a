"""Run the experiments API: `python -m services.experiments` (MLSD_EXPERIMENTS_HOST/PORT, ...)."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import configure_logging
from services.experiments.app import create_app
from services.experiments.settings import ExperimentsSettings


def main() -> None:
    settings = ExperimentsSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.experiments_host,
                port=settings.experiments_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
