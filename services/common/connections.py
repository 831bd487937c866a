"""Kept-alive connections recycled by age, so a worker added behind one socket gets its share.

Every worker of a service accepts from one listening socket (services/common/workers.py), and
HTTP/1.1 keep-alive keeps a connection on the worker that accepted it for as long as requests
keep coming. A worker added under load (services/autoscaler) is therefore offered only the
connections opened after it started: a client with a warm pool, or HAProxy reusing its server
connections, keeps sending everything to the old workers. So a connection older than a bound
is answered once more with `Connection: close`; the client opens a new one, which whichever
worker is freest accepts (the busy one is slow to get back to its accept loop). It is gRPC's
MAX_CONNECTION_AGE and Envoy's max_connection_duration; closing after N requests (nginx's
keepalive_requests) would move a quiet connection as rarely as a busy one moves often.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLOSE = (b"connection", b"close")
PURGE_AT = 4096  # connections remembered before those past their age are forgotten


class RecycleConnections:
    """ASGI middleware: the first answer on a connection after `max_age_s` closes it.

    A connection is known by its peer's address (a per-process dict: each worker sees only its
    own connections). A closed connection's entry stays until the dict is purged; a new
    connection that happens to reuse the same client port is then recycled early, once.
    """

    def __init__(self, app: ASGIApp, max_age_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.max_age_s = max_age_s
        self._clock = clock
        self._opened: dict[tuple[str, int], float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or self.max_age_s <= 0 or not client:
            await self.app(scope, receive, send)
            return
        if not self._expired((str(client[0]), int(client[1]))):
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    message = {**message, "headers": [*headers, CLOSE]}
            await send(message)

        await self.app(scope, receive, closing)

    def _expired(self, peer: tuple[str, int]) -> bool:
        now = self._clock()
        opened = self._opened.setdefault(peer, now)
        if now - opened < self.max_age_s:
            return False
        del self._opened[peer]
        if len(self._opened) > PURGE_AT:
            self._opened = {p: t for p, t in self._opened.items() if now - t < self.max_age_s}
        return True
