"""The one path that trains fraud from the lake: make retrain-fraud and make models SOURCE=lake.

A challenger from the lake's decisions and labels, registered only if it beats the production
model on the same held-out week.

    python -m services.trainer.fraud_retrain [--as-of ISO] [--min-gain 0.0] [--margin 0.01]
                                             [--promote] [--burn-in-days 37]

The handbook's label-delay protocol, ending at `as_of` (default: now), after a burn-in:

    lake's first |-- burn-in 37 d --|
    transaction    |-- train 7 d --|-- delay 7 d --|-- test 7 d --|-- delay 7 d --| as of
                    labels as known                  every label     the newest days: genuine
                    at the test start                final           labels not final yet

- a transaction is labelled once its label is final: a fraud report arrived, or its delay passed
  without one (then it is genuine); the test week ends a delay before `as_of`, so all its labels
  are final, and it leaves out cards already known compromised (Split.test_mask);
- the training week ends a delay before the test week starts, with the labels that had arrived
  by the test start: the model is the one that could have been trained on that day;
- the burn-in: a row is used only if every window of its vector lies inside the lake (it is
  at least FRAUD_REACH_DAYS, 30 + 7, after the lake's first transaction). Earlier rows see
  truncated history (a terminal's 30-day count over the 16 days the lake holds), unlike every
  vector served later: a model trained on them learns low counts, and its drift reference,
  built from them, reads the live full windows as drift. The dropped rows are counted;
- features are the vectors the stream served, from `fraud-decisions` (no train/serve skew),
  and, for a transaction with no decision in the lake (history replayed before the scorer
  ran), the same catalog features recomputed point in time (lake_sets.py; the two are held
  equal by tests/integration/lake/test_lake_training_parity.py);
- the gate: the production model and the challenger score the same test rows; a paired
  bootstrap over the test week's cards (services/trainer/bootstrap.py) gives the 95 % interval
  of AP(challenger) - AP(production). The challenger is registered when its AP beats
  production's by more than `min_gain` AND the interval's lower end is above -`margin`: better
  on the week, and, with 95 % confidence, not worse by more than the margin (non-inferiority;
  docs/adr/0005-fraud-gate-non-inferiority.md says why not superiority). The verdict (both
  models' AUC, AP and card precision@100, the interval, the rule) is written either way.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd

from services.common.arrays import Float32Array, FloatArray
from services.common.drift import DRIFT_REFERENCE_FILE, DriftReference
from services.common.lake.settings import LakeStoreSettings
from services.common.lake.sql import open_lake
from services.common.models import ModelRepository
from services.common.models.settings import ModelSettings
from services.designs.model_features import (
    FRAUD_FEATURE_NAMES,
    FRAUD_REACH_DAYS,
    FRAUD_REFERENCE_FILE,
    LAKE_DAYS_FOR_A_RETRAIN,
)
from services.trainer.artifacts import data_hash
from services.trainer.bootstrap import LEVEL, RESAMPLES, ap_difference_interval
from services.trainer.export import INPUT_NAME, check_parity, export_classifier
from services.trainer.fraud import reference_json
from services.trainer.fraud_metrics import Scores, score
from services.trainer.fraud_models import fit, gradient_boosting
from services.trainer.fraud_protocol import Split
from services.trainer.lake_sets import fraud_training_set

logger = logging.getLogger(__name__)


MODEL = "fraud"
GATE_FILE = "gate.json"
MIN_TRAIN_FRAUDS = 20
MIN_TEST_ROWS = 1_000  # the ONNX parity check's minimum, and enough for a week's AP
REPORT = Path("reports/retrain/fraud-gate.json")
# The AP a retrain may cost, at 95 %, for being fresh: a challenger whose interval reaches lower
# than -MARGIN could be worse than production by more than we accept (ADR 0005).
MARGIN = 0.01

SERVED_VECTORS = """
SELECT data->>'transaction_id' AS transaction_id, data->>'features' AS features
FROM decisions
WHERE time_ms <= $as_of AND data->>'features' IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY data->>'transaction_id' ORDER BY time_ms DESC) = 1
"""


class NotEnoughData(ValueError):
    """The lake holds too few final labels in the protocol's windows to train or to judge."""


