"""`python -m services.trainer.online_check`: the running recommender's lists, scored offline-style.

    production ranker ── offline_lists.json: held-out users, each algorithm's offline top 10
            │
    GET /v1/recommendations/{user}?k=10 (HTTP, the running stack) ──▶ top 10 + variant
            │                                         control: hybrid blend, treatment: ranker
    the world's interactions in [as_of, until) ──▶ relevant titles (not watched before as_of)
            │
    per variant, the same users: recall@10 online and offline (services/trainer/recs_metrics),
    95 % bootstrap intervals, and the paired difference: they agree within noise when its
    interval holds 0

The stack must be seeded with the same dataset (`make demo DATASET=movielens`): the seeder
replays only the history before the ranker's split, so the online state is the offline one,
shifted to now. The service then adds what the offline lists lack or do differently (MMR and a
genre cap, a discovery slot, taste vectors folded by the stream); docs/evaluation/movielens.md
says what the gap is made of.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd

from services.common.arrays import BoolArray, FloatArray, IntArray
from services.common.models import ModelRepository
from services.trainer.pipeline import TrainerSettings
from services.trainer.recs import OFFLINE_LISTS_FILE
from services.trainer.recs_metrics import (
    bootstrap_interval,
    ndcg_per_user,
    recall_per_user,
)
from services.trainer.recs_report_movielens import ONLINE_JSON, update_online_section

VARIANT_ALGORITHMS = {"control": "hybrid blend", "treatment": "ranker"}
"""What each variation of rec-algorithm serves (config/experiments/experiments.toml's payloads:
control the blend, treatment the ranker), named as the offline evaluation names them."""
RESAMPLES = 1_000
SEED = 42


@dataclass(frozen=True)
class Served:
    """One answer of the service, as far as the check needs it."""

    user_id: str
    variant: str
    content_ids: tuple[str, ...]
    served_from: str
    fallbacks: tuple[str, ...]
    personalization: str


@dataclass(frozen=True)
class Figure:
    mean: float
    low: float     # 95 % bootstrap interval over users
    high: float


@dataclass(frozen=True)
class Comparison:
    """One variant: its online lists against the same model's offline lists, same users."""

    variant: str
    algorithm: str
    users: int
    recall_online: Figure
    recall_offline: Figure
    recall_difference: Figure    # online - offline, paired per user
    ndcg_online: Figure
    ndcg_offline: Figure
    agree: bool                  # the difference's interval holds 0


def ask(client: httpx.Client, recommender: str, user: str, k: int) -> Served:
    response = client.get(f"{recommender}/v1/recommendations/{quote(user, safe='')}",
                          params={"k": k})
    response.raise_for_status()
    body = response.json()
    return Served(user, body["variant"], tuple(i["content_id"] for i in body["items"]),
                  body["served_from"], tuple(body["fallbacks"]), body["personalization"])


def relevant_titles(interactions: pd.DataFrame, as_of: float, until: float
                    ) -> dict[str, set[str]]:
    """Each user's titles watched in [as_of, until) that they had not watched before as_of:
    the offline evaluation's labels (a title already watched is never recommended)."""
    seconds = interactions["timestamp"].map(lambda t: t.timestamp())
    past = interactions[seconds < as_of]
    future = interactions[(seconds >= as_of) & (seconds < until)]
    seen = past.groupby("user_id")["content_id"].agg(set).to_dict()
    return {str(user): {str(t) for t in titles} - seen.get(user, set())
            for user, titles in future.groupby("user_id")["content_id"].agg(set).items()}


