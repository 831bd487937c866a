"""`python -m services.stream`: every concern's consumer group in one process, probes on 8050."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import configure_logging
from services.stream.app import create_app
from services.stream.settings import StreamSettings


def main() -> None:
    settings = StreamSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.stream_host, port=settings.stream_port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
