"""What a shadow challenger costs the fraud stream scorer: drain tx/s without and with it.

    .venv/bin/python benchmarks/fraud_stream_shadow.py [--backlog 60000] [--rounds 2]
        [--model-repository .state/models]

benchmarks/fraud_stream.py's drain (its own redis-server and Kafka broker, the world's history
in Redis restored before each run, the backlog published with the scorers stopped, then one
`python -m services.fraud.stream` process drains it), run alternately without and with
MLSD_FRAUD_SHADOW_VERSION, `--rounds` times each, in one process so both see the same machine.
The challenger is the production version's own graph registered again as a new version (the
realistic case: a retrained model of the same shape), in a copy of the repository, so the cost
measured is shadowing itself: a second ONNX call per batch, the policy's decisions for it, and
twice the decision events in the same publish.

Writes benchmarks/results/fraud_stream_shadow.json (date, machine, load, versions, rows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fraud_stream as fs

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.machine import describe
from services.common.models import ModelRepository
from services.devstack.servers import REPO_ROOT, start_kafka, start_redis


def with_challenger(source: Path, workdir: Path) -> tuple[Path, int, int]:
    """A copy of the repository whose fraud model has one more version: production's graph."""
    root = workdir / "models"
    shutil.copytree(source, root)
    repository = ModelRepository(root)
    production = repository.production_version("fraud")
    assert production is not None, f"no production fraud model in {source}: run make models"
    meta = repository.metadata("fraud", production)
    challenger = repository.register(
        "fraud", repository.model_path("fraud", production).read_bytes(),
        feature_names=meta.feature_names, metrics=dict(meta.metrics),
        training_data_hash=meta.training_data_hash,
        description=f"v{production}'s graph again: the shadow benchmark's challenger")
    return root, production, challenger


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Drain rates side by side, and the scorer's own timers: what the shadow stage takes per
    transaction and its share of the whole batch's time in the same run. On a machine other jobs
    share, the rates move with their load; the timers' share moves much less."""
    def rate(shadow: bool) -> list[int]:
        return [r["decision_timestamps"]["tx_per_s"] for r in runs if r["shadow"] == shadow]

    def per_tx(run: dict[str, Any], stage: str) -> float:
        return float(run["stage_ms"]["ms"][stage]["per_tx"])

    without, with_ = rate(False), rate(True)
    shadowed = [r for r in runs if r["shadow"]]
    shares = [per_tx(r, "shadow") / per_tx(r, "whole batch") for r in shadowed]
    pairs = [{"round": a["round"],
              "ratio_with_to_without": round(b["decision_timestamps"]["tx_per_s"]
                                             / a["decision_timestamps"]["tx_per_s"], 3),
              "other_work_cores": [a["cores"].get("other work"), b["cores"].get("other work")]}
             for a, b in zip([r for r in runs if not r["shadow"]], shadowed, strict=True)]
    return {
        "pairs": pairs,
        "tx_per_s": {"without_shadow": without, "with_shadow": with_,
                     "median_without": statistics.median(without),
                     "median_with": statistics.median(with_),
                     "ratio_of_medians": round(statistics.median(with_)
                                               / statistics.median(without), 3)},
        "scorer_timers": {
            "shadow_stage_ms_per_tx": [round(per_tx(r, "shadow"), 4) for r in shadowed],
            "whole_batch_ms_per_tx": [round(per_tx(r, "whole batch"), 4) for r in shadowed],
            "shadow_share_of_batch": [round(s, 4) for s in shares],
            "median_share": round(statistics.median(shares), 4),
            "other_work_cores": [r["cores"].get("other work") for r in runs],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--model-repository", type=Path, default=REPO_ROOT / ".state/models")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "benchmarks/results/fraud_stream_shadow.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-shadow-bench-"))
    models, production, challenger = with_challenger(args.model_repository, workdir)
    world = fs.bench_world(args.customers, args.backlog)
    timeline = fs.Timeline.of(world, args.backlog)
    redis_server = start_redis(workdir)
    kafka = start_kafka(workdir)
    runs: list[dict[str, Any]] = []
    try:
        ensure_topics(kafka.address, platform_topics(3))
        plain = fs.Stack(redis_server, kafka, {
            "MLSD_REDIS_URL": redis_server.address, "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address,
            "MLSD_MODEL_REPOSITORY": str(models),
            "MLSD_FRAUD_POLICY_PATH": str(REPO_ROOT / "config/fraud/policy.toml"),
            "MLSD_FRAUD_STREAM_MAX_AGE_S": str(60 * 86_400), "MLSD_LOG_LEVEL": "WARNING"},
            workdir)
        shadowed = replace(plain, env={**plain.env,
                                       "MLSD_FRAUD_SHADOW_VERSION": str(challenger)})
        client = redis.Redis.from_url(redis_server.address)
        state = fs.load_history(client, timeline)
        client.close()
        for round_ in range(args.rounds):
            for shadow, stack in ((False, plain), (True, shadowed)):
                result = fs.drain(stack, state, timeline, 1)
                runs.append({"round": round_ + 1, "shadow": shadow,
                             **{k: result[k] for k in ("backlog", "decisions", "lag_probe",
                                                       "decision_timestamps", "cores",
                                                       "load_avg")},
                             "stage_ms": result["metrics"]})
    finally:
        kafka.stop()
        redis_server.stop()

    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**describe(), "load_avg_before": load_before,
                    "note": "2 cores shared with other jobs; runs alternate to share the noise"},
        "setup": {"customers": args.customers, "backlog": args.backlog, "scorers": 1,
                  "production_version": production, "challenger_version": challenger,
                  "challenger": "production's graph registered again"},
        **summarise(runs),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("tx_per_s", "scorer_timers")}, indent=1))
    print(f"logs: {workdir}; result: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
