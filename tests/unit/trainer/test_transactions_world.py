"""The transaction world: the handbook's simulator, its extensions, determinism and storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.designs.model_features import TRANSACTION_TYPES
from services.trainer.worlds.transactions import (
    SCENARIO_NAMES,
    TRANSACTION_COLUMNS,
    TransactionWorld,
    TransactionWorldConfig,
    generate_transactions,
    load,
    prices_shifted,
    save,
)

TINY = TransactionWorldConfig(n_customers=200, n_terminals=400, n_days=40, seed=3)


@pytest.fixture(scope="module")
def world() -> TransactionWorld:
    return generate_transactions(TINY)


def test_the_same_seed_generates_the_same_world(world: TransactionWorld) -> None:
    again = generate_transactions(TINY)
    pd.testing.assert_frame_equal(world.transactions, again.transactions)
    pd.testing.assert_frame_equal(world.customers, again.customers)
    pd.testing.assert_frame_equal(world.terminals, again.terminals)


def test_another_seed_generates_another_world(world: TransactionWorld) -> None:
    other = generate_transactions(TransactionWorldConfig(
        n_customers=200, n_terminals=400, n_days=40, seed=4))
    assert not world.transactions["amount"].head(100).equals(other.transactions["amount"].head(100))


def test_every_fraud_scenario_appears(world: TransactionWorld) -> None:
    assert set(world.transactions["fraud_scenario"].unique()) == set(SCENARIO_NAMES)


def test_a_transaction_is_fraud_exactly_when_it_has_a_scenario(world: TransactionWorld) -> None:
    tx = world.transactions
    assert ((tx["fraud_scenario"] > 0) == (tx["is_fraud"] == 1)).all()


def test_transactions_have_the_documented_columns_sorted_by_time(world: TransactionWorld) -> None:
    tx = world.transactions
    assert tuple(tx.columns) == TRANSACTION_COLUMNS
    assert tx["tx_datetime"].is_monotonic_increasing
    assert tx["transaction_id"].is_unique


def test_ids_carry_their_prefixes(world: TransactionWorld) -> None:
    tx = world.transactions
    for column, prefix in [("transaction_id", "tx"), ("customer_id", "cust"), ("card_id", "card"),
                           ("terminal_id", "term"), ("merchant_id", "m"), ("device_id", "dev")]:
        assert tx[column].str.fullmatch(prefix + r"\d+").all(), column
    octet = r"(25[0-5]|2[0-4]\d|1?\d?\d)"
    assert tx["ip_address"].str.fullmatch(rf"{octet}(\.{octet}){{3}}").all()


def test_a_card_belongs_to_the_customer_with_its_number(world: TransactionWorld) -> None:
    tx = world.transactions
    assert (tx["card_id"].str.slice(4) == tx["customer_id"].str.slice(4)).all()


def test_labels_arrive_after_the_transaction(world: TransactionWorld) -> None:
    tx = world.transactions
    delay_days = (tx["label_time"] - tx["tx_datetime"]).dt.total_seconds() / 86_400
    fraud = tx["is_fraud"] == 1
    assert (delay_days[fraud] >= TINY.min_label_delay_days).all()
    assert (delay_days[fraud] <= TINY.max_label_delay_days).all()
    assert (delay_days[~fraud] == 7).all()


def test_only_fraud_exceeds_the_handbook_amount_threshold(world: TransactionWorld) -> None:
    tx = world.transactions
    assert (tx.loc[tx["is_fraud"] == 0, "amount"] <= TINY.fraud_amount_threshold).all()
    assert (tx["amount"] >= 0).all()


def test_customers_use_terminals_within_radius_five(world: TransactionWorld) -> None:
    tx = world.handbook_transactions
    customers = world.customers.set_index("customer_id").loc[tx["customer_id"]]
    terminals = world.terminals.set_index("terminal_id").loc[tx["terminal_id"]]
    distance = np.hypot(customers["x"].to_numpy() - terminals["x"].to_numpy(),
                        customers["y"].to_numpy() - terminals["y"].to_numpy())
    assert (distance < 5).all()


def test_the_handbook_world_is_the_extended_one_without_injected_patterns(
    world: TransactionWorld,
) -> None:
    handbook = world.handbook_transactions
    assert set(handbook["fraud_scenario"].unique()) <= {0, 1, 2, 3}
    assert len(handbook) == int((world.transactions["fraud_scenario"] <= 3).sum())


def test_the_grid_maps_onto_a_region_about_a_thousand_km_across(world: TransactionWorld) -> None:
    tx = world.transactions
    assert tx["latitude"].between(45, 54).all()
    assert tx["longitude"].between(0, 14).all()


def test_transaction_types_and_currency_are_the_catalogs(world: TransactionWorld) -> None:
    tx = world.transactions
    assert set(tx["transaction_type"].unique()) <= set(TRANSACTION_TYPES)
    assert (tx["currency"] == "EUR").all()


def test_card_testing_probes_are_small_amounts(world: TransactionWorld) -> None:
    probes = world.transactions[world.transactions["fraud_scenario"] == 4]
    assert (probes["amount"] < 5).mean() > 0.7  # the rest are cash-outs


def test_account_takeover_moves_large_amounts_online(world: TransactionWorld) -> None:
    takeover = world.transactions[world.transactions["fraud_scenario"] == 6]
    assert (takeover["amount"] >= 200).all()
    assert set(takeover["transaction_type"].unique()) <= {"transfer", "payment"}


def test_a_world_survives_a_save_and_load(world: TransactionWorld, tmp_path: Path) -> None:
    save(world, tmp_path / "transactions")
    back = load(tmp_path / "transactions")
    assert back.config == world.config
    pd.testing.assert_frame_equal(back.transactions, world.transactions)
    pd.testing.assert_frame_equal(back.customers, world.customers)


def test_a_price_shift_changes_what_transactions_cost_from_its_day_not_who_is_fraud(
        world: TransactionWorld) -> None:
    tx = world.transactions
    since = tx["tx_datetime"].min() + pd.Timedelta(days=30)
    shifted = prices_shifted(tx, 1.5, since)
    after = (tx["tx_datetime"] >= since).to_numpy()
    np.testing.assert_allclose(shifted["amount"][after], (tx["amount"][after] * 1.5).round(2))
    np.testing.assert_array_equal(shifted["amount"][~after], tx["amount"][~after])
    pd.testing.assert_frame_equal(shifted.drop(columns="amount"), tx.drop(columns="amount"))
    with pytest.raises(ValueError, match="positive"):
        prices_shifted(tx, 0.0)
