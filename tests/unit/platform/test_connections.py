"""RecycleConnections: a kept-alive connection is closed by its first answer past the age bound."""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from services.common.connections import RecycleConnections


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def answer(app: RecycleConnections, peer: tuple[str, int],
           scope_type: str = "http") -> list[tuple[bytes, bytes]]:
    """The headers of one answer to a request from `peer` (host, port: one connection)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": scope_type, "client": peer, "method": "GET", "path": "/"}
    asyncio.run(app(scope, receive, send))
    return list(sent[0]["headers"])


def closes(headers: list[tuple[bytes, bytes]]) -> bool:
    return (b"connection", b"close") in headers


def test_a_connection_is_kept_until_its_age_passes_the_bound_then_closed_once() -> None:
    clock = Clock()
    app = RecycleConnections(ok, max_age_s=10.0, clock=clock)
    peer = ("127.0.0.1", 50_001)
    assert not closes(answer(app, peer))
    clock.now += 9.9
    assert not closes(answer(app, peer))
    clock.now += 0.2
    headers = answer(app, peer)
    assert closes(headers) and (b"content-type", b"text/plain") in headers
    # the client opens a new connection; should its port come back, it starts young
    assert not closes(answer(app, peer))


def test_each_connection_has_its_own_age() -> None:
    clock = Clock()
    app = RecycleConnections(ok, max_age_s=10.0, clock=clock)
    old, young = ("127.0.0.1", 50_001), ("127.0.0.1", 50_002)
    answer(app, old)
    clock.now += 8
    answer(app, young)
    clock.now += 3
    assert closes(answer(app, old))
    assert not closes(answer(app, young))


def test_an_age_of_zero_never_closes() -> None:
    clock = Clock()
    app = RecycleConnections(ok, max_age_s=0.0, clock=clock)
    answer(app, ("127.0.0.1", 50_001))
    clock.now += 3600
    assert not closes(answer(app, ("127.0.0.1", 50_001)))


def test_a_connection_header_the_app_set_is_left_alone() -> None:
    async def upgrade(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"connection", b"keep-alive")]})
        await send({"type": "http.response.body", "body": b""})

    clock = Clock()
    app = RecycleConnections(upgrade, max_age_s=1.0, clock=clock)
    answer(app, ("127.0.0.1", 50_001))
    clock.now += 2
    assert answer(app, ("127.0.0.1", 50_001)) == [(b"connection", b"keep-alive")]
