"""The Redis key layout of the online recommendation state (spec: docs/recs-features-online.md).

Per-user keys carry the user id as their hash tag, so one user's keys share a Redis Cluster slot
and the one-round-trip read of a user touches one node. Per-catalog keys (trending, daily title
watches) carry the catalog as their hash tag: they are the hot keys of this design.
"""

from __future__ import annotations

from datetime import date, timedelta

from services.common.features.definitions import check_entity_id, entity_tag, row_key

DEFAULT_NAMESPACE = "fs"
CATALOG = "global"  # one catalog today; a regional catalog would get its own trending keys
USER_VIEW = "recs_user"  # the feature-store view of a user's taste vector and profiles

HISTORY_CAP = 500
"""Watch events kept per user; the viewing world's heaviest user has 300 (see the docs page)."""
USER_TTL = timedelta(days=180)        # history, count and vectors of a user idle this long go
POPULARITY_BUCKET_TTL = timedelta(days=33)  # a day's counts outlive the 30-day window they feed
REC_CACHE_TTL_S = 300

_EPOCH = date(1970, 1, 1)


def history_key(user_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Sorted set: one member per watch event, scored by its event time in epoch ms."""
    return f"{namespace}:watch_history:{entity_tag(user_id)}"


def watch_count_key(user_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """String counter: the user's watch events over all history (the history itself is capped)."""
    return f"{namespace}:watch_count:{entity_tag(user_id)}"


def user_view_key(user_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Feature-store hash of the view USER_VIEW: taste, profile, genre_counts, artifacts, _ts."""
    return row_key(namespace, USER_VIEW, check_entity_id(user_id))


def rec_cache_key(user_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Hash of cached recommendation responses, field = k: one DEL drops all of a user's lists."""
    return f"{namespace}:rec_cache:{entity_tag(user_id)}"


def profile_key(user_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Hash of the user's profile as the account system knows it: kind, max_maturity (no TTL)."""
    return f"{namespace}:user_profile:{entity_tag(user_id)}"


def dataset_key(namespace: str = DEFAULT_NAMESPACE) -> str:
    """String: the dataset the recommendation state was built from (the seeder's marker)."""
    return f"{namespace}:recs_dataset"


RECS_STATE_VIEWS = ("watch_history", "watch_count", USER_VIEW, "rec_cache", "user_profile",
                    "trending", "title_release", "title_watches", "catalog_titles",
                    "catalog_version")
"""Every key family above that belongs to one dataset's users and titles (not the fraud state,
not the experiments' definitions and counters): what a switch of dataset clears."""


def recs_state_patterns(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """SCAN patterns of the RECS_STATE_VIEWS keys."""
    return [f"{namespace}:{view}:*" for view in RECS_STATE_VIEWS]


def trending_key(namespace: str = DEFAULT_NAMESPACE, catalog: str = CATALOG) -> str:
    """Sorted set: member = content id, score = log2 of sum 2^(t / half-life) over its watches."""
    return f"{namespace}:trending:{entity_tag(catalog)}"


def title_release_key(namespace: str = DEFAULT_NAMESPACE, catalog: str = CATALOG) -> str:
    """Hash of the catalog's release dates: field = content id, value = unix seconds."""
    return f"{namespace}:title_release:{entity_tag(catalog)}"


def catalog_titles_key(namespace: str = DEFAULT_NAMESPACE, catalog: str = CATALOG) -> str:
    """Hash of the catalog's title metadata: field = content id, value = compact JSON of
    TitleData without the id, plus `updated_ms` (the event time it was published at)."""
    return f"{namespace}:catalog_titles:{entity_tag(catalog)}"


def catalog_version_key(namespace: str = DEFAULT_NAMESPACE, catalog: str = CATALOG) -> str:
    """String counter, bumped by every write that changed catalog_titles_key: readers that
    merge the catalog re-read the hash only when it moved (one GET otherwise)."""
    return f"{namespace}:catalog_version:{entity_tag(catalog)}"


def day_of(time_ms: int) -> int:
    """The UTC day (days since 1970-01-01) an epoch-ms instant falls in."""
    return time_ms // 86_400_000


def title_watches_key(day: int, namespace: str = DEFAULT_NAMESPACE,
                      catalog: str = CATALOG) -> str:
    """Hash of one UTC day's watch counts: field = content id. The suffix is the ISO date."""
    iso = (_EPOCH + timedelta(days=day)).isoformat()
    return f"{namespace}:title_watches:{entity_tag(catalog)}:{iso}"
