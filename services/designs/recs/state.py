"""A user's and the catalog's online state as values, and the pure arithmetic on them (no I/O).

Everything here is defined through services.designs.recs.definitions, the definitions training uses:
the taste vector and profiles are the definitions' weighted sums over the user's watch history, and
the trending and popularity values are those definitions evaluated at a given instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray, IntArray
from services.common.ids import FIELD_SEPARATOR, escape, unescape
from services.designs.recs import definitions as rf
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.keys import day_of

HALF_LIFE_S = rf.TRENDING_HALF_LIFE_HOURS * 3_600.0
MS_PER_DAY = 86_400_000
SEPARATOR = FIELD_SEPARATOR  # the content id is escaped; the event id, last, is kept whole


@dataclass(frozen=True)
class Watch:
    """One watch event as the history keeps it."""

    event_id: str
    content_id: str
    completed: bool
    time_ms: int

    @property
    def member(self) -> str:
        """The history member: the same event always gives the same member (idempotent ZADD)."""
        return SEPARATOR.join((escape(self.content_id), "1" if self.completed else "0",
                               self.event_id))

    @classmethod
    def from_member(cls, member: bytes | str, time_ms: float) -> Watch:
        text = member.decode() if isinstance(member, bytes) else member
        content_id, completed, event_id = text.split(SEPARATOR, 2)
        return cls(event_id, unescape(content_id), completed == "1", int(time_ms))


def title_and_completion(member: bytes) -> tuple[str, bool]:
    """What the fold-in needs from a history member, without building a Watch (stream hot path)."""
    content_id, completed, _ = member.split(b"|", 2)
    return unescape(content_id.decode()), completed == b"1"


@dataclass(frozen=True)
class StoredVectors:
    """What the stream processor materialized for a user, stamped with the artifacts it used."""

    artifacts: str
    watch_count: int                            # the user's count when these were folded in
    taste: npt.NDArray[np.float32]
    profile: npt.NDArray[np.float32]
    genre_counts: npt.NDArray[np.float32]


@dataclass(frozen=True)
class UserOnlineState:
    """Everything the one-round-trip read returns about a user (and the trending head)."""

    user_id: str
    history: tuple[Watch, ...]                  # oldest first, at most HISTORY_CAP events
    watch_count: int                            # watch events over all history
    stored: StoredVectors | None                # None before the stream wrote any
    trending: tuple[tuple[str, float], ...]     # top N (content id, log2 score), best first
    max_maturity: int | None = None             # the profile's limit; None: no profile stored


@dataclass(frozen=True)
class UserVectors:
    """A user's side of the ranker features, in the artifacts' title rows."""

    taste: FloatArray                        # [dim]
    profile: FloatArray                      # [content dim]
    genre_counts: FloatArray                 # [genres] watch-weighted
    top_genres: npt.NDArray[np.bool_]           # [genres]
    watch_count: int
    watched: IntArray                        # distinct rows of watched titles (to filter)
    recomputed: bool                            # True: folded in here, not read from the stream


def vectors_from_history(history: Sequence[Watch], items: ItemArtifacts) -> tuple[
        FloatArray, FloatArray, FloatArray]:
    """Taste, content profile and weighted genre counts over the history's known titles."""
    return fold_in([(w.content_id, w.completed) for w in history], items)


def fold_in(watched: Sequence[tuple[str, bool]], items: ItemArtifacts) -> tuple[
        FloatArray, FloatArray, FloatArray]:
    """Taste, content profile and weighted genre counts of (content id, completed) watch events.

    Training's definitions: each is sum over watch events of watch weight x the title's row
    (item embedding, content vector, genre multi-hot). A rewatch counts again; a title the
    artifacts do not know (added after training) has no embedding and is left out, as training
    would have left it out. So is a title the catalog added after training (a row past
    `n_trained`): vectors stamped with `items.stamp` stay the same whatever the catalog adds.
    """
    row_of, trained = items.row_of, items.n_trained
    known = [(row, done) for title, done in watched
             if (row := row_of.get(title, trained)) < trained]
    rows = np.asarray([row for row, _ in known], dtype=np.int64)
    weights = rf.watch_weights([done for _, done in known])
    taste = rf.taste_vector(items.embeddings, rows, weights)
    profile = rf.genre_profile(items.content, rows, weights)
    # The same weighted sum over genre multi-hot rows (training: weights @ genres).
    genre_counts = rf.taste_vector(items.genres, rows, weights)
    return taste, profile, genre_counts