@dataclass(frozen=True)
class Windows:
    """The protocol's split ending at `as_of`: the test week ends one delay before it."""

    as_of: datetime
    split: Split

    @classmethod
    def ending_at(cls, as_of: datetime, train_days: int = 7, delay_days: int = 7,
                  test_days: int = 7) -> Windows:
        last_final_day = (pd.Timestamp(as_of.astimezone(UTC).replace(tzinfo=None)).normalize()
                          - pd.Timedelta(days=delay_days))
        train_start = last_final_day - pd.Timedelta(days=test_days + delay_days + train_days)
        return cls(as_of, Split(train_start, train_days, delay_days, test_days))

    @property
    def labels_for_training_at(self) -> datetime:
        """The test start: training sees the labels that had arrived by then."""
        start: datetime = self.split.test_start.to_pydatetime()
        return start.replace(tzinfo=UTC)

    def describe(self) -> dict[str, str]:
        s = self.split
        return {"as_of": self.as_of.isoformat(),
                "train": f"{s.train_start:%Y-%m-%d} + {s.train_days} d",
                "delay": f"{s.delay_days} d",
                "test": f"{s.test_start:%Y-%m-%d} + {s.test_days} d"}


@dataclass(frozen=True)
class Labelled:
    """One window's rows: features, labels, and the frame Split's masks and card precision use."""

    frame: pd.DataFrame
    x: Float32Array
    y: npt.NDArray[np.int8]
    served: int  # rows whose vector is the one the stream served
    burned_in: int = 0  # the window's rows left out: their windows reach before the lake

    @property
    def frauds(self) -> int:
        return int(self.y.sum())


def served_vectors(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, list[float]]:
    """The feature vector each transaction was decided with, by transaction id (the newest
    decision of a transaction decided twice: a redelivery reuses the recorded decision)."""
    rows = con.execute(SERVED_VECTORS, {"as_of": int(as_of.timestamp() * 1000)}).fetchall()
    vectors = {tid: json.loads(text) for tid, text in rows}
    return {tid: v for tid, v in vectors.items()
            if isinstance(v, list) and len(v) == len(FRAUD_FEATURE_NAMES)}


def windows_complete_from(frame: pd.DataFrame, burn_in_days: int = FRAUD_REACH_DAYS
                          ) -> pd.Timestamp | None:
    """The first instant whose vector's every window lies inside the lake: its first
    transaction plus the burn-in (None for an empty lake)."""
    if frame.empty:
        return None
    first: pd.Timestamp = frame["tx_datetime"].min()
    return first + pd.Timedelta(days=burn_in_days)


def labelled(frame: pd.DataFrame, mask: npt.NDArray[np.bool_],
             served: dict[str, list[float]], complete_from: pd.Timestamp | None = None
             ) -> Labelled:
    """The masked rows from `complete_from` on, with the served vector where one exists, else
    the recomputed one."""
    complete = (np.ones(len(frame), bool) if complete_from is None
                else (frame["tx_datetime"] >= complete_from).to_numpy(bool))
    burned_in = int((mask & ~complete).sum())
    rows = frame[mask & complete].reset_index(drop=True)
    x = rows[list(FRAUD_FEATURE_NAMES)].to_numpy(np.float32)
    hit = rows["transaction_id"].map(lambda tid: tid in served).to_numpy(bool)
    if hit.any():
        x[hit] = np.asarray([served[t] for t in rows.loc[hit, "transaction_id"]], np.float32)
    return Labelled(rows, x, rows["is_fraud"].to_numpy(np.int8), int(hit.sum()), burned_in)


