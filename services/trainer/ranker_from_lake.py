"""The ranker retrained on what viewers clicked: logged impressions ⋈ clicks from the lake, gated.

    python -m services.trainer.ranker_from_lake      (make retrain-ranker)

    lake: impressions (each listed title's RANKER_FEATURES row as served, its slot, shuffled?)
          ⋈ clicks (request id, title) ⋈ watches (the title watched after the list was shown)
      │ one row per listed title; split by time: older lists train, the newest TEST_SHARE test
      ▼
    position bias: theta(slot) = (1 + slot)^-eta, eta fitted on the SHUFFLED training lists
      │ (services/recommender/explore.py: there a title lands on any slot alike, so the click
      │ rate by slot is the slot's effect alone)
      ▼
    fit HistGradientBoosting on clicks weighted by 1/theta (unbiased pointwise loss)
      ▼
    gate, on the held-out lists: each model re-ranks every list; the IPS-weighted rank of the
      clicked titles (Joachims et al. 2017: sum over clicks of rank / theta(slot shown), an
      unbiased estimate of the relevant titles' rank) of production minus challenger, paired
      bootstrap over lists: lower end of the 95 % interval > 0 -> export, ONNX parity,
      register (not promoted); otherwise refused. The report says why either way, beside the
      naive per-list AUC, which favours whichever model ordered the lists it is scored on.

Point in time by construction: the features are the values the serving path computed when it
built the list (services/recommender/impressions.py), never recomputed, so there is nothing to
leak and no training-serving skew. No maturity level or user limit is needed: every logged row
is a title the serving path had already judged eligible for that user (watched titles and
titles above the profile's maturity limit were filtered before ranking). Those are missing from
the lake only for recomputing candidate sets from watches (lake_sets.lake_interactions), which
this does not do.

What logged lists cannot say: a title never shown is never a label. The held-out comparison
ranks the same shown lists; the A/B test (make ab-demo) measures the whole catalog.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.common.drift import DRIFT_REFERENCE_FILE, DriftReference
from services.common.lake.settings import LakeStoreSettings
from services.common.lake.sql import open_lake
from services.common.models import ModelRepository
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.trainer.artifacts import data_hash
from services.trainer.bootstrap import paired_interval
from services.trainer.export import INPUT_NAME, check_parity, export_classifier
from services.trainer.pipeline import TrainerSettings

logger = logging.getLogger(__name__)

MODEL = "ranker"
TEST_SHARE = 0.2            # the newest impressions, held out for the gate
MIN_IMPRESSIONS = 500       # logged lists with features, before the split
WINDOW_IMPRESSIONS = 30_000  # the newest logged lists train and test: a window, as in production
MIN_CLICKS = 200
MIN_PROPENSITY = 0.5      # training weights 1/theta capped at 2 (see fit_click_ranker)
MIN_SHUFFLED = 100      # exploration lists before the held-out ones: the position bias
EMBEDDINGS_FILE = "embeddings.npz"
REPORT_FILE = "offline_report.json"
FEATURES = list(RANKER_FEATURE_NAMES)
# +1: the score may only rise with the feature. Taste and appeal signals, by design; see
# fit_click_ranker for why the model needs the prior.
INCREASING = ("cf_score", "content_score", "popularity", "genre_match")
MONOTONE = [1 if name in INCREASING else 0 for name in FEATURES]

LOGGED_IMPRESSIONS = """
SELECT time_ms, data->>'request_id' AS request_id, data->>'user_id' AS user_id,
       data->>'experiment' AS experiment, data->>'variation' AS variation,
       CAST(data->'content_ids' AS VARCHAR) AS content_ids,
       CAST(data->'features'->'names' AS VARCHAR) AS names,
       CAST(data->'features'->'rows' AS VARCHAR) AS feature_rows,
       CAST(data->'features'->>'model_version' AS INTEGER) AS features_version,
       coalesce(CAST(data->>'shuffled' AS BOOLEAN), false) AS shuffled
