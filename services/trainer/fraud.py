"""Train and evaluate the fraud models: the handbook's protocol and baselines, then production.

The protocol is the Fraud Detection Handbook's (Le Borgne et al.): train on 7 days, skip 7 (the
labels of those days are not in yet), test on the 7 after. The test days leave out cards already
known to be compromised, a card becoming known 7 days after its first fraud from the training
week on:

    |-- warm-up (>= 37 d) --|-- train 7 d --|-- delay 7 d --|-- test 7 d --|
     features only            fit             unlabelled      scored

Three things are measured on the same split:
1. the handbook world (scenarios 1-3) with its 15 features, next to the handbook's published
   numbers: logistic regression, random forest, and HistGradientBoosting for XGBoost;
2. the extended world (all six scenarios): the production model over every catalog feature
   against the same model restricted to the handbook's 15;
3. rules only, ML only and rules + ML at the decision thresholds of the design brief.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.common.arrays import BoolArray, Float32Array, FloatArray
from services.common.drift import DRIFT_REFERENCE_FILE, DriftReference
from services.designs.model_features import (
    FRAUD_FEATURE_NAMES,
    FRAUD_REFERENCE_FILE,
    HANDBOOK_FEATURE_NAMES,
)
from services.trainer.artifacts import TrainedModel, data_hash
from services.trainer.fraud_features import fraud_feature_matrix
from services.trainer.fraud_metrics import (
    Scores,
    decision_table,
    rule_table,
    scenario_recall,
)
from services.trainer.fraud_models import (
    ModelResult,
    SplitData,
    evaluate,
    gradient_boosting,
    handbook_benchmark,
)
from services.trainer.fraud_protocol import Split
from services.trainer.fraud_report import FraudTrainingResult, evaluation_json, write_report
from services.trainer.fraud_rules_baseline import (
    DECLINE_AT,
    REVIEW_AT,
    combined_risk,
    rule_hits,
    rule_scores,
)
from services.trainer.worlds.transactions import (
    TransactionWorld,
    TransactionWorldConfig,
    generate_transactions,
    summary,
)

logger = logging.getLogger(__name__)


HOLDOUT_ROWS = 2_000


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - started


def _holdout(x: Float32Array, seed: int) -> Float32Array:
    rows = np.random.default_rng(seed).permutation(len(x))[:HOLDOUT_ROWS]
    return np.ascontiguousarray(x[np.sort(rows)], dtype=np.float32)



def _seed_spread(config: TransactionWorldConfig, first: list[ModelResult],
                 seeds: tuple[int, ...]) -> dict[str, list[Scores]]:
    spread = {r.name: [r.scores] for r in first}
    for seed in seeds:
        other = generate_transactions(replace(config, seed=seed))
        for r in handbook_benchmark(other, Split.at_end_of(other.config)):
            spread[r.name].append(r.scores)
    return spread


def train_fraud(
    world: TransactionWorld,
    report_dir: Path,
    progress: Callable[[str], None] | None = None,
    generation_seconds: float | None = None,
    spread_seeds: tuple[int, ...] = (),
) -> FraudTrainingResult:
    """Run the three evaluations, write fraud.md and img/fraud-*.png, return the production model.

    `generation_seconds` (how long the world took to build) only goes into the report.
    `spread_seeds` repeats the handbook benchmark on worlds with those seeds (about 10 s each),
    to show how much of a difference to the published table another seed would change.
    """
    say = progress or (lambda message: logger.info("%s", message))
    timings: dict[str, float] = {} if generation_seconds is None else {
        "world generation": generation_seconds}
    seed = world.config.seed
    split = Split.at_end_of(world.config)

    say("fraud: handbook protocol, three models on the handbook's 15 features")
    with _timed(timings, "handbook features + models"):
        handbook = handbook_benchmark(world, split)
    say("fraud: features of the extended world")
    with _timed(timings, "extended features"):
        data = SplitData.of(world.transactions, fraud_feature_matrix(world.transactions), split)

    say("fraud: production model on the extended world")
    with _timed(timings, "production model"):
        estimator = gradient_boosting(seed)
        production = evaluate("hist gradient boosting", "extended",
                               f"all {len(FRAUD_FEATURE_NAMES)}", estimator, data)
    with _timed(timings, "extended, handbook features"):
        restricted = evaluate("hist gradient boosting", "extended", "handbook 15",
                               gradient_boosting(seed), data,
                               slice(0, len(HANDBOOK_FEATURE_NAMES)))

    say("fraud: rules vs ML vs rules + ML")
    with _timed(timings, "decisions"):
        hits = rule_hits(data.x[data.test])
        risks = _risks(hits, production.probabilities)
        scenarios = data.tx["fraud_scenario"].to_numpy()[data.test]

    model = TrainedModel(
        name="fraud",
        estimator=estimator,
        feature_names=FRAUD_FEATURE_NAMES,
        holdout=_holdout(data.x[data.test], seed),
        metrics=_model_metrics(production, restricted, int(data.train.sum())),
        training_data_hash=data_hash(data.x[data.train], data.y[data.train]),
        description=_description(world, split, production),
    )
    result = FraudTrainingResult(
        model, split, handbook, [production, restricted],
        decision_table(production.labels, risks),
        scenario_recall(scenarios, risks, REVIEW_AT),
        scenario_recall(scenarios, risks, DECLINE_AT),
        rule_table(hits, production.labels), summary(world), timings,
    )
    if spread_seeds:
        say(f"fraud: handbook benchmark on {len(spread_seeds)} more seeds")
        started = time.perf_counter()
        spread = _seed_spread(world.config, handbook, spread_seeds)
        result = replace(result, seed_spread=spread, spread_seeds=(seed, *spread_seeds),
                         spread_seconds=time.perf_counter() - started)
    say("fraud: writing the report")
    write_report(result, world, report_dir)
    model.extra_files["evaluation.json"] = evaluation_json(result).encode()
    model.extra_files[FRAUD_REFERENCE_FILE] = reference_json(data.x[data.train],
                                                       data.y[data.train]).encode()
    # Inputs from the rows it was fitted on; the score from the held-out week, since in-sample
    # scores are more confident than any live ones and would read as drift on the first day.
    model.extra_files[DRIFT_REFERENCE_FILE] = DriftReference.of(
        data.x[data.train], FRAUD_FEATURE_NAMES, production.probabilities,
        description="inputs: the training week's rows; score: the held-out test week's "
                    "probabilities").to_json().encode()
    return result


def reference_json(x: Float32Array, y: npt.NDArray[Any]) -> str:
    """The typical transaction the fraud service explains against: each feature's median over
    the legitimate training rows. A decision's top ML factors are the features whose typical
    value would lower its score the most."""
    genuine = x[y == 0] if (y == 0).any() else x
    values = np.median(genuine, axis=0).astype(np.float32)
    return json.dumps({"description": "median of each feature over legitimate training rows",
                       "feature_names": list(FRAUD_FEATURE_NAMES),
                       "values": [float(v) for v in values]}, indent=2) + "\n"


def _risks(hits: BoolArray, probabilities: FloatArray) -> dict[str, FloatArray]:
    """The risk each system assigns: rules alone, the model alone, the brief's combination."""
    rules = rule_scores(hits)
    return {"rules": rules, "ML": probabilities,
            "rules + ML": combined_risk(rules, probabilities)}


