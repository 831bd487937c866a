"""Catalog titles online: their Redis hash (written by the stream) and their merge into the items.

    catalog ETL ──title──▶ catalog topic ──▶ stream: write_titles ──▶ fs:catalog_titles:{global}
                                                      (newer wins)      fs:title_release:{global}
                                                                        fs:catalog_version:{global}
    recommender refresh: GET version ── moved? ──▶ HGETALL ──▶ with_catalog_titles(ranker items)

A title the ranker was not trained on is appended to the item set with a zero embedding (no
collaborative signal yet) and a content vector from its metadata, with training's definition
(definitions.content_vectors over the ranker's genre vocabulary). Spec: docs/recommendations.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

import numpy as np
from pydantic import ValidationError

from services.common.arrays import FloatArray
from services.common.redis_client import RedisClient
from services.common.redis_scripts import (
    LuaScript,
    run_pipeline,
    unavailable_as_domain_error,
)
from services.designs.model_features import MATURITY_RATINGS
from services.designs.payloads import TitleData
from services.designs.recs import definitions as rf
from services.designs.recs import keys
from services.designs.recs.items import ItemArtifacts, release_years

logger = logging.getLogger(__name__)

UNRATED_LEVEL = len(MATURITY_RATINGS) - 1
"""A title without a maturity rating is treated as the most restrictive one (NC-17): a kids or
teen profile never sees a title nobody rated."""

# KEYS[1] titles (hash), KEYS[2] release dates (hash), KEYS[3] version (string); all {catalog}.
# ARGV: content id, event time (ms), stored JSON, release (unix s, '' for none), ... per title.
# A title is written only if the stored one is older: a redelivered or late event changes
# nothing, so the write is idempotent and newer metadata always wins. The version moves only
# when something changed, so readers that watch it never re-read an unchanged catalog; it is the
# server's clock in ms (at least one past the last), so a catalog cleared and loaded again (a
# dataset switch, seconds later) never comes back with a version a reader already merged.
CATALOG_PUT = LuaScript("""
local changed = 0
for i = 1, #ARGV, 4 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if (not old) or tonumber(cjson.decode(old)['updated_ms']) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    if ARGV[i + 3] == '' then
      redis.call('HDEL', KEYS[2], ARGV[i])
    else
      redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 3])
    end
    changed = changed + 1
  end
end
if changed > 0 then
  local now = redis.call('TIME')
  local version = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  if version <= last then version = last + 1 end
  redis.call('SET', KEYS[3], string.format('%d', version))
end
return changed
""")


@dataclass(frozen=True)
class CatalogTitle:
    """One title as the catalog hash holds it: its metadata and when that was published."""

    data: TitleData
    updated_ms: int

    @property
    def content_id(self) -> str:
        return self.data.content_id

    @property
    def release_seconds(self) -> float:
        """Midnight UTC of the release date; without one, when the title entered the catalog."""
        if self.data.release_date is None:
            return self.updated_ms / 1_000.0
        return datetime.combine(self.data.release_date, time(), UTC).timestamp()

    @property
    def maturity_level(self) -> int:
        rating = self.data.maturity_rating
        return UNRATED_LEVEL if rating is None else MATURITY_RATINGS.index(rating)

    def stored(self) -> str:
        """The hash value: compact JSON, no id (it is the field), absent fields left out."""
        fields = self.data.model_dump(mode="json", exclude={"content_id"}, exclude_none=True)
        return json.dumps({**fields, "updated_ms": self.updated_ms}, separators=(",", ":"),
                          ensure_ascii=False)

    @classmethod
    def from_stored(cls, content_id: str, raw: bytes | str) -> CatalogTitle:
        """Parse a hash value back (ValueError if it is not one)."""
        try:
            fields = json.loads(raw)
            updated_ms = int(fields.pop("updated_ms"))
            return cls(TitleData.model_validate({**fields, "content_id": content_id}),
                       updated_ms)
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise ValueError(f"catalog title {content_id!r}: unreadable value: {exc}") from exc


def write_titles(client: RedisClient, titles: Sequence[CatalogTitle],
                 namespace: str = keys.DEFAULT_NAMESPACE, catalog: str = keys.CATALOG) -> int:
    """Store each title unless a newer version is stored; returns how many changed."""
    if not titles:
        return 0
    args: list[object] = []
    for title in titles:
        release = ("" if title.data.release_date is None else repr(title.release_seconds))
        args += [title.content_id, title.updated_ms, title.stored(), release]
    command = CATALOG_PUT.call([keys.catalog_titles_key(namespace, catalog),
                                keys.title_release_key(namespace, catalog),
                                keys.catalog_version_key(namespace, catalog)], *args)
    [changed] = run_pipeline(client, [command], [CATALOG_PUT])
    return int(changed)


class RedisCatalogTitles:
    """Reads the catalog hash; `version()` is the one GET a refresh pays when nothing moved."""

    def __init__(self, client: RedisClient, namespace: str = keys.DEFAULT_NAMESPACE,
                 catalog: str = keys.CATALOG) -> None:
        self._client = client
        self._titles_key = keys.catalog_titles_key(namespace, catalog)
        self._version_key = keys.catalog_version_key(namespace, catalog)

    def version(self) -> int:
        with unavailable_as_domain_error():
            return int(self._client.get(self._version_key) or 0)

    def read(self) -> tuple[int, list[CatalogTitle]]:
        """The version and every title. The hash is read after the version, so it is at least
        that new: a write in between is read again at the next refresh, never missed."""
        pipe = self._client.pipeline(transaction=False)
        pipe.get(self._version_key)
        pipe.hgetall(self._titles_key)
        with unavailable_as_domain_error():
            version, stored = pipe.execute()
        titles = []
        for field, raw in stored.items():
            content_id = field.decode() if isinstance(field, bytes) else field
            try:
                titles.append(CatalogTitle.from_stored(content_id, raw))
            except ValueError as exc:  # one bad value must not hide the whole catalog
                logger.warning("catalog title skipped", extra={"error": str(exc)})
        return int(version or 0), titles


def genre_multi_hot(genres: Sequence[str], vocabulary: Sequence[str]) -> FloatArray:
    """Multi-hot over the model's genre vocabulary (case-insensitive); other genres ignored."""
    index = {name.casefold(): i for i, name in enumerate(vocabulary)}
    row = np.zeros(len(vocabulary))
    for genre in genres:
        if (i := index.get(genre.casefold())) is not None:
            row[i] = 1.0
    return row