def _matrices(users: Sequence[str], lists: Sequence[Mapping[str, Sequence[str]]],
              relevant: Mapping[str, set[str]], k: int) -> tuple[list[IntArray], BoolArray]:
    """Title rows of each set of lists ([users, k], -1 pads) and the relevance matrix."""
    ids = sorted({t for per_user in lists for u in users for t in per_user.get(u, ())}
                 | {t for u in users for t in relevant.get(u, set())})
    row = {t: i for i, t in enumerate(ids)}
    tops = []
    for per_user in lists:
        top = np.full((len(users), k), -1, dtype=np.int64)
        for n, user in enumerate(users):
            picked = [row[t] for t in per_user.get(user, ())][:k]
            top[n, :len(picked)] = picked
        tops.append(top)
    matrix = np.zeros((len(users), max(len(ids), 1)), dtype=bool)
    for n, user in enumerate(users):
        matrix[n, [row[t] for t in relevant.get(user, set())]] = True
    return tops, matrix


def _figure(per_user: FloatArray, resamples: int, seed: int) -> Figure:
    low, high = bootstrap_interval(per_user, resamples, seed)
    return Figure(float(per_user.mean()), low, high)


def compare(variant: str, users: Sequence[str], online: Mapping[str, Sequence[str]],
            offline: Mapping[str, Sequence[str]], relevant: Mapping[str, set[str]], k: int,
            resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    """recall@k and NDCG@k of the online and the offline lists of `users` (those without a
    relevant title count in neither, as offline), with the paired difference of recall."""
    (top_online, top_offline), labels = _matrices(users, (online, offline), relevant, k)
    recall_on = recall_per_user(top_online, labels, k)
    recall_off = recall_per_user(top_offline, labels, k)
    difference = _figure(recall_on - recall_off, resamples, seed)
    return Comparison(
        variant=variant, algorithm=VARIANT_ALGORITHMS[variant], users=len(recall_on),
        recall_online=_figure(recall_on, resamples, seed),
        recall_offline=_figure(recall_off, resamples, seed),
        recall_difference=difference,
        ndcg_online=_figure(ndcg_per_user(top_online, labels, k), resamples, seed),
        ndcg_offline=_figure(ndcg_per_user(top_offline, labels, k), resamples, seed),
        agree=difference.low <= 0.0 <= difference.high)


def comparisons(answers: Iterable[Served], offline: Mapping[str, Any],
                relevant: Mapping[str, set[str]], resamples: int = RESAMPLES,
                seed: int = SEED) -> list[Comparison]:
    """Per variant: the users the service answered under it, without a fallback (a treatment
    answer made without the ranker is the blend, so it belongs to neither side)."""
    by_variant: dict[str, dict[str, Sequence[str]]] = {}
    for answer in answers:
        if answer.fallbacks or answer.variant not in VARIANT_ALGORITHMS:
            continue
        by_variant.setdefault(answer.variant, {})[answer.user_id] = answer.content_ids
    results = []
    for variant, online in sorted(by_variant.items()):
        offline_lists = dict(zip(offline["users"],
                                 offline["lists"][VARIANT_ALGORITHMS[variant]], strict=True))
        users = sorted(online)
        results.append(compare(variant, users, online, offline_lists, relevant,
                               int(offline["k"]), resamples, seed))
    return results


def production_offline_lists(repository: ModelRepository) -> tuple[int, dict[str, Any]]:
    version = repository.production_version("ranker")
    if version is None:
        raise SystemExit("no production ranker: run `make models` first")
    try:
        path = repository.extra_file("ranker", version, OFFLINE_LISTS_FILE)
    except FileNotFoundError as exc:
        raise SystemExit(f"ranker v{version} keeps no offline lists: retrain it "
                         f"(`make models`)") from exc
    lists: dict[str, Any] = json.loads(path.read_text())
    return version, lists


def run(args: argparse.Namespace, settings: TrainerSettings) -> dict[str, Any]:
    repository = ModelRepository(settings.model_repository)
    version, offline = production_offline_lists(repository)
    if offline["dataset"] != settings.dataset:
        raise SystemExit(f"the production ranker learned from {offline['dataset']}, not "
                         f"{settings.dataset}: `make models DATASET={settings.dataset}`")
    world = settings.world_dir / ("movielens" if settings.dataset == "movielens" else "viewing")
    relevant = relevant_titles(pd.read_parquet(world / "interactions.parquet"),
                               float(offline["as_of"]), float(offline["until"]))
    started = time.monotonic()
    with httpx.Client(timeout=10.0) as client:
        answers = [ask(client, args.recommender, user, int(offline["k"]))
                   for user in offline["users"]]
    seconds = time.monotonic() - started
    if answers and all(a.personalization == "cold" for a in answers):
        raise SystemExit("every held-out user got a cold-start list: the stack has no "
                         f"{settings.dataset} history (`make seed DATASET={settings.dataset}`)")
    results = comparisons(answers, offline, relevant, args.resamples, SEED)
    metadata = repository.metadata("ranker", version)
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make movielens-check" if settings.dataset == "movielens"
                   else "python -m services.trainer.online_check",
        "machine": {"arch": platform.machine(), "cores": os.cpu_count(),
                    "note": "shared with other work; the stack runs on the same cores"},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "pandas": pd.__version__, "httpx": httpx.__version__},
        "dataset": settings.dataset,
        "recommender": args.recommender,
        "model": {"name": "ranker", "version": version,
                  "training_data_hash": metadata.training_data_hash},
        "k": int(offline["k"]),
        "as_of": datetime.fromtimestamp(float(offline["as_of"]), UTC).isoformat(),
        "until": datetime.fromtimestamp(float(offline["until"]), UTC).isoformat(),
        "users_asked": len(answers),
        "answers": {
            "variant": dict(Counter(a.variant for a in answers)),
            "served_from": dict(Counter(a.served_from for a in answers)),
            "personalization": dict(Counter(a.personalization for a in answers)),
            "with_fallbacks": sum(1 for a in answers if a.fallbacks),
            "seconds": round(seconds, 2),
        },
        "offline_all_users_recall_at_10": offline["recall_at_10"],
        "bootstrap_resamples": args.resamples,
        "comparisons": [asdict(c) for c in results],
    }


