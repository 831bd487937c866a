"""Watch events -> users' histories and taste vectors, trending, popularity, cache invalidation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.common.bus.envelope import Event
from services.common.redis_client import RedisClient
from services.common.times import epoch_ms
from services.designs.parsing import parse_payload
from services.designs.payloads import WatchData, event_time_of
from services.designs.recs.artifacts import LiveItemArtifacts
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import RedisRecsStore
from services.designs.recs.state import Watch

logger = logging.getLogger(__name__)


@dataclass
class WatchCounts:
    """What the handler has seen since it started (for metrics and logs)."""

    watches: int = 0
    added: int = 0              # new to their user's history
    duplicates: int = 0         # already in it: a redelivery the runner's dedupe did not catch
    unknown_titles: int = 0     # kept in history, trending and popularity; no embedding yet
    ratings_ignored: int = 0


class WatchFeaturesHandler:
    """EventHandler for the watch-events topic: buffers watches, applies them on flush().

    Ratings share the topic but no ranker feature uses them, so they are skipped on purpose.
    A watch of a title the artifacts do not know (added to the catalog after the model was
    trained) is still a watch: it goes into the history (so it is never recommended again),
    trending and popularity; only the taste vector cannot use it until a model knows the title.
    """

    def __init__(self, client: RedisClient, items: ItemArtifacts | LiveItemArtifacts,
                 namespace: str = "fs") -> None:
        self._client = client
        self._namespace = namespace
        self._live = items if isinstance(items, LiveItemArtifacts) else None
        self._items = items.current() if isinstance(items, LiveItemArtifacts) else items
        self._store = RedisRecsStore(client, self._items, namespace)
        self._buffer: list[tuple[str, Watch]] = []
        self.counts = WatchCounts()

    def handle(self, event: Event) -> None:
        if event.type == "rating":
            self.counts.ratings_ignored += 1
            return
        data = parse_payload(event, "watch", WatchData)
        if data.content_id not in self._items.row_of:
            self.counts.unknown_titles += 1
        watch = Watch(event.id, data.content_id, data.completed,
                      epoch_ms(event_time_of(data, event.time)))
        self._buffer.append((data.user_id, watch))

    def flush(self) -> None:
        if not self._buffer:
            return
        self._follow_promotions()
        # The buffer is cleared only once applied: a retried flush sends the same events again.
        applied = self._store.apply_watches(self._buffer)
        self.counts.watches += len(self._buffer)
        self.counts.added += applied.added
        self.counts.duplicates += applied.duplicates
        if applied.duplicates:
            logger.info("redelivered watches left user state unchanged",
                        extra={"duplicates": applied.duplicates})
        self._buffer.clear()

    def _follow_promotions(self) -> None:
        """A newly promoted ranker's embeddings fold the next vectors (checked every few s)."""
        if self._live is None:
            return
        items = self._live.current()
        if items is not self._items:
            self._items = items
            self._store = RedisRecsStore(self._client, items, self._namespace)
