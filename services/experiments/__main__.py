"""Run the experiments API: `python -m services.experiments` (MLSD_EXPERIMENTS_HOST/PORT, ...)."""

from __future__ import annotations

from services.common.http import serve
from services.experiments.app import create_app
from services.experiments.settings import ExperimentsSettings


def main() -> None:
    settings = ExperimentsSettings()
    serve(create_app, settings, settings.experiments_host, settings.experiments_port)


if __name__ == "__main__":
    main()