def _model_metrics(production: ModelResult, restricted: ModelResult,
                   train_rows: int) -> dict[str, float]:
    return {
        **asdict(production.scores),
        "handbook_features_average_precision": restricted.scores.average_precision,
        "train_rows": float(train_rows),
        "test_rows": float(len(production.labels)),
        "test_fraud_rate": float(production.labels.mean()) if len(production.labels) else 0.0,
    }


def _description(world: TransactionWorld, split: Split, production: ModelResult) -> str:
    s = production.scores
    return (
        f"HistGradientBoosting over the {len(FRAUD_FEATURE_NAMES)} catalog fraud features, "
        f"trained on {split.train_start:%Y-%m-%d} + {split.train_days} days of the synthetic "
        f"transaction world (seed {world.config.seed}, {world.config.n_customers} customers); "
        f"test week from {split.test_start:%Y-%m-%d}: AUC ROC {s.auc_roc:.3f}, "
        f"AP {s.average_precision:.3f}, card precision@100 {s.card_precision_at_100:.3f}"
    )



# --- CLI --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """CLI: generate the default world, train, and write the evaluation page."""
    parser = argparse.ArgumentParser(description="Train and evaluate the fraud models.")
    parser.add_argument("--report-dir", type=Path, default=Path("docs/evaluation"))
    parser.add_argument("--days", type=int, default=TransactionWorldConfig.n_days)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=int, default=0, metavar="N",
                        help="repeat the handbook benchmark on N more seeds (about 10 s each)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    end = pd.Timestamp(TransactionWorldConfig.start_date) + pd.Timedelta(
        days=TransactionWorldConfig.n_days)
    config = TransactionWorldConfig(n_days=args.days, seed=args.seed,
                                    start_date=(end - pd.Timedelta(days=args.days)).date())
    world = generate_transactions(config)
    result = train_fraud(world, args.report_dir, generation_seconds=time.perf_counter() - started,
                         spread_seeds=tuple(range(args.seed + 1, args.seed + 1 + args.spread)))
    headline = result.model.metrics | {"seconds": sum(result.timings.values())}
    print(json.dumps(headline, indent=2))  # noqa: T201  (a CLI prints its result)


if __name__ == "__main__":
    main()