def user_vectors(state: UserOnlineState, items: ItemArtifacts) -> UserVectors:
    """The stream's stored vectors if they match this read, else folded in here from the history.

    Stored vectors are used when they were folded in with these artifacts and from the history
    this read returned (same all-history watch count). Otherwise, after a new model version or
    while the stream is between writing a history and its vectors, the history gives the same
    vectors (float32 storage aside): features never lag the history or mix model versions.
    """
    stored = state.stored
    if (stored is not None and stored.artifacts == items.stamp
            and stored.watch_count == state.watch_count):
        taste, profile, counts = (np.asarray(v, dtype=np.float64) for v in
                                  (stored.taste, stored.profile, stored.genre_counts))
        recomputed = False
    else:
        taste, profile, counts = vectors_from_history(state.history, items)
        recomputed = True
    watched = np.unique(items.rows([w.content_id for w in state.history]))
    return UserVectors(
        taste=taste, profile=profile, genre_counts=counts,
        top_genres=rf.top_genres_mask(counts)[0],
        watch_count=max(state.watch_count, len(state.history)),
        watched=watched, recomputed=recomputed,
    )


# --- Trending: one sorted set of log2 scores relative to the unix epoch -----------------------


def log2_weights(times_ms: npt.ArrayLike) -> FloatArray:
    """log2 of each watch's weight relative to the epoch: 2^(t / half-life), kept as t / h."""
    seconds = np.asarray(times_ms, dtype=np.float64) / 1_000.0
    weights: FloatArray = seconds / HALF_LIFE_S
    return weights


def log2_sum(log2_values: npt.ArrayLike) -> float:
    """log2 of the sum of 2^v, without ever forming 2^v (t / h is about 20,000 today)."""
    return float(np.logaddexp2.reduce(np.asarray(log2_values, dtype=np.float64)))


def decayed_counts(log2_scores: npt.ArrayLike, now_s: float) -> FloatArray:
    """sum over watches of rf.decay_factor(now - t), from the stored log2 scores.

    2^(score - now / h) = sum 2^((t - now) / h) = sum decay_factor(now - t). A title never
    watched has score -inf and count 0. The order of scores is the trending order at any instant,
    so ZREVRANGE on the stored scores is the trending ranking without touching any score.
    """
    counts: FloatArray = np.exp2(np.asarray(log2_scores, dtype=np.float64)
                                    - now_s / HALF_LIFE_S)
    return counts


def trending_values(log2_scores: npt.ArrayLike, now_s: float) -> FloatArray:
    """The trending_score feature at `now_s`."""
    return rf.trending_scores(decayed_counts(log2_scores, now_s))


# --- Popularity: daily buckets --------------------------------------------------------------


def popularity_days(now_s: float) -> range:
    """The UTC days whose buckets make up the popularity window at `now_s`.

    The 30 whole days before today, and today so far: [midnight - 30 d, now). At midnight that is
    exactly the definition's [now - 30 d, now); later in the day it reaches back up to 24 h more.
    """
    today = day_of(int(np.floor(now_s * 1_000)))
    return range(today - rf.POPULARITY_WINDOW_DAYS, today + 1)


@dataclass(frozen=True)
class ItemStats:
    """A snapshot of every title's popularity and trending state, in artifact rows."""

    read_at_s: float
    window_counts: IntArray                  # watches in the popularity window at read_at_s
    trending_log2: FloatArray                # log2 scores (-inf: never watched)
    # The catalog's release dates where it has one (NaN: use the artifacts' copy). Title
    # metadata belongs to the catalog, not the model: replayed history moves the clock, and a
    # release date that stays behind would age every title by the replay's shift.
    release_seconds: FloatArray | None = None

    @property
    def popularity(self) -> FloatArray:
        """The popularity feature as of the snapshot (the 30-day window moves slowly)."""
        return rf.popularity_scores(self.window_counts)

    def with_trending(self, top: Sequence[tuple[str, float]], items: ItemArtifacts) -> ItemStats:
        """The snapshot with fresher trending scores for some titles (e.g. a request's top N)."""
        scores = self.trending_log2.copy()
        for content_id, score in top:
            row = items.row_of.get(content_id)
            if row is not None:
                scores[row] = score
        return ItemStats(self.read_at_s, self.window_counts, scores, self.release_seconds)

    def release_of(self, items: ItemArtifacts) -> FloatArray:
        """Release times in artifact rows: the catalog's where known, else the artifacts'."""
        if self.release_seconds is None:
            return items.release_seconds
        known: FloatArray = np.where(np.isnan(self.release_seconds), items.release_seconds,
                                        self.release_seconds)
        return known


def trending_rows(state: UserOnlineState, items: ItemArtifacts) -> IntArray:
    """The read's trending head as artifact rows, best first (titles unknown to them left out)."""
    return items.rows([content_id for content_id, _ in state.trending])
