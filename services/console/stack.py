"""The console's one client of the stack: each service's public HTTP API, errors made readable."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from services.console.diagram import Probe
from services.console.upstreams import Upstream
from services.console.vitals import Snapshot, parse


class ServiceAnswered(Exception):
    """A service refused a request (4xx) or failed it (5xx): its own words are the message."""

    def __init__(self, service: str, status: int, detail: str) -> None:
        super().__init__(f"{service} answered {status}: {detail}")
        self.service, self.status, self.detail = service, status, detail


class ServiceUnreachable(Exception):
    """No answer at all: the service is down, or slower than the console waits."""

    def __init__(self, service: str, error: Exception) -> None:
        super().__init__(f"{service} did not answer ({type(error).__name__}); is it running? "
                         "`make status` says")
        self.service = service


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else str(detail or body)[:300]


class Stack:
    def __init__(self, client: httpx.AsyncClient, upstreams: Mapping[str, Upstream]) -> None:
        self.client = client
        self.upstreams = upstreams

    async def call(self, service: str, method: str, path: str,
                   params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        url = self.upstreams[service].url + path
        try:
            response = await self.client.request(method, url, params=params, json=body)
        except httpx.HTTPError as error:
            raise ServiceUnreachable(service, error) from error
        if response.status_code >= 400:
            raise ServiceAnswered(service, response.status_code, _detail(response))
        return response.json()

    # --- the designs' APIs ---------------------------------------------------------------

    async def recommendations(self, user: str, k: int = 10) -> dict[str, Any]:
        # the id travels in the path: quote it whole, so "/" or "?" stay part of the id
        answer: dict[str, Any] = await self.call(
            "recommender", "GET", f"/v1/recommendations/{_quote(user)}", params={"k": k})
        return answer

    async def watch(self, user: str, content_id: str, source: str = "console") -> None:
        event = {"id": f"console-{uuid.uuid4().hex}", "type": "watch", "source": source,
                 "time": datetime.now(UTC).isoformat(),
                 "data": {"user_id": user, "content_id": content_id, "watch_seconds": 1800,
                          "completed": True}}
        await self.call("ingest", "POST", "/v1/events", body={"events": [event]})

    async def score(self, body: Mapping[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await self.call("fraud", "POST", "/v1/score", body=body)
        return answer

    async def experiments(self) -> list[dict[str, Any]]:
        answer = await self.call("experiments", "GET", "/v1/experiments")
        return list(answer["experiments"])

    async def results(self, key: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.call(
            "experiments", "GET", f"/v1/experiments/{_quote(key)}/results")
        return answer

    # --- probes and metrics ---------------------------------------------------------------

    async def probe(self, service: str) -> Probe:
        try:
            response = await self.client.get(self.upstreams[service].url + "/readyz")
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return Probe(None, {})
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        return Probe(response.status_code == 200, {str(k): str(v) for k, v in checks.items()})

    async def snapshot(self, service: str, route: str | None = None) -> Snapshot | None:
        try:
            response = await self.client.get(self.upstreams[service].url + "/metrics")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return parse(response.text, time.monotonic(), route)

    async def probe_all(self) -> dict[str, Probe]:
        names = list(self.upstreams)
        return dict(zip(names, await asyncio.gather(*(self.probe(n) for n in names)),
                        strict=True))


def _quote(segment: str) -> str:
    return quote(segment, safe="")