FROM impressions
WHERE time_ms < $as_of AND json_type(data->'features') = 'OBJECT'
ORDER BY time_ms DESC, request_id DESC LIMIT $newest
"""

CLICKED = """
SELECT DISTINCT data->>'request_id' AS request_id, data->>'content_id' AS content_id
FROM clicks WHERE time_ms < $as_of AND data->>'request_id' IS NOT NULL
"""

WATCHED = """
SELECT data->>'user_id' AS user_id, data->>'content_id' AS content_id, max(time_ms) AS last_ms
FROM watches WHERE type = 'watch' AND time_ms < $as_of GROUP BY 1, 2
"""


class NotEnoughData(ValueError):
    """The lake holds too few logged impressions, clicks or shuffled lists to train and gate."""


@dataclass(frozen=True)
class ModelScore:
    """One model's ranking of the held-out lists."""

    version: int | None
    ips_clicked_rank: float      # mean per list of sum over clicks of (rank - 1) / theta: lower
    naive_list_auc: float        # per list: (clicked, unclicked) pairs ordered right; biased
    roc_auc: float               # every held-out row pooled


@dataclass(frozen=True)
class GateReport:
    """What `make retrain-ranker` decided and on what: written beside the model, and printed."""

    as_of: str
    impressions: int
    rows: int
    clicks: int
    users: int
    shuffled_impressions: int    # the exploration slice's lists, where the position bias is fit
    position_bias_eta: float     # theta(slot) = (1 + slot) ** -eta
    click_rate_by_slot_shuffled: list[float]
    click_rate_shuffled: float   # per listed title: the exploration slice's price ...
    click_rate_ordered: float    # ... against the lists shown in their ranked order
    train_impressions: int
    held_out_impressions: int
    held_out_lists_scored: int   # held-out lists with at least one click
    split_time: str              # held-out impressions were served at or after this
    features_version: int        # the artifacts (embeddings) the logged features came from
    watched_share: float         # listed titles watched after the list (a second signal)
    challenger: ModelScore
    production: ModelScore | None
    difference: float | None     # production - challenger IPS clicked rank: > 0, challenger better
    interval: tuple[float, float] | None  # its paired bootstrap 95 % interval
    registered: bool
    version: int | None
    reason: str
    train_info: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# --- reading the lake ----------------------------------------------------------------------
def logged_rows(con: duckdb.DuckDBPyConnection, as_of: datetime,
                newest: int = WINDOW_IMPRESSIONS) -> pd.DataFrame:
    """One row per listed title of the `newest` logged impressions before `as_of`, oldest
    first: the features as served (catalog order), its slot, whether the list was shuffled,
    `clicked`, `watched` (after the list was shown), ids and times."""
    params = {"as_of": int(as_of.timestamp() * 1000)}
    shown = con.execute(LOGGED_IMPRESSIONS, params | {"newest": newest}).df().iloc[::-1]
    ours = np.fromiter((json.loads(n) == FEATURES for n in shown["names"]), dtype=bool,
                       count=len(shown))
    shown = shown.loc[ours]   # a ranker with other features logged the rest: not its data
    if shown.empty:
        return pd.DataFrame(columns=["impression", "time_ms", "request_id", "user_id",
                                     "variation", "features_version", "shuffled", "position",
                                     "content_id", *FEATURES, "clicked", "watched"])
    ids = [json.loads(c) for c in shown["content_ids"]]
    sizes = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
    each = {c: np.repeat(shown[c].to_numpy(), sizes) for c in (
        "time_ms", "request_id", "user_id", "variation", "features_version", "shuffled")}
    matrix = [row for rows in shown["feature_rows"] for row in json.loads(rows)]
    rows = pd.DataFrame({
        "impression": np.repeat(np.arange(len(ids)), sizes), **each,
        "position": np.concatenate([np.arange(n) for n in sizes]) if ids else [],
        "content_id": [c for i in ids for c in i]}).join(
        pd.DataFrame(np.asarray(matrix, dtype=np.float64).reshape(-1, len(FEATURES)),
                     columns=FEATURES))
    rows["shuffled"] = rows["shuffled"].astype(bool)
    clicked = con.execute(CLICKED, params).df().assign(clicked=True)
    rows = rows.merge(clicked, on=["request_id", "content_id"], how="left")
    rows["clicked"] = rows["clicked"].astype("boolean").fillna(False).astype(bool)
    watched = con.execute(WATCHED, params).df()
    rows = rows.merge(watched, on=["user_id", "content_id"], how="left")
    rows["watched"] = (rows["last_ms"] >= rows["time_ms"]).fillna(False).astype(bool)
    return rows.drop(columns=["last_ms"])


