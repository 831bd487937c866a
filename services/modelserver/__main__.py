"""Run the model server: `python -m services.modelserver` (MLSD_MODEL_SERVER_HOST/PORT)."""

from __future__ import annotations

from services.common.http import serve
from services.modelserver.app import create_app
from services.modelserver.settings import ModelServerSettings


def main() -> None:
    settings = ModelServerSettings()
    serve(create_app, settings, settings.model_server_host, settings.model_server_port)


if __name__ == "__main__":
    main()
