"""Run the recommender: `python -m services.recommender` (MLSD_RECOMMENDER_HOST/PORT, ...)."""

from __future__ import annotations

from services.common.http import serve
from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings


def main() -> None:
    settings = RecommenderSettings()
    serve(create_app, settings, settings.recommender_host, settings.recommender_port)


if __name__ == "__main__":
    main()