def headline(facts: Mapping[str, Any]) -> list[str]:
    """One line per variant: what `make demo` and the check print."""
    lines = []
    for c in facts["comparisons"]:
        on, off, diff = c["recall_online"], c["recall_offline"], c["recall_difference"]
        lines.append(
            f"{c['variant']} ({c['algorithm']}, {c['users']} users): recall@10 online "
            f"{on['mean']:.3f} ({on['low']:.3f}-{on['high']:.3f}), offline {off['mean']:.3f} "
            f"({off['low']:.3f}-{off['high']:.3f}), difference {diff['mean']:+.3f} "
            f"({diff['low']:+.3f} to {diff['high']:+.3f}): "
            + ("agree within noise" if c["agree"] else "DIFFERENT beyond noise"))
    return lines


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201  (a command-line program prints its result)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.online_check",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recommender", default="http://127.0.0.1:8030")
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    parser.add_argument("--report-dir", type=Path, default=Path("reports/online"),
                        help="where <dataset>-online.json goes; docs/evaluation also updates "
                             "the online section of movielens.md")
    parser.add_argument("--tag", default=None,
                        help="a side run (another recommender's settings): written to "
                             "<dataset>-online-<tag>.json, which the page cites beside the main")
    parser.add_argument("--note", default="", help="how the side run's recommender differs")
    args = parser.parse_args()
    settings = TrainerSettings()
    facts = run(args, settings) | {"tag": args.tag, "note": args.note}
    args.report_dir.mkdir(parents=True, exist_ok=True)
    name = ONLINE_JSON.format(dataset=settings.dataset)
    out = args.report_dir / (name if args.tag is None
                             else name.replace(".json", f"-{args.tag}.json"))
    out.write_text(json.dumps(facts, indent=2) + "\n")
    if settings.dataset == "movielens" and args.tag is None:
        update_online_section(args.report_dir, facts)
    answers = facts["answers"]
    say(f"{facts['users_asked']} held-out users asked in {answers['seconds']} s: "
          f"variants {answers['variant']}, served from {answers['served_from']}, "
          f"{answers['with_fallbacks']} with fallbacks (left out)")
    say("\n".join(headline(facts)))
    say(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
