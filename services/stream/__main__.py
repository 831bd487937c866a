"""`python -m services.stream`: every concern's consumer group in one process, probes on 8050."""

from __future__ import annotations

from services.common.http import serve
from services.stream.app import create_app
from services.stream.settings import StreamSettings


def main() -> None:
    settings = StreamSettings()
    serve(create_app, settings, settings.stream_host, settings.stream_port)


if __name__ == "__main__":
    main()
