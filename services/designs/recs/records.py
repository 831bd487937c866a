"""Catalog titles of record and user profiles: written before anything is published or cached.

    CatalogRecords(pool).save(titles, messages, source, at)  # rows + their events, one txn
    ProfileRecords(pool).save(profiles); .all()              # (user id, kind, max maturity)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg_pool import ConnectionPool

from services.common.bus.ports import OutboundMessage
from services.common.records.outbox import enqueue
from services.designs.payloads import TitleData

_UPSERT_TITLE = b"""
INSERT INTO catalog_titles (content_id, title, genres, actors, maturity_rating, release_date,
                            rating, thumbnail_url, source, version_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (content_id) DO UPDATE
   SET title = EXCLUDED.title, genres = EXCLUDED.genres, actors = EXCLUDED.actors,
       maturity_rating = EXCLUDED.maturity_rating, release_date = EXCLUDED.release_date,
       rating = EXCLUDED.rating, thumbnail_url = EXCLUDED.thumbnail_url,
       source = EXCLUDED.source, version_at = EXCLUDED.version_at, updated_at = now()
 WHERE catalog_titles.version_at <= EXCLUDED.version_at"""


class CatalogRecords:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def save(self, titles: Sequence[TitleData], messages: Sequence[OutboundMessage],
             source: str, at: datetime) -> None:
        """The titles (newer metadata wins, as on the stream) and their events in the outbox,
        in one transaction: the relay publishes them only once this has committed."""
        with self._pool.connection() as conn, conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(_UPSERT_TITLE, [
                    (t.content_id, t.title, t.genres, t.actors, t.maturity_rating,
                     t.release_date, t.rating, t.thumbnail_url, source, at) for t in titles])
            enqueue(conn, messages)

    def titles(self) -> list[TitleData]:
        return [title for title, _ in self.versions()]

    def versions(self) -> list[tuple[TitleData, datetime]]:
        """Every title with the time of the load that made it the catalog's."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                b"SELECT content_id, title, genres, actors, maturity_rating, release_date, "
                b"rating, thumbnail_url, version_at FROM catalog_titles "
                b"ORDER BY content_id").fetchall()
        fields = ("content_id", "title", "genres", "actors", "maturity_rating", "release_date",
                  "rating", "thumbnail_url")
        return [(TitleData.model_validate(
            {k: v for k, v in zip(fields, row[:-1], strict=True) if v is not None}), row[-1])
            for row in rows]

    def announce(self, messages: Sequence[OutboundMessage]) -> None:
        """Events about titles already recorded, into the outbox (the rows stay as they are)."""
        with self._pool.connection() as conn, conn.transaction():
            enqueue(conn, messages)


Profile = tuple[str, str, int]  # user id, kind, max maturity level


class ProfileRecords:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def save(self, profiles: Sequence[Profile]) -> None:
        """Users and their profiles, created or updated, in one transaction."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(b"INSERT INTO users (user_id) VALUES (%s) ON CONFLICT DO NOTHING",
                            [(user,) for user, _, _ in profiles])
            cur.executemany(
                b"INSERT INTO profiles (user_id, kind, max_maturity) VALUES (%s, %s, %s) "
                b"ON CONFLICT (user_id) DO UPDATE SET kind = EXCLUDED.kind, "
                b"max_maturity = EXCLUDED.max_maturity, updated_at = now()",
                [(user, kind, int(limit)) for user, kind, limit in profiles])

    def all(self) -> list[Profile]:
        with self._pool.connection() as conn:
            rows = conn.execute(b"SELECT user_id, kind, max_maturity FROM profiles "
                                b"ORDER BY user_id").fetchall()
        return [(str(user), str(kind), int(limit)) for user, kind, limit in rows]