def training_and_test(con: duckdb.DuckDBPyConnection, windows: Windows,
                      burn_in_days: int = FRAUD_REACH_DAYS) -> tuple[Labelled, Labelled]:
    """The training week labelled as of the test start; the test week labelled as of `as_of`;
    both without the rows whose windows reach before the lake's first transaction. The test
    rows too: the gate should judge, and the score's reference describe, vectors like the
    ones served."""
    served = served_vectors(con, windows.as_of)
    early = fraud_training_set(con, windows.labels_for_training_at)
    late = fraud_training_set(con, windows.as_of)
    complete_from = windows_complete_from(late, burn_in_days)  # late holds every earlier row
    split = windows.split
    train = labelled(early, split.train_mask(early) & early["label_final"].to_numpy(bool), served,
                     complete_from)
    test = labelled(late, split.test_mask(late) & late["label_final"].to_numpy(bool), served,
                    complete_from)
    if train.frauds < MIN_TRAIN_FRAUDS or len(test.y) < MIN_TEST_ROWS or test.frauds == 0:
        burn_in = ("" if complete_from is None else
                   f"; the burn-in ({burn_in_days} d after the lake's first transaction: windows "
                   f"complete from {complete_from:%Y-%m-%d %H:%M}) left out {train.burned_in} "
                   f"training and {test.burned_in} test rows; a lake needs "
                   f"{LAKE_DAYS_FOR_A_RETRAIN} days of history before now (make seed replays "
                   "that many)")
        raise NotEnoughData(
            f"train {len(train.y)} rows ({train.frauds} fraud), test {len(test.y)} rows "
            f"({test.frauds} fraud) in {windows.describe()}{burn_in}; the gate needs >= "
            f"{MIN_TRAIN_FRAUDS} training frauds, >= {MIN_TEST_ROWS} test rows and a test fraud")
    return train, test


# --- The gate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


def judge(challenger: Scores, production: Scores | None, min_gain: float,
          interval: tuple[float, float] | None = None, margin: float = MARGIN) -> Verdict:
    """Average precision decides (the class is rare: AUC barely moves). Registered when the AP
    gain is above `min_gain` (a tie keeps production) and the paired interval of the gain lies
    above -`margin` (not worse beyond the margin); `interval` None: no interval, refused."""
    if production is None:
        return Verdict(True, "no production model to beat")
    gain = challenger.average_precision - production.average_precision
    if np.isnan(gain):
        return Verdict(False, "average precision undefined on the test week")
    versus = (f"AP {challenger.average_precision:.3f} against production's "
              f"{production.average_precision:.3f}: {gain:+.3f}")
    if not gain > min_gain:
        return Verdict(False, f"{versus}, not > {min_gain:g}")
    if interval is None or np.isnan(interval[0]):
        return Verdict(False, f"{versus}, but no interval of the gain to judge it by")
    bounds = f"95 % interval {interval[0]:+.3f} to {interval[1]:+.3f}"
    if interval[0] <= -margin:
        return Verdict(False, f"{versus} > {min_gain:g}, {bounds}: could be worse than "
                              f"production by more than the margin {margin:g}")
    beyond = ("better beyond noise" if interval[0] > 0
              else f"not worse by more than {margin:g}, not better beyond noise")
    return Verdict(True, f"{versus} > {min_gain:g}, {bounds}: {beyond}")


def onnx_probabilities(model: bytes | Path, x: Float32Array) -> FloatArray:
    """P(fraud) through the ONNX graph, as serving computes it: both models of the gate are
    scored this way, so a tie is a tie and not float32 against float64."""
    source = str(model) if isinstance(model, Path) else model
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["probabilities"], {INPUT_NAME: x})[0][:, 1], np.float64)


def production_model(repository: ModelRepository) -> tuple[int, Path] | None:
    """The production version and its ONNX file; None when there is no production model."""
    if not repository.root.exists() or MODEL not in repository.models():
        return None
    version = repository.production_version(MODEL)
    if version is None:
        return None
    names = repository.metadata(MODEL, version).feature_names
    if tuple(names) != tuple(FRAUD_FEATURE_NAMES):
        raise ValueError(f"production {MODEL} v{version} reads other features than the "
                         "catalog's: retrain it with make models before gating against it")
    return version, repository.model_path(MODEL, version)


