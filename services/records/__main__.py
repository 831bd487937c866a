"""`python -m services.records`: decision and label writers, outbox relay, registry audit sync."""

from __future__ import annotations

from services.common.http import serve
from services.records.app import create_app
from services.records.settings import RecordsSettings


def main() -> None:
    settings = RecordsSettings()
    serve(create_app, settings, settings.records_host, settings.records_port)


if __name__ == "__main__":
    main()
