"""The console's composition root: settings in; one HTTP client, the board, the load runner."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.common.http import create_service_app
from services.common.telemetry import Metrics
from services.console.api import router
from services.console.board import Board
from services.console.loadrun import LoadRunner
from services.console.prometheus import PrometheusVitals
from services.console.service import HERE, REPO_ROOT, Console
from services.console.settings import ConsoleSettings
from services.console.stack import Stack
from services.console.upstreams import upstreams


def shown_path(path: Path) -> str:
    """A path as the reader would type it: from the repository's root when it is inside."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(path)


def create_app(settings: ConsoleSettings) -> FastAPI:
    # one INFO line per call to a service would drown the console's own log
    logging.getLogger("httpx").setLevel(logging.WARNING)
    found = upstreams(settings)  # a bad MLSD_CONSOLE_URLS stops start-up
    client = httpx.AsyncClient(timeout=settings.console_timeout_s)
    stack = Stack(client, found)
    runner = LoadRunner(stack, settings.console_reports_dir / "console" / "load",
                        settings.console_load_worlds_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await runner.close()
            await client.aclose()

    # Ready as soon as it serves: the console shows the stack's health, it does not need it.
    app = create_service_app(title="console", metrics=Metrics(settings.service_name),
                             lifespan=lifespan, readiness={})
    prometheus = (PrometheusVitals(client, settings.console_prometheus_url)
                  if settings.console_prometheus_url else None)
    board = Board(stack, settings.console_scrape_interval_s / 2, prometheus)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["shown"] = shown_path
    app.state.console = Console(settings, stack, board, runner, templates)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
    return app