def with_catalog_titles(items: ItemArtifacts, titles: Sequence[CatalogTitle]) -> ItemArtifacts:
    """The ranker's items extended with the catalog: new titles appended, known ones renamed.

    A title the ranker knows keeps its trained rows (embedding, content vector, genres, maturity:
    what the model and the stored user vectors were built on) and takes the catalog's display
    title and genres. A title it does not know gets a new row: zero embedding, the genres of the
    vocabulary it has, release and maturity, and their content vector. Rows stay aligned across
    every array, `fingerprint` names the merged set and `stamp` stays the trained rows' own.
    """
    if not titles:
        return items
    by_id = {t.content_id: t for t in sorted(titles, key=lambda t: t.content_id)}
    n = len(items)
    names = list(items.names) + [""] * (n - len(items.names))
    labels = list(items.genre_labels) + [()] * (n - len(items.genre_labels))
    new = [t for t in by_id.values() if t.content_id not in items.row_of]
    for title in by_id.values():
        if (row := items.row_of.get(title.content_id)) is not None:
            names[row] = title.data.title
            labels[row] = tuple(title.data.genres)
    genres = np.asarray([genre_multi_hot(t.data.genres, items.genre_names) for t in new])
    genres = genres.reshape(len(new), len(items.genre_names))
    released = np.asarray([t.release_seconds for t in new], dtype=np.float64)
    maturity = np.asarray([t.maturity_level for t in new], dtype=np.int64)
    content = rf.content_vectors(genres, release_years(released), maturity)
    names += [t.data.title for t in new]
    labels += [tuple(t.data.genres) for t in new]
    digest = hashlib.sha256()
    for part in ("\n".join(t.content_id for t in new).encode(), genres.tobytes(),
                 released.tobytes(), maturity.tobytes(),
                 json.dumps([names, labels], ensure_ascii=False).encode()):
        digest.update(part)
    popularity = items.popularity_at_training
    return ItemArtifacts(
        fingerprint=f"{items.fingerprint}+catalog/{digest.hexdigest()[:16]}",
        digest=items.digest,
        title_ids=items.title_ids + tuple(t.content_id for t in new),
        embeddings=np.vstack([items.embeddings,
                              np.zeros((len(new), items.embeddings.shape[1]), np.float32)]),
        content=np.vstack([items.content, content.reshape(len(new), items.content.shape[1])]),
        genres=np.vstack([items.genres, genres]),
        genre_names=items.genre_names,
        release_seconds=np.concatenate([items.release_seconds, released]),
        maturity_levels=np.concatenate([items.maturity_levels, maturity]),
        names=tuple(names),
        popularity_at_training=(None if popularity is None
                                else np.concatenate([popularity, np.zeros(len(new))])),
        vectors_stamp=items.stamp,
        trained_rows=items.n_trained,
        genre_labels=tuple(labels),
    )
