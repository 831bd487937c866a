"""The feature catalog: each model input's name, order and meaning, for training and serving.

This is the one place a model feature is defined. The trainer builds its matrices in this order,
the stream processor maintains the aggregates these definitions need, and the services assemble
the same vector at request time. A model's metadata records the names it was trained on; serving
refuses a model whose names differ from the catalog's (no train/serve skew by construction).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFeature:
    name: str
    description: str


# --- Fraud -----------------------------------------------------------------------------------
# Windows are "the N days before this transaction": [t - N, t), so the transaction itself and
# others at the same instant are excluded, and "previous" means strictly earlier.
# Terminal risk uses only labels known at decision time: frauds among the terminal's transactions
# in the window that ends DELAY_DAYS before now (the handbook's delay period: labels take about a
# week to arrive).
TERMINAL_RISK_DELAY_DAYS = 7
FRAUD_LONGEST_WINDOW_DAYS = 30
FRAUD_REACH_DAYS = FRAUD_LONGEST_WINDOW_DAYS + TERMINAL_RISK_DELAY_DAYS
"""How far back a fraud vector looks: terminal and merchant risk's 30 days ending 7 days ago.
A transaction less than this after the first one a store holds has truncated windows (low
counts), unlike every later one: a model must not learn from, nor take its reference from it."""
FRAUD_RETRAIN_SPAN_DAYS = 28
"""What a retrain from the lake as of now spans (services/trainer/fraud_retrain.py, Windows):
train 7 d, delay 7 d, test 7 d, and the delay after the test week that makes its labels final."""
LAKE_DAYS_FOR_A_RETRAIN = FRAUD_REACH_DAYS + FRAUD_RETRAIN_SPAN_DAYS + 1
"""History a lake needs for `make retrain-fraud` to train on complete windows today: the burn-in
(37 d), the retrain's 4 weeks, and the day under way (the windows start at midnights, the
history's end moves by whole weeks). The dev world (trainer/pipeline.py) has this many days and
the seeder replays all of them."""
NIGHT_HOURS = (0, 6)  # a transaction at or after 00:00 and before 06:00 local time is "at night"
SMALL_AMOUNT = 5.0    # card testing probes with amounts below this
TRANSACTION_TYPES = ("purchase", "withdrawal", "transfer", "payment")

HANDBOOK_FEATURES: tuple[ModelFeature, ...] = (
    ModelFeature("tx_amount", "amount of this transaction"),
    ModelFeature("tx_during_weekend", "1 if the transaction is on Saturday or Sunday"),
    ModelFeature("tx_during_night", "1 if the transaction is between 00:00 and 06:00"),
    ModelFeature("customer_nb_tx_1d", "customer's transactions in the last day"),
    ModelFeature("customer_avg_amount_1d", "customer's mean amount in the last day (0 if none)"),
    ModelFeature("customer_nb_tx_7d", "customer's transactions in the last 7 days"),
    ModelFeature("customer_avg_amount_7d", "customer's mean amount in the last 7 days"),
    ModelFeature("customer_nb_tx_30d", "customer's transactions in the last 30 days"),
    ModelFeature("customer_avg_amount_30d", "customer's mean amount in the last 30 days"),
    ModelFeature("terminal_nb_tx_1d", "terminal's transactions in the day ending 7 days ago"),
    ModelFeature("terminal_risk_1d", "share of fraud among those (0 if none)"),
    ModelFeature("terminal_nb_tx_7d", "terminal's transactions in the 7 days ending 7 days ago"),
    ModelFeature("terminal_risk_7d", "share of fraud among those"),
    ModelFeature("terminal_nb_tx_30d", "terminal's transactions in the 30 days ending 7 days ago"),
    ModelFeature("terminal_risk_30d", "share of fraud among those"),
)
"""The 15 features of the Fraud Detection Handbook (Le Borgne et al.), in its order."""

REALTIME_FEATURES: tuple[ModelFeature, ...] = (
    ModelFeature("card_nb_tx_1h", "card's transactions in the last hour"),
    ModelFeature("card_amount_sum_1h", "card's total amount in the last hour"),
    ModelFeature("card_nb_small_tx_1h", f"card's transactions under {SMALL_AMOUNT:g} in 1 hour"),
    ModelFeature("card_nb_tx_24h", "card's transactions in the last 24 hours"),
    ModelFeature("amount_to_customer_avg_30d", "amount / customer's 30-day mean (1: none or 0)"),
    ModelFeature("seconds_since_last_tx", "seconds since the card's previous one (1e6 if none)"),
    ModelFeature("km_from_last_tx", "great-circle km from the card's previous one (0 if none)"),
    ModelFeature("speed_kmh_from_last_tx", "km_from_last_tx / hours since it (0 if none)"),
    ModelFeature("is_new_device", "1 if the card was not used on this device in the last 30 days"),
    ModelFeature("is_new_ip", "1 if the card was not used from this IP in the last 30 days"),
    ModelFeature("device_nb_cards_30d", "distinct other cards seen on this device in 30 days"),
    ModelFeature("ip_nb_cards_30d", "distinct other cards seen from this IP in 30 days"),
    ModelFeature("merchant_risk_30d", "share of fraud at the merchant, 30 days ending 7 days ago"),
    *(ModelFeature(f"tx_type_{t}", f"1 if the transaction type is {t}") for t in TRANSACTION_TYPES),
)
"""What a real-time service sees beyond the handbook: velocity, travel, device, IP, network."""

FRAUD_FEATURES: tuple[ModelFeature, ...] = HANDBOOK_FEATURES + REALTIME_FEATURES
"""The fraud model's input, in order."""

FRAUD_REFERENCE_FILE = "reference.json"
"""Stored beside each fraud model version: every feature's typical (median legitimate) value, the
point the fraud service explains a score against."""


# --- Recommendations -------------------------------------------------------------------------
MATURITY_RATINGS: tuple[str, ...] = ("G", "PG", "PG-13", "R", "NC-17")
"""US film ratings, in order: a title's maturity level (a content-vector input) is its index."""

RANKER_FEATURES: tuple[ModelFeature, ...] = (
    # taste vector = sum over watched titles of weight x item embedding (weight 1 if completed,
    # else 0.5): the stream processor keeps it up to date with one vector add per watch.
    ModelFeature("cf_score", "user taste vector · item embedding (matrix factorization)"),
    # genre profile = watch-weighted sum of the watched titles' content vectors
    # (genres, release era, maturity).
    ModelFeature("content_score", "cosine of the user's genre profile and the item's content"),
    ModelFeature("popularity", "log1p of the item's watches in the last 30 days"),
    ModelFeature("trending_score", "time-decayed watch count (half-life 24 h), log1p"),
    # top 3 by watch-weighted count; ties go to the earlier genre; unwatched genres never count.
    ModelFeature("genre_match", "share of the item's genres among the user's top 3 genres"),
    ModelFeature("release_age_years", "years since the title's release"),
    ModelFeature("user_activity", "log1p of the user's watch events (all history)"),
)
"""The ranker's input per (user, candidate) pair, in order."""


def names(features: tuple[ModelFeature, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in features)


FRAUD_FEATURE_NAMES = names(FRAUD_FEATURES)
HANDBOOK_FEATURE_NAMES = names(HANDBOOK_FEATURES)
RANKER_FEATURE_NAMES = names(RANKER_FEATURES)
