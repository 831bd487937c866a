"""Run the model server: `python -m services.modelserver` (MLSD_MODEL_SERVER_HOST/PORT)."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import configure_logging
from services.modelserver.app import create_app
from services.modelserver.settings import ModelServerSettings


def main() -> None:
    settings = ModelServerSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.model_server_host,
                port=settings.model_server_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