# --- the gate's arithmetic (pure) --------------------------------------------------------------
def _lists(lists: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                          npt.NDArray[np.int64]]:
    """Rows sorted by list (stable), and each list's [start, end) in that order."""
    g = np.asarray(lists, dtype=np.int64)
    order = np.argsort(g, kind="stable")
    starts = np.flatnonzero(np.r_[True, g[order][1:] != g[order][:-1]]) if len(g) else \
        np.zeros(0, dtype=np.int64)
    return order, starts, np.r_[starts[1:], len(g)].astype(np.int64)


def list_aucs(scores: npt.ArrayLike, clicked: npt.ArrayLike,
              lists: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per list with at least one clicked and one unclicked title: the share of (clicked,
    unclicked) pairs the scores order right (a tie counts half). Returns (aucs, list ids)."""
    order, starts, ends = _lists(lists)
    s = np.asarray(scores, dtype=np.float64)[order]
    y = np.asarray(clicked, dtype=bool)[order]
    g = np.asarray(lists, dtype=np.int64)[order]
    aucs, ids = [], []
    for lo, hi in zip(starts, ends, strict=True):
        pos, neg = s[lo:hi][y[lo:hi]], s[lo:hi][~y[lo:hi]]
        if len(pos) and len(neg):
            diff = pos[:, None] - neg[None, :]
            aucs.append(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)
            ids.append(int(g[lo]))
    return np.asarray(aucs, dtype=np.float64), np.asarray(ids, dtype=np.int64)


def ips_clicked_ranks(scores: npt.ArrayLike, clicked: npt.ArrayLike, lists: npt.ArrayLike,
                      propensities: npt.ArrayLike
                      ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per list with a click: sum over its clicked titles of (rank by `scores` - 1) / theta,
    theta the chance the slot it was shown in was looked at. Under the position-based click
    model its expectation is the sum of the relevant titles' ranks (Joachims, Swaminathan and
    Schnabel, WSDM 2017), whatever order the list was shown in: lower is better."""
    order, starts, ends = _lists(lists)
    s = np.asarray(scores, dtype=np.float64)[order]
    y = np.asarray(clicked, dtype=bool)[order]
    w = 1.0 / np.asarray(propensities, dtype=np.float64)[order]
    g = np.asarray(lists, dtype=np.int64)[order]
    values, ids = [], []
    for lo, hi in zip(starts, ends, strict=True):
        if y[lo:hi].any():
            rank = np.argsort(np.argsort(-s[lo:hi], kind="stable"), kind="stable")
            values.append(float((rank * w[lo:hi])[y[lo:hi]].sum()))
            ids.append(int(g[lo]))
    return np.asarray(values, dtype=np.float64), np.asarray(ids, dtype=np.int64)


def fit_position_bias(slots: npt.ArrayLike, clicked: npt.ArrayLike) -> tuple[float, list[float]]:
    """eta of theta(slot) = (1 + slot) ** -eta from shuffled lists, where the click rate of a
    slot is theta(slot) times the same mean attractiveness for every slot: a weighted least
    squares line of log(click rate) on log(1 + slot), weights the slots' clicks. Returns eta and
    the click rate of each slot."""
    p = np.asarray(slots, dtype=np.int64)
    y = np.asarray(clicked, dtype=np.float64)
    shown = np.bincount(p)
    clicks = np.bincount(p, weights=y, minlength=len(shown))
    rates = np.divide(clicks, shown, out=np.zeros(len(shown)), where=shown > 0)
    used = clicks > 0
    if used.sum() < 2:
        raise NotEnoughData("the shuffled lists have clicks in fewer than two slots: no "
                            "position bias can be fitted")
    slope, _ = np.polyfit(np.log1p(np.flatnonzero(used)), np.log(rates[used]), 1,
                          w=np.sqrt(clicks[used]))
    return max(0.0, float(-slope)), [round(float(r), 5) for r in rates]


def propensity(slots: npt.ArrayLike, eta: float) -> npt.NDArray[np.float64]:
    theta: npt.NDArray[np.float64] = (1.0 + np.asarray(slots, dtype=np.float64)) ** -eta
    return theta


def beats(interval: tuple[float, float] | None) -> bool:
    """The gate: the challenger is better on held-out lists beyond the bootstrap's doubt."""
    return interval is not None and interval[0] > 0.0


# --- training, scoring, registering ----------------------------------------------------------
def fit_click_ranker(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], seed: int,
                     theta: npt.NDArray[np.float64] | None = None
                     ) -> HistGradientBoostingClassifier:
    """The production ranker's model class and settings (services/trainer/recs.py), new label.

    With `theta`, the unbiased pointwise loss (Saito et al., WSDM 2020): each row counts as a
    positive with weight click / theta and as a negative with weight 1 - click / theta (clipped
    at 0), so its expected label is the title's attractiveness, not the slot's visibility.
    theta is floored at MIN_PROPENSITY: a click on slot 10 would otherwise weigh 7 clicks on
    slot 1, and a few such clicks would steer the fit (the usual clipped-IPS trade of a little
    bias for much less variance).

    The model learns from the titles that were shown (the top 10 of ~200 candidates) and then
    ranks all candidates, most of a kind it never saw; unconstrained, it extrapolated a taste
    signal backwards there (the first version served older, less popular titles and lost to
    production in the A/B, docs/model-lifecycle.md). The monotone constraints (MONOTONE) keep
    a higher cf_score, content_score, popularity or genre_match from ever lowering the score."""
    if theta is None:
        rows, labels, weights = x, y, None
    else:
        positive = y / np.maximum(theta, MIN_PROPENSITY)
        rows = np.vstack([x, x])
        labels = np.r_[np.ones(len(y)), np.zeros(len(y))].astype(np.int64)
        weights = np.r_[positive, np.clip(1.0 - positive, 0.0, None)]
        keep = weights > 0
        rows, labels, weights = rows[keep], labels[keep], weights[keep]
    ranker = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=100,
        l2_regularization=1.0, early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=15, random_state=seed, monotonic_cst=MONOTONE)
    with threadpool_limits(limits=1, user_api="openmp"):  # 2 shared cores: see recs.py
        ranker.fit(rows, labels, sample_weight=weights)
    float32_thresholds(ranker)
    return ranker


