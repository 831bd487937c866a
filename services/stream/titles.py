"""Catalog title events -> the catalog hash and release dates the recommender merges at refresh."""

from __future__ import annotations

from services.common.bus.envelope import Event
from services.common.redis_client import RedisClient
from services.common.times import epoch_ms
from services.designs.parsing import parse_payload
from services.designs.payloads import TitleData, event_time_of
from services.designs.recs.titles import CatalogTitle, write_titles


class CatalogTitlesHandler:
    """EventHandler for the catalog topic: buffers titles, writes them in one script on flush().

    Stamped with the envelope's event time: the script keeps whichever version of a title is
    newest, so a redelivered batch or an older event arriving late changes nothing. Within a
    batch the newest event of each title is the one sent.
    """

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._client = client
        self._namespace = namespace
        self._pending: dict[str, CatalogTitle] = {}
        self.changed = 0  # titles written since start (for logs and tests)

    def handle(self, event: Event) -> None:
        data = parse_payload(event, "title", TitleData)
        title = CatalogTitle(data, epoch_ms(event_time_of(data, event.time)))
        held = self._pending.get(data.content_id)
        if held is None or held.updated_ms < title.updated_ms:
            self._pending[data.content_id] = title

    def flush(self) -> None:
        if not self._pending:
            return
        self.changed += write_titles(self._client, list(self._pending.values()), self._namespace)
        self._pending.clear()  # only once Redis took them: a failed flush is sent again