@dataclass(frozen=True)
class RetrainResult:
    """What the gate saw and decided; `registered` is the new version, None when refused."""

    windows: dict[str, str]
    train_rows: int
    train_frauds: int
    test_rows: int
    test_frauds: int
    served_share: float
    challenger: Scores
    production: Scores | None
    production_version: int | None
    verdict: Verdict
    registered: int | None
    promoted: bool
    burned_in: dict[str, int]  # rows of each week left out: their windows reach before the lake
    # AP(challenger) - AP(production), 95 % paired bootstrap over the test week's cards
    gain_interval: tuple[float, float] | None = None
    gate: dict[str, float] | None = None   # the rule's parameters: min_gain, margin, resamples

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float) + "\n"


def retrain(train: Labelled, test: Labelled, repository: ModelRepository, windows: Windows, *,
            min_gain: float = 0.0, margin: float = MARGIN, promote: bool = False,
            seed: int = 0) -> RetrainResult:
    """Train the challenger, score both on the test week, register (and promote) if it wins."""
    estimator = gradient_boosting(seed)
    fit(estimator, train.x, train.y)
    onnx_bytes = export_classifier(estimator, n_features=len(FRAUD_FEATURE_NAMES))
    difference = check_parity(estimator, onnx_bytes, test.x)
    challenger_p = onnx_probabilities(onnx_bytes, test.x)
    challenger = score(test.frame, test.y, challenger_p)
    current = production_model(repository)
    version = None if current is None else current[0]
    production = interval = None
    if current is not None:
        production_p = onnx_probabilities(current[1], test.x)
        production = score(test.frame, test.y, production_p)
        if 0 < test.frauds < len(test.y):
            interval = ap_difference_interval(test.y, challenger_p, production_p,
                                              test.frame["card_id"].to_numpy(), RESAMPLES, seed)
    verdict = judge(challenger, production, min_gain, interval, margin)
    result = RetrainResult(
        windows.describe(), len(train.y), train.frauds, len(test.y), test.frauds,
        (train.served + test.served) / (len(train.y) + len(test.y)), challenger, production,
        version, verdict, None, False, {"train": train.burned_in, "test": test.burned_in},
        interval, {"min_gain": min_gain, "margin": margin, "resamples": float(RESAMPLES),
                   "level": LEVEL})
    if not verdict.passed:
        return result
    registered = repository.register(
        MODEL, onnx_bytes, feature_names=FRAUD_FEATURE_NAMES,
        metrics=asdict(challenger) | {"onnx_parity_max_abs_diff": difference,
                                      "train_rows": float(len(train.y)),
                                      "test_rows": float(len(test.y))},
        training_data_hash=data_hash(train.x, train.y),
        description=(f"hist gradient boosting retrained from the lake as of "
                     f"{windows.as_of.isoformat()}: {verdict.reason}"),
        extra_files={
            FRAUD_REFERENCE_FILE: reference_json(train.x, train.y).encode(),
            # As make models does: inputs from the fitted rows, the score from held-out ones.
            DRIFT_REFERENCE_FILE: DriftReference.of(
                train.x, FRAUD_FEATURE_NAMES, challenger_p,
                description="inputs: the training week's rows from the lake, burn-in "
                            "excluded; score: the held-out test week's probabilities"
                ).to_json().encode(),
            GATE_FILE: result.to_json().encode(),
        },
        actor="trainer",
    )
    if promote and repository.production_version(MODEL) != registered:
        repository.promote(MODEL, registered, actor="trainer")
    promoted = repository.production_version(MODEL) == registered
    return replace(result, registered=registered, promoted=promoted)