def float32_thresholds(ranker: HistGradientBoostingClassifier) -> None:
    """Move every split threshold down to the largest float32 at or below it, in place.

    A threshold is the midpoint of two feature values, in float64; ONNX holds it as float32.
    When the two values are neighbouring float32 numbers (the logged rows hold many
    near-equal values), the midpoint rounds onto one of them and ONNX sends that row the
    other way (the parity check failed by 8e-3 on 108,000 logged rows). No float32 value lies
    between the old and the new threshold, so scikit-learn answers every float32 row as before,
    and ONNX's float32 threshold is now the same number."""
    for trees in ranker._predictors:
        for tree in trees:
            nodes = tree.nodes
            split = ~nodes["is_leaf"].astype(bool)
            t64 = nodes["num_threshold"][split]
            t32 = t64.astype(np.float32)
            t32 = np.where(t32.astype(np.float64) > t64, np.nextafter(t32, np.float32(-np.inf)),
                           t32)
            nodes["num_threshold"][split] = t32.astype(np.float64)


def onnx_scores(onnx_path: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {INPUT_NAME: x})[0]
    return np.asarray(probabilities, dtype=np.float64)[:, 1]


def _score(version: int | None, scores: npt.NDArray[np.float64], held: pd.DataFrame,
           theta: npt.NDArray[np.float64]) -> tuple[ModelScore, npt.NDArray[np.float64]]:
    ranks, _ = ips_clicked_ranks(scores, held["clicked"], held["impression"], theta)
    aucs, _ = list_aucs(scores, held["clicked"], held["impression"])
    pooled = float(roc_auc_score(held["clicked"], scores)) if held["clicked"].nunique() == 2 \
        else float("nan")
    return ModelScore(version, float(ranks.mean()), float(aucs.mean()), pooled), ranks


