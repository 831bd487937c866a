"""The Redis key layout: `<namespace>:<view>:{<entity>}`, one cluster slot per entity."""

from __future__ import annotations

from redis.crc import key_slot

from services.common.features.definitions import row_key


def test_a_row_key_names_namespace_view_and_entity_in_a_hash_tag() -> None:
    assert row_key("fs", "card_profile", "card42") == "fs:card_profile:{card42}"


def test_every_view_of_one_entity_lands_in_the_same_cluster_slot() -> None:
    views = ["card_profile", "card_velocity", "card_merchants"]

    slots = {key_slot(row_key("fs", view, "card42").encode()) for view in views}

    assert len(slots) == 1


def test_different_entities_spread_over_the_cluster_slots() -> None:
    slots = {key_slot(row_key("fs", "card_profile", f"card{i}").encode()) for i in range(1000)}

    assert len(slots) > 900  # 1,000 ids over 16,384 slots: a few collisions, no hot slot
