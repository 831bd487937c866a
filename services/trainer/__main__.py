"""`python -m services.trainer`: the command behind `make models`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from services.common.lake.settings import LakeStoreSettings
from services.common.models import ModelRepository
from services.common.telemetry import configure_logging
from services.trainer import lake_sets
from services.trainer.fraud_retrain import NotEnoughData, retrain_from_lake
from services.trainer.fraud_retrain import summary as fraud_summary
from services.trainer.pipeline import SCALES, TrainerSettings, missing_models, run_pipeline
from services.trainer.ranker_from_lake import NotEnoughData as TooFewLoggedLists
from services.trainer.ranker_from_lake import retrain_ranker
from services.trainer.ranker_from_lake import summary as ranker_summary


def say(message: str) -> None:
    print(f"[models] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when every production model is already registered")
    parser.add_argument("--dataset", choices=("synthetic", "movielens"), default=None,
                        help="the recommender's data (default: MLSD_DATASET, else synthetic)")
    parser.add_argument("--source", choices=("worlds", "lake"), default="worlds",
                        help="lake: train the fraud model and the ranker on what the system saw, "
                             "from the lake (services/trainer/from_lake.py, ranker_from_lake.py); "
                             "worlds: the generated worlds")
    parser.add_argument("--as-of", type=datetime.fromisoformat, default=None,
                        help="with --source lake: the instant the protocol ends at, ISO 8601 "
                             "with its zone (default: now)")
    parser.add_argument("--promote", action="store_true",
                        help="with --source lake: promote a fraud challenger that passes its gate")
    args = parser.parse_args()
    configure_logging("trainer", "WARNING", json_logs=False)
    settings = TrainerSettings()
    if args.source == "lake":
        as_of = args.as_of or datetime.now(UTC)
        if as_of.tzinfo is None:
            parser.error("--as-of needs a zone, e.g. 2026-12-01T00:00:00+00:00")
        return from_the_lake(settings, as_of, promote=args.promote)
    if args.dataset is not None:
        settings = settings.model_copy(update={"dataset": args.dataset})

    if args.if_missing:
        missing = missing_models(ModelRepository(settings.model_repository), settings.dataset)
        if not missing:
            say(f"production models for the {settings.dataset} data present in "
                f"{settings.model_repository}; nothing to train")
            return 0
        say(f"training: {', '.join(missing)} missing or trained on other data than "
            f"{settings.dataset}")
    started = time.perf_counter()
    result = run_pipeline(settings, SCALES[args.scale], say)
    for model in result.registered:
        before = f" (was v{model.previous_production})" if model.previous_production else ""
        headline = ", ".join(f"{k} {v:.3f}" for k, v in list(model.metrics.items())[:3])
        say(f"{model.name} v{model.version} is production{before}: {headline}; "
            f"ONNX parity max |diff| {model.parity_max_abs_diff:.1e}")
    say(f"done in {time.perf_counter() - started:.0f} s; reports in {settings.report_dir}, "
        f"models in {settings.model_repository}, worlds in {settings.world_dir}")
    return 0


def from_the_lake(settings: TrainerSettings, as_of: datetime, *, promote: bool) -> int:
    """`make models SOURCE=lake`: the point-in-time sets from the lake, then the fraud model the
    one way it is trained from the lake (fraud_retrain.py: `make retrain-fraud`'s protocol and
    gate) and the ranker (`make retrain-ranker`'s); each registered only if it beats
    production, and left unpromoted (a winning fraud model promoted with `promote`)."""
    lake_root = LakeStoreSettings().lake_root
    training_dir = settings.world_dir.parent / "training"
    lake_sets.main(["--as-of", as_of.isoformat(), "--lake-root", str(lake_root),
                    "--out", str(training_dir)])
    say(f"training sets as of {as_of:%Y-%m-%d %H:%M} UTC from the lake at {lake_root} "
        f"in {training_dir}")
    repository = ModelRepository(settings.model_repository)
    trained = 0
    try:
        result = retrain_from_lake(lake_root, repository, as_of, promote=promote)
        say("fraud: " + fraud_summary(result).replace("\n", "\n[models] "))
        trained += 1
    except NotEnoughData as exc:
        say(f"fraud: not trained: {exc}")
    # The ranker from the logged impressions and clicks (make retrain-ranker: the features as
    # served, a gate against production on the newest lists; registered unpromoted if it wins).
    try:
        report = retrain_ranker(lake_root, repository, as_of)
        say("ranker: " + ranker_summary(report).replace("\n", "\n[models] "))
        trained += 1
    except TooFewLoggedLists as exc:
        say(f"ranker: not trained: {exc}")
    return 0 if trained else 1

if __name__ == "__main__":
    sys.exit(main())
