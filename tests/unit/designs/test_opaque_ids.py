"""Opaque ids, property-tested: any id is accepted, keeps a key and a hash tag of its own, and
reads back exactly from every member encoding (services/common/ids.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
import redis
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.common.bus.dedupe import RedisDeduplicator
from services.common.features.definitions import row_key
from services.common.ids import (
    MAX_ID_LENGTH,
    InvalidId,
    OpaqueId,
    check_id,
    escape,
    hash_tag,
    unescape,
)
from services.designs.experiments import counts as ec
from services.designs.experiments.exposures import exposure_event_id, logged_key
from services.designs.fraud import layout
from services.designs.fraud.commands import decode_batch
from services.designs.recs import keys
from services.designs.recs.state import Watch, title_and_completion
from services.fraud.state_store import RedisFraudStore

# Any character but a control character or a surrogate, with the reserved ones made likely.
_CHARACTERS = st.characters(exclude_categories=("Cc", "Cs"))
ids = st.text(st.one_of(_CHARACTERS, st.sampled_from("%{}|:/ 7BDC5")), min_size=1,
              max_size=MAX_ID_LENGTH)
ADAPTER = TypeAdapter(OpaqueId)


def cluster_hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first `{` and the next `}`, if any."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


KEY_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "feature row": lambda i: row_key("fs", "card_profile", i),
    "watch history": keys.history_key,
    "watch count": keys.watch_count_key,
    "user view": keys.user_view_key,
    "rec cache": keys.rec_cache_key,
    "profile": keys.profile_key,
    "trending": lambda i: keys.trending_key(catalog=i),
    "title watches": lambda i: keys.title_watches_key(20_000, catalog=i),
    "experiment unit": ec.unit_key,
    "request": ec.request_key,
    "experiment variations": ec.variations_key,
    "exposure logged": lambda i: logged_key(i, "rec-algorithm"),
    **{f"fraud {view.name}": (lambda i, v=view: v.key("fs", i)) for view in layout.VIEWS},
}


@given(ids)
def test_any_id_is_valid_and_escapes_back_to_itself(entity_id: str) -> None:
    assert check_id(entity_id) == ADAPTER.validate_python(entity_id) == entity_id
    assert unescape(escape(entity_id)) == entity_id
    assert not {"{", "}", "|"} & set(escape(entity_id))


@given(st.text(max_size=MAX_ID_LENGTH + 10))
def test_the_schema_and_the_store_agree_on_what_an_id_is(text: str) -> None:
    try:
        ADAPTER.validate_python(text)
        schema_accepts = True
    except ValidationError:
        schema_accepts = False
    try:
        check_id(text)
        store_accepts = True
    except InvalidId:
        store_accepts = False
    assert schema_accepts == store_accepts


@given(ids, ids)
def test_two_different_ids_never_share_an_escape_or_a_hash_tag(a: str, b: str) -> None:
    assume(a != b)
    assert escape(a) != escape(b)
    assert hash_tag(a) != hash_tag(b)


@pytest.mark.parametrize("name", sorted(KEY_FUNCTIONS))
@given(a=ids, b=ids)
def test_every_key_has_its_ids_own_hash_tag_and_two_ids_never_share_a_key(
        name: str, a: str, b: str) -> None:
    key_of = KEY_FUNCTIONS[name]
    assert cluster_hash_tag(key_of(a)) == escape(a)
    if a != b:
        assert key_of(a) != key_of(b)
        assert cluster_hash_tag(key_of(a)) != cluster_hash_tag(key_of(b))


@given(ids)
def test_the_fraud_decision_key_and_dedupe_key_keep_the_ids_tag(transaction_id: str) -> None:
    client = redis.Redis()  # never connected: only the key layout is under test
    store = RedisFraudStore(client)
    assert cluster_hash_tag(store.decision_key(transaction_id)) == escape(transaction_id)
    dedupe = RedisDeduplicator(client, "stream")
    assert cluster_hash_tag(dedupe._key(transaction_id)) == escape(transaction_id)


@given(ids, ids)
def test_exposure_event_ids_are_ids_and_differ_per_unit(a: str, b: str) -> None:
    assert check_id(exposure_event_id("rec-algorithm", a))
    if a != b:
        assert exposure_event_id("rec-algorithm", a) != exposure_event_id("rec-algorithm", b)


@given(content_id=ids, event_id=ids, completed=st.booleans(),
       time_ms=st.integers(0, 2**50))
def test_a_watch_history_member_reads_back_exactly(content_id: str, event_id: str,
                                                   completed: bool, time_ms: int) -> None:
    watch = Watch(event_id, content_id, completed, time_ms)
    member = watch.member
    assert Watch.from_member(member.encode(), time_ms) == watch
    assert title_and_completion(member.encode()) == (content_id, completed)


def _scored(*members: tuple[str, int]) -> list[list[object]]:
    """A RESP3 WITHSCORES reply."""
    return [[m.encode(), float(score)] for m, score in members]


@given(tid=ids, device=ids, other_tid=ids,
       amount=st.floats(0, 1e6, allow_nan=False), lat=st.floats(-90, 90),
       lon=st.floats(-180, 180))
def test_the_fraud_state_records_read_back_exactly(tid: str, device: str, other_tid: str,
                                                   amount: float, lat: float,
                                                   lon: float) -> None:
    at = 1_700_000_000_000
    card_log = (layout.card_record(at, tid, amount, lat, lon, device, "2001:db8::1")
                + layout.card_record(at + 1, other_tid, 1.0, 0.0, 0.0, "d", "10.0.0.1"))
    replies = [[
        card_log,
        layout.spend_record(at, tid, amount),
        [_scored((layout.fraud_member(tid, at + 5), at)), 1, 2, 3],
        [_scored((layout.fraud_member(other_tid, at + 6), at)), 4],
        [0, None],
        [0, None],
    ]]
    state = decode_batch(replies)
    assert state.customer["tx"][0] == layout.digest(tid)
    assert state.customer["amount"][0] == amount
    first = state.card[0]
    assert (first["tx"], first["device"], first["latitude"], first["longitude"]) == (
        layout.digest(tid), layout.digest(device), lat, lon)
    assert state.card["tx"][1] == layout.digest(other_tid)
    assert list(state.card_owner) == [0, 0]
    assert state.terminal_frauds[0][0].transaction_id == tid
    assert state.merchant_frauds[0][0].transaction_id == other_tid
    assert layout.digest(tid) != layout.digest(other_tid) or tid == other_tid


@pytest.mark.parametrize("bad", ["", "a\x00b", "tab\there", "x\x85", "x" * (MAX_ID_LENGTH + 1)])
def test_the_only_bad_ids_are_empty_too_long_or_holding_a_control_character(bad: str) -> None:
    with pytest.raises(InvalidId):
        check_id(bad)
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)


@pytest.mark.parametrize("good", ["user_123", "movie_456", "3f2c9a1e-8b7d-4c6a-9e5f-0a1b2c3d4e5f",
                                  "ana@example.com", "a|b", "{x}", "a:b/c d", "Zoë", "用户"])
def test_real_worlds_ids_are_ids(good: str) -> None:
    assert check_id(good) == ADAPTER.validate_python(good) == good


def test_the_title_watches_key_ends_with_its_date() -> None:
    day = (date(2026, 12, 6) - date(1970, 1, 1)).days
    assert keys.title_watches_key(day).endswith("{global}:2026-12-06")