def _open_lake(root: Path, attempts: int = 5) -> duckdb.DuckDBPyConnection:
    """The lake's views; again if compaction removed a listed part file in between (the
    sink merges closed hours every 5 min and deletes the parts it merged)."""
    for attempt in range(attempts):
        try:
            return open_lake(root)
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def retrain_ranker(root: Path, repository: ModelRepository, as_of: datetime,
                   seed: int = 0) -> GateReport:
    """Train on the lake's logged impressions, gate against production, register if it wins."""
    with _open_lake(root) as con:
        rows = logged_rows(con, as_of)
    impressions = int(rows["impression"].nunique())
    clicks = int(rows["clicked"].sum())
    if impressions < MIN_IMPRESSIONS or clicks < MIN_CLICKS:
        raise NotEnoughData(f"{impressions} logged impressions with features and {clicks} "
                            f"clicks on them in the lake at {root}; retraining needs "
                            f"{MIN_IMPRESSIONS} and {MIN_CLICKS}")
    cut = int(impressions * (1 - TEST_SHARE))
    train, held = rows[rows["impression"] < cut], rows[rows["impression"] >= cut]
    shuffled = train[train["shuffled"]]
    if shuffled["impression"].nunique() < MIN_SHUFFLED:
        raise NotEnoughData(f"{shuffled['impression'].nunique()} shuffled lists before the "
                            f"held-out ones; the position bias needs {MIN_SHUFFLED} "
                            "(MLSD_RECOMMENDER_EXPLORE_SHARE)")
    eta, rates = fit_position_bias(shuffled["position"], shuffled["clicked"])
    x_train = train[FEATURES].to_numpy(np.float32)
    y_train = train["clicked"].to_numpy(np.int64)
    x_held = held[FEATURES].to_numpy(np.float32)
    theta_held = propensity(held["position"], eta)
    ranker = fit_click_ranker(x_train, y_train, seed, propensity(train["position"], eta))
    challenger, ours = _score(None, ranker.predict_proba(x_held)[:, 1], held, theta_held)

    production_version = _production(repository)
    production: ModelScore | None = None
    difference = interval = None
    if production_version is not None:
        production, theirs = _score(
            production_version, onnx_scores(repository.model_path(MODEL, production_version),
                                            x_held), held, theta_held)
        difference = production.ips_clicked_rank - challenger.ips_clicked_rank
        interval = paired_interval(theirs - ours, seed=seed)
    base: dict[str, Any] = dict(
        as_of=as_of.isoformat(), impressions=impressions, rows=len(rows), clicks=clicks,
        users=int(rows["user_id"].nunique()),
        shuffled_impressions=int(rows.loc[rows["shuffled"], "impression"].nunique()),
        position_bias_eta=eta, click_rate_by_slot_shuffled=rates,
        click_rate_shuffled=float(rows.loc[rows["shuffled"], "clicked"].mean()),
        click_rate_ordered=float(rows.loc[~rows["shuffled"], "clicked"].mean()),
        train_impressions=cut,
        held_out_impressions=impressions - cut, held_out_lists_scored=len(ours),
        split_time=datetime.fromtimestamp(int(held["time_ms"].min()) / 1000, UTC).isoformat(),
        features_version=int(rows["features_version"].mode().iloc[0]),
        watched_share=float(rows["watched"].mean()),
        challenger=challenger, production=production, difference=difference,
        interval=interval,
        train_info={"train_rows": float(len(y_train)), "train_click_rate": float(y_train.mean()),
                    "iterations": float(ranker.n_iter_)})
    registered, reason = _verdict(challenger, production, interval)
    report = GateReport(**base, registered=registered, version=None, reason=reason)
    if not registered:
        return report
    version = _register(repository, ranker, x_train, y_train, x_held, report)
    return dataclasses.replace(report, version=version)


def _verdict(challenger: ModelScore, production: ModelScore | None,
             interval: tuple[float, float] | None) -> tuple[bool, str]:
    if production is None or interval is None:
        return True, "no production ranker to beat"
    better = beats(interval)
    return better, (
        f"IPS-weighted rank of the clicked titles {challenger.ips_clicked_rank:.3f} against "
        f"production v{production.version}'s {production.ips_clicked_rank:.3f} (lower is "
        f"better; production minus challenger 95 % interval {interval[0]:+.3f} to "
        f"{interval[1]:+.3f}): " + ("beats it" if better else "refused: not better beyond doubt"))


