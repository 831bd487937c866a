"""The personalization probe (load-tests/freshness.py) against a fake recommender and ingest."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.load_tests_modules import load

freshness = load("freshness")


class FakeStack:
    """A recommender whose list drops a watched title `lag` answers after ingest took it, and
    counts the watch only then; `count_watch=False`: the title leaves but the count stays."""

    def __init__(self, lag: int, count_watch: bool = True, ingest_status: int = 202) -> None:
        self.lag, self.count_watch, self.ingest_status = lag, count_watch, ingest_status
        self.watched: list[str] = []
        self.answers_since_watch = 0

    async def recommendations(self, _: web.Request) -> web.Response:
        titles, count = ["t1", "t2", "t3"], 5
        if self.watched:
            self.answers_since_watch += 1
            if self.answers_since_watch > self.lag:
                titles = [t for t in titles if t not in self.watched]
                count += int(self.count_watch)
        return web.json_response({"items": [{"content_id": t} for t in titles],
                                  "watch_count": count})

    async def events(self, request: web.Request) -> web.Response:
        body = await request.json()
        [event] = body["events"]
        assert event["type"] == "watch" and event["data"]["user_id"] == "u1"
        if self.ingest_status == 202:
            self.watched.append(event["data"]["content_id"])
        return web.json_response({}, status=self.ingest_status)


def _probe(stack: FakeStack, timeout_s: float = 1.0) -> Any:
    async def go() -> Any:
        app = web.Application()
        app.router.add_get("/v1/recommendations/{user}", stack.recommendations)
        app.router.add_post("/v1/events", stack.events)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        url = f"http://127.0.0.1:{server.port}"
        args = argparse.Namespace(recs=url, ingest=url, poll_ms=1.0, timeout_s=timeout_s)
        try:
            async with aiohttp.ClientSession() as session:
                return await freshness.probe(session, args, "u1", 0.0)
        finally:
            await server.close()

    return asyncio.run(go())


def test_a_probe_watches_the_first_title_and_times_until_a_list_built_on_it_drops_it() -> None:
    result = _probe(FakeStack(lag=3))
    assert (result.content_id, result.polls, result.error) == ("t1", 4, "")
    assert 0 < result.freshness_s < 1.0


def test_a_title_gone_without_the_watch_counted_is_not_the_change() -> None:
    result = _probe(FakeStack(lag=0, count_watch=False), timeout_s=0.2)
    assert result.freshness_s is None and result.error.startswith("still listed after")


def test_a_watch_ingest_refuses_is_a_failed_probe() -> None:
    result = _probe(FakeStack(lag=0, ingest_status=503))
    assert result.freshness_s is None and result.error == "ingest answered 503"


def _probes(*seconds: float | None) -> list[Any]:
    return [freshness.Probe(f"u{n}", "t1", 0.0, s, 1, "" if s is not None else "missed")
            for n, s in enumerate(seconds)]


def test_the_run_passes_when_every_list_changed_and_the_p99_is_inside_the_budget() -> None:
    summary = freshness.summarise(_probes(*[0.05] * 99, 0.9), budget_s=1.0)
    assert summary["passed"] and summary["changed"] == 100 and summary["p99_ms"] == 50.0
    assert summary["max_ms"] == 900.0


def test_a_slow_p99_or_a_single_miss_fails_the_run() -> None:
    assert not freshness.summarise(_probes(*[0.05] * 98, 1.2, 1.3), budget_s=1.0)["passed"]
    missed = freshness.summarise(_probes(*[0.05] * 99, None), budget_s=1.0)
    assert not missed["passed"] and missed["missed"] == 1 and missed["errors"] == ["missed"]
    assert not freshness.summarise([], budget_s=1.0)["passed"]