def retrain_from_lake(root: Path, repository: ModelRepository, as_of: datetime, *,
                      min_gain: float = 0.0, margin: float = MARGIN, promote: bool = False,
                      report: Path | None = REPORT,
                      burn_in_days: int = FRAUD_REACH_DAYS) -> RetrainResult:
    """The protocol's windows ending at `as_of`, the challenger, the gate; the verdict written
    to `report` either way. Raises NotEnoughData when the windows hold too little to judge
    (a lake younger than burn-in + 28 days has no complete training week: the dev stack's
    world and seed hold LAKE_DAYS_FOR_A_RETRAIN days)."""
    windows = Windows.ending_at(as_of)
    with open_lake(root) as con:
        train, test = training_and_test(con, windows, burn_in_days)
    result = retrain(train, test, repository, windows, min_gain=min_gain, margin=margin,
                     promote=promote)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(result.to_json())
    return result


def summary(result: RetrainResult) -> str:
    """The verdict as a reader wants it: both models, side by side, and what happened."""
    def row(name: str, s: Scores | None) -> str:
        if s is None:
            return f"  {name:<22} -"
        return (f"  {name:<22} AUC {s.auc_roc:.3f}  AP {s.average_precision:.3f}  "
                f"card precision@100 {s.card_precision_at_100:.3f}")
    w = result.windows
    outcome = (f"registered fraud v{result.registered}" + (" and promoted" if result.promoted
                                                           else " (not promoted)")
               if result.registered else "not registered")
    return "\n".join([
        f"windows: train {w['train']}, delay {w['delay']}, test {w['test']} (as of {w['as_of']})",
        f"rows: train {result.train_rows:,} ({result.train_frauds} fraud), test "
        f"{result.test_rows:,} ({result.test_frauds} fraud); {result.served_share:.0%} of "
        "vectors as served, the rest recomputed",
        f"burn-in: left out {result.burned_in['train']:,} training and "
        f"{result.burned_in['test']:,} test rows whose windows reach before the lake's first "
        "transaction",
        row("challenger", result.challenger),
        row(f"production v{result.production_version}" if result.production_version
            else "production", result.production),
        *([f"AP gain 95 % interval (paired bootstrap over the test week's cards): "
           f"{result.gain_interval[0]:+.4f} to {result.gain_interval[1]:+.4f}"]
          if result.gain_interval is not None else []),
        f"gate: {'PASSED' if result.verdict.passed else 'REFUSED'}: {result.verdict.reason}; "
        f"{outcome}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.fraud_retrain",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--as-of", type=datetime.fromisoformat, default=None,
                        help="ISO 8601 instant with its zone (default: now)")
    parser.add_argument("--lake-root", type=Path, default=None)
    parser.add_argument("--min-gain", type=float, default=0.0,
                        help="average precision the challenger must gain over production")
    parser.add_argument("--margin", type=float, default=MARGIN,
                        help="AP the challenger may lose, at the interval's lower end, and "
                             "still register (non-inferiority)")
    parser.add_argument("--promote", action="store_true",
                        help="make the challenger production when it passes the gate")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--burn-in-days", type=int, default=FRAUD_REACH_DAYS,
                        help="leave out rows this close to the lake's first transaction "
                             "(default: the longest reach of a feature window; 0 keeps rows "
                             "with truncated windows)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    as_of = args.as_of or datetime.now(UTC)
    if as_of.tzinfo is None:
        parser.error("--as-of needs a zone, e.g. 2026-12-01T00:00:00+00:00")
    repository = ModelRepository(ModelSettings().model_repository)
    try:
        result = retrain_from_lake(args.lake_root or LakeStoreSettings().lake_root, repository,
                                   as_of, min_gain=args.min_gain, margin=args.margin,
                                   promote=args.promote,
                                   report=args.report, burn_in_days=args.burn_in_days)
    except NotEnoughData as exc:
        print(f"[retrain-fraud] not trained: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print(summary(result) + f"\nreport: {args.report}")  # noqa: T201  (a CLI prints its result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
