"""`python -m services.trainer`: the command behind `make models`."""

from __future__ import annotations

import argparse
import sys
import time

from services.common.models import ModelRepository
from services.common.telemetry import configure_logging
from services.trainer.pipeline import SCALES, TrainerSettings, missing_models, run_pipeline


def say(message: str) -> None:
    print(f"[models] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when every production model is already registered")
    parser.add_argument("--dataset", choices=("synthetic", "movielens"), default=None,
                        help="the recommender's data (default: MLSD_DATASET, else synthetic)")
    args = parser.parse_args()
    configure_logging("trainer", "WARNING", json_logs=False)
    settings = TrainerSettings()
    if args.dataset is not None:
        settings = settings.model_copy(update={"dataset": args.dataset})

    if args.if_missing and not missing_models(ModelRepository(settings.model_repository)):
        say(f"production models present in {settings.model_repository}; nothing to train")
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
