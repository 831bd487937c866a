"""Run the demo console: `python -m services.console` (MLSD_CONSOLE_HOST/PORT, ...)."""

from __future__ import annotations

from services.common.http import serve
from services.console.app import create_app
from services.console.settings import ConsoleSettings


def main() -> None:
    settings = ConsoleSettings()
    serve(create_app, settings, settings.console_host, settings.console_port)


if __name__ == "__main__":
    main()