def _production(repository: ModelRepository) -> int | None:
    return repository.production_version(MODEL) if MODEL in repository.models() else None


def _register(repository: ModelRepository, ranker: HistGradientBoostingClassifier,
              x_train: npt.NDArray[np.float32], y_train: npt.NDArray[np.int64],
              x_held: npt.NDArray[np.float32], report: GateReport) -> int:
    """Export, check ONNX parity, register unpromoted with the report and the embeddings the
    logged features were computed with (serving computes the same features from them)."""
    onnx_bytes = export_classifier(ranker, n_features=len(FEATURES))
    parity = check_parity(ranker, onnx_bytes, x_held)
    embeddings = repository.extra_file(MODEL, report.features_version, EMBEDDINGS_FILE)
    held_scores = ranker.predict_proba(x_held)[:, 1]
    metrics = {"ips_clicked_rank": report.challenger.ips_clicked_rank,
               "naive_list_auc": report.challenger.naive_list_auc,
               "roc_auc": report.challenger.roc_auc, "position_bias_eta": report.position_bias_eta,
               "onnx_parity_max_abs_diff": parity, **report.train_info}
    if report.difference is not None:
        metrics["ips_clicked_rank_gain_vs_production"] = report.difference
    return repository.register(
        MODEL, onnx_bytes, feature_names=FEATURES, metrics=metrics,
        training_data_hash=data_hash(x_train, y_train),
        description=(f"HistGradientBoostingClassifier over RANKER_FEATURES: P(click) on a "
                     f"listed title, trained on {report.train_impressions:,} logged "
                     f"impressions from the lake (features as served by v"
                     f"{report.features_version}) as of {report.as_of}; {report.reason}"),
        extra_files={EMBEDDINGS_FILE: embeddings.read_bytes(),
                     REPORT_FILE: report.to_json().encode(),
                     DRIFT_REFERENCE_FILE: DriftReference.of(
                         x_held, FEATURES, held_scores,
                         description="the held-out logged rows and their scores").to_json()
                     .encode()})


def summary(report: GateReport) -> str:
    lines = [f"logged: {report.impressions:,} impressions ({report.rows:,} listed titles, "
             f"{report.clicks:,} clicked, {report.watched_share:.1%} watched after) of "
             f"{report.users:,} users; trained on the older {report.train_impressions:,}, "
             f"held out {report.held_out_impressions:,} served from {report.split_time}",
             f"position bias from {report.shuffled_impressions:,} shuffled lists: theta(slot) = "
             f"(1 + slot)^-{report.position_bias_eta:.3f}",
             f"challenger: IPS clicked rank {report.challenger.ips_clicked_rank:.3f}, naive "
             f"per-list AUC {report.challenger.naive_list_auc:.4f}, pooled ROC AUC "
             f"{report.challenger.roc_auc:.4f} ({report.held_out_lists_scored:,} held-out lists "
             "with a click)"]
    if report.production is not None:
        lines.append(f"production v{report.production.version}: IPS clicked rank "
                     f"{report.production.ips_clicked_rank:.3f}, naive per-list AUC "
                     f"{report.production.naive_list_auc:.4f}, pooled ROC AUC "
                     f"{report.production.roc_auc:.4f}")
    lines.append(f"ranker v{report.version} registered, not promoted: {report.reason}"
                 if report.registered else f"not registered: {report.reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.ranker_from_lake",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake-root", type=Path, default=None)
    parser.add_argument("--model-repository", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=Path("reports/ranker-from-lake.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    repository = ModelRepository(args.model_repository or TrainerSettings().model_repository)
    root = args.lake_root or LakeStoreSettings().lake_root
    try:
        report = retrain_ranker(root, repository, datetime.now(UTC))
    except NotEnoughData as exc:
        print(f"[retrain-ranker] not trained: {exc}", flush=True)  # noqa: T201 (a CLI)
        return 1
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report.to_json())
    print(summary(report) + f"\nreport: {args.report}", flush=True)  # noqa: T201 (a CLI)
    return 0 if report.registered else 2


if __name__ == "__main__":
    sys.exit(main())
