"""Which concerns a stream processor runs: the default leaves `transactions` to the fraud scorer
(ADR 0007); the rebuild and a stack without a scorer name `transaction-features`."""

from __future__ import annotations

import pytest

from services.common.bus import topics
from services.stream.concerns import CONCERNS, UnknownConcern, select
from services.stream.settings import StreamSettings


def consumed(names: str) -> set[str]:
    return {topic for concern in select(names) for topic in concern.topics}


def test_by_default_the_processor_records_what_the_scorer_handed_over_not_every_transaction(
        ) -> None:
    assert StreamSettings().stream_concerns == "default"
    assert topics.TRANSACTIONS not in consumed("default")
    assert topics.TRANSACTIONS_UNRECORDED in consumed("default")
    assert [c.name for c in select("default")] == [c.name for c in CONCERNS
                                                   if c.name != "transaction-features"]


def test_all_and_names_still_reach_the_transaction_concern() -> None:
    assert topics.TRANSACTIONS in consumed("all")
    assert [c.name for c in select("transaction-features, fraud-labels")] == [
        "transaction-features", "fraud-labels"]


def test_an_unknown_name_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownConcern, match="unrecorded-transactions"):
        select("transaction-feature")


def test_every_concern_has_its_own_group() -> None:
    groups = [c.group for c in CONCERNS]
    assert len(groups) == len(set(groups))
