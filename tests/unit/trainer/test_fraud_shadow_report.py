"""The shadow report: production and the challenger on the same transactions, labelled as of an
instant, from a real Parquet lake (written by the sink's own loop), counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.bus import topics
from services.common.bus.ports import OutboundMessage
from services.common.lake.sql import open_lake
from services.trainer.fraud_shadow_report import ShadowReport, pairs, report
from tests import lake_events as ev

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
AS_OF = T + timedelta(days=10)
RECENT = AS_OF - timedelta(days=1)  # inside the label delay: labelled only if reported
PRODUCTION = [0.9, 0.05, 0.1, 0.1, 0.1, 0.1, 0.8, 0.1]
SHADOW = [0.9, 0.7, 0.1, 0.6, 0.1, 0.1, 0.9, 0.1]
FRAUD = {0, 1, 6}


def action(ml: float) -> str:
    return "decline" if ml >= 0.8 else "review" if ml >= 0.5 else "approve"


def decision(topic: str, i: int, ml: float, version: int, at: datetime,
             suffix: str = "") -> OutboundMessage:
    when = RECENT if i >= 6 else T
    return ev.message(topic, f"c{i}", "fraud_decision", {
        "transaction_id": f"x{i}", "card_id": f"c{i}", "user_id": f"u{i}",
        "transaction_time": when.isoformat(), "amount": 10.0, "path": "stream",
        "risk_score": ml, "risk_level": "low", "action": action(ml), "reason_codes": [],
        "rule_hits": [], "ml_score": ml, "model_version": version, "policy_version": "p1",
        "degraded": [], "features": None}, at, f"{topic}-{i}{suffix}")


@pytest.fixture(scope="module")
def shadow_report(tmp_path_factory: pytest.TempPathFactory) -> ShadowReport:
    root: Path = tmp_path_factory.mktemp("lake")
    messages = [decision(topics.FRAUD_DECISIONS, i, ml, 1, T) for i, ml in enumerate(PRODUCTION)]
    messages += [decision(topics.FRAUD_DECISIONS_SHADOW, i, ml, 2, T)
                 for i, ml in enumerate(SHADOW)]
    messages += [
        # a redelivered decision, later and otherwise: the first one counts
        decision(topics.FRAUD_DECISIONS, 0, 0.1, 1, T + timedelta(minutes=1), "-again"),
        decision(topics.FRAUD_DECISIONS, 8, 0.9, 1, T),  # production only: not a pair
        # a report after the instant is not known yet
        ev.message(topics.FRAUD_LABELS, "c7", "fraud_label", {
            "transaction_id": "x7", "card_id": "c7", "terminal_id": "k", "merchant_id": "m",
            "transaction_time": RECENT.isoformat(), "is_fraud": True},
            AS_OF + timedelta(hours=1), "label-7"),
    ]
    messages += [ev.message(topics.FRAUD_LABELS, f"c{i}", "fraud_label", {
        "transaction_id": f"x{i}", "card_id": f"c{i}", "terminal_id": "k", "merchant_id": "m",
        "transaction_time": T.isoformat(), "is_fraud": True}, AS_OF - timedelta(hours=1),
        f"label-{i}") for i in FRAUD]
    ev.fill_lake(root, messages)
    with open_lake(root) as con:
        return report(pairs(con, AS_OF), AS_OF)


def test_only_transactions_both_models_decided_count_each_by_its_first_decision(
        shadow_report: ShadowReport) -> None:
    assert shadow_report.pairs == 8
    assert shadow_report.agreement == pytest.approx(6 / 8)  # x1 and x3 differ
    assert shadow_report.actions["decline"]["decline"] == 2
    assert shadow_report.actions["approve"]["review"] == 2


def test_a_transaction_is_labelled_once_reported_or_once_its_delay_passed(
        shadow_report: ShadowReport) -> None:
    # x0-x5 are past the delay (x0, x1 reported); x6 is recent but reported; x7 neither yet
    assert (shadow_report.labelled, shadow_report.frauds) == (7, 3)


def test_both_models_are_scored_on_the_same_labelled_transactions(
        shadow_report: ShadowReport) -> None:
    production, shadow = shadow_report.production, shadow_report.shadow
    assert production is not None and shadow is not None
    assert (production.versions, shadow.versions) == ([1], [2])
    # production ranks x1's fraud below four genuine transactions: AP = 2/3 + 1/3 x 3/7
    assert production.average_precision == pytest.approx(2 / 3 + 1 / 7)
    assert shadow.average_precision == pytest.approx(1.0)
    assert production.decline_precision == 1.0
    assert production.decline_recall == pytest.approx(2 / 3)
    assert (shadow.flagged_precision, shadow.flagged_recall) == (0.75, 1.0)
