"""Feature store read latency on real Redis: one pipelined round trip vs one HMGET per view/entity.

    .venv/bin/python benchmarks/feature_store_read.py [--redis-url redis://127.0.0.1:6379/0]

Without --redis-url it starts its own redis-server the way the tests do. Both read styles run
interleaved in the same loop, so machine noise hits them alike. Raw samples go to
reports/feature-store-read/<UTC time>.json, the plot to docs/img/feature-store-read-latency.png,
and a summary table for docs/feature-store.md to the log.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import redis
from matplotlib.ticker import FuncFormatter
from redis.utils import HIREDIS_AVAILABLE
from tqdm import tqdm

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureRow,
    FeatureType,
    FeatureView,
    FeatureWrite,
    RedisFeatureStore,
)
from services.common.features.definitions import row_key
from services.common.features.plans import Fetched, ReadPlan, plan_read
from services.common.features.redis_store import TS_FIELD
from services.common.features.values import FeatureInput
from services.devstack.servers import redis_url

logger = logging.getLogger("feature_store_read")
REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"  # never collides with the stack's "fs" keys when pointed at a shared Redis
VIEWS, FEATURES_PER_VIEW, ENTITIES = 5, 10, 100
PERCENTILES = (50, 90, 99, 99.9)

Read = Callable[[Sequence[Mapping[str, str]], Sequence[str]], list[FeatureRow]]


def build_catalog() -> FeatureCatalog:
    """5 views x 10 scalar features of the kinds fraud and recommendation read."""
    kinds = [FeatureType.FLOAT64] * 6 + [FeatureType.INT64] * 2 + [FeatureType.STRING,
                                                                   FeatureType.BOOL]
    user = Entity("user")
    return FeatureCatalog(
        FeatureView(f"bench_view_{v}", user,
                    tuple(Feature(f"f{i}", kind) for i, kind in enumerate(kinds)),
                    ttl=timedelta(hours=1))
        for v in range(VIEWS)
    )


def seed(store: RedisFeatureStore, catalog: FeatureCatalog) -> None:
    values: dict[str, FeatureInput] = {"float64": 1234.5678, "int64": 42, "string": "PT",
                                       "bool": True}
    now = datetime.now(UTC)
    store.write_batch([
        FeatureWrite(view.name, f"user{e}", {f.name: values[f.dtype] for f in view.features}, now)
        for view in catalog for e in range(ENTITIES)
    ])


def fetch(client: redis.Redis, plan: ReadPlan, pipelined: bool) -> list[Fetched]:
    """The store's HMGETs: all in one pipeline, or one round trip each (the naive way)."""
    commands = [(row_key(NAMESPACE, lookup.view.name, lookup.entity_id),
                 [TS_FIELD, *(f.name for f in lookup.features)]) for lookup in plan.lookups]
    if pipelined:
        pipe = client.pipeline(transaction=False)
        for key, fields in commands:
            pipe.hmget(key, fields)
        replies = pipe.execute()
    else:
        replies = [client.hmget(key, fields) for key, fields in commands]
    # bytes, not str: the client does not decode responses
    return [None if reply[0] is None else cast("list[bytes | None]", reply[1:])
            for reply in replies]


def naive_reader(client: redis.Redis, catalog: FeatureCatalog) -> Read:
    def read(entity_rows: Sequence[Mapping[str, str]], refs: Sequence[str]) -> list[FeatureRow]:
        plan = plan_read(catalog, entity_rows, refs)
        return plan.assemble(fetch(client, plan, pipelined=False))

    return read


def stage_breakdown(client: redis.Redis, catalog: FeatureCatalog, rows: Sequence[Mapping[str, str]],
                    refs: Sequence[str], samples: int) -> dict[str, float]:
    """Median ms of each step of a pipelined read: where the time goes."""
    stages: dict[str, list[int]] = {"plan": [], "round trip": [], "assemble": []}
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        plan = plan_read(catalog, rows, refs)
        t1 = time.perf_counter_ns()
        fetched = fetch(client, plan, pipelined=True)
        t2 = time.perf_counter_ns()
        plan.assemble(fetched)
        t3 = time.perf_counter_ns()
        for stage, ns in zip(stages, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            stages[stage].append(ns)
    return {stage: round(float(np.median(ns)) / 1e6, 3) for stage, ns in stages.items()}


@dataclass
class Case:
    name: str
    entities: int
    samples: int
    pipelined_us: list[float]
    naive_us: list[float]
    stages_ms: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, str]]:
        return [{"user": f"user{e}"} for e in range(self.entities)]


def measure(case: Case, reads: Mapping[str, Read], refs: Sequence[str], warmup: int) -> None:
    rows = case.rows
    pipelined, naive = reads["pipelined"], reads["naive"]
    if pipelined(rows, refs) != naive(rows, refs):
        raise RuntimeError("both read styles must return the same rows")
    for _ in range(warmup):
        pipelined(rows, refs)
        naive(rows, refs)
    # As a service should after start-up: freeze the start-up heap (numpy, matplotlib...) so
    # full collections skip it. Without this, gen-2 collections add 40-60 ms pauses near p99.
    gc.collect()
    gc.freeze()
    for i in tqdm(range(case.samples), desc=case.name, unit="read pair"):
        # alternate which style goes first, so neither always runs on a warmer cache
        order = ((pipelined, case.pipelined_us), (naive, case.naive_us))
        for read, sink in order if i % 2 == 0 else reversed(order):
            start = time.perf_counter_ns()
            read(rows, refs)
            sink.append((time.perf_counter_ns() - start) / 1000)


def summary(samples_us: Sequence[float]) -> dict[str, float]:
    values = np.percentile(np.asarray(samples_us), PERCENTILES)
    stats = {f"p{p:g}_ms": round(float(v) / 1000, 3) for p, v in zip(PERCENTILES, values,
                                                                    strict=True)}
    stats["mean_ms"] = round(float(np.mean(samples_us)) / 1000, 3)
    stats["max_ms"] = round(float(np.max(samples_us)) / 1000, 3)
    return stats


def plot(cases: Sequence[Case], meta: Mapping[str, str], path: Path) -> None:
    """Latency by percentile, on a scale that spreads the tail (p50, p90, p99, p99.9)."""
    figure, axes = plt.subplots(1, len(cases), figsize=(6 * len(cases), 4.5))
    quantiles = 1 - np.logspace(0, -3, 200)[:-1]  # from p0 to just under p99.9
    quantiles = np.append(quantiles, 0.999)
    x = -np.log10(1 - quantiles)
    for axis, case in zip(np.atleast_1d(axes), cases, strict=True):
        for label, samples, colour in (("one pipelined round trip", case.pipelined_us, "tab:blue"),
                                       ("one HMGET per view/entity", case.naive_us, "tab:red")):
            latency_ms = np.quantile(np.asarray(samples), quantiles) / 1000
            p50, p99 = np.percentile(samples, [50, 99]) / 1000
            axis.plot(x, latency_ms, color=colour,
                      label=f"{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        axis.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_formatter(plain)
        axis.tick_params(axis="y", which="minor", labelsize=7)
        axis.set_xticks([0, -np.log10(0.5), 1, 2, 3], ["p0", "p50", "p90", "p99", "p99.9"])
        axis.set_xlabel("percentile")
        axis.set_ylabel("read latency (ms, log scale)")
        axis.set_title(f"{case.name} ({case.samples} samples each)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(loc="upper left", fontsize=8)
    figure.suptitle(f"Feature store read latency (client wall time): {meta['redis']} on "
                    f"loopback, redis-py {meta['redis_py']} with {meta['parser']} parser, "
                    f"{meta['cpus']} CPUs, {meta['date']}", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)




def run(args: argparse.Namespace) -> None:
    catalog = build_catalog()
    refs = [ref for view in catalog for ref in view.refs]
    load_before = os.getloadavg()[0]  # other work on a shared machine shows up in the tail
    with redis_url(args.redis_url) as url:
        client = redis.Redis.from_url(url, socket_timeout=5.0)
        store = RedisFeatureStore(client, catalog, namespace=NAMESPACE)
        seed(store, catalog)
        reads: dict[str, Read] = {"pipelined": store.read,
                                  "naive": naive_reader(client, catalog)}
        cases = [Case(f"1 entity x {len(refs)} features", 1, args.samples_one, [], []),
                 Case(f"{ENTITIES} entities x {len(refs)} features", ENTITIES, args.samples_many,
                      [], [])]
        for case in cases:
            measure(case, reads, refs, args.warmup)
            case.stages_ms = stage_breakdown(client, catalog, case.rows, refs,
                                             min(case.samples, 300))
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "redis": f"Redis {client.info('server')['redis_version']}",
            "redis_py": redis.__version__,
            "parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python (no hiredis)",
            "python": platform.python_version(),
            "machine": platform.platform(),
            "cpus": str(os.cpu_count()),
            "load_avg_1m": f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
            "how": "time.perf_counter_ns around each read() call in one client thread; "
                   "both styles interleaved; warm-up excluded; gc.freeze() after warm-up",
        }
        client.delete(*client.scan_iter(match=f"{NAMESPACE}:*", count=1000))
        client.close()
    report(cases, meta, args)


def report(cases: Sequence[Case], meta: Mapping[str, str], args: argparse.Namespace) -> None:
    results = []
    logger.info("| case | read | samples | p50 ms | p90 ms | p99 ms | p99.9 ms | mean ms |")
    logger.info("|---|---|---|---|---|---|---|---|")
    for case in cases:
        stats = {"pipelined": summary(case.pipelined_us), "naive": summary(case.naive_us)}
        for style, s in stats.items():
            logger.info("| %s | %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f |", case.name, style,
                        case.samples, s["p50_ms"], s["p90_ms"], s["p99_ms"], s["p99.9_ms"],
                        s["mean_ms"])
        ratios = {p: stats["naive"][p] / stats["pipelined"][p] for p in ("p50_ms", "p99_ms")}
        logger.info("%s: naive / pipelined = %.1fx at p50, %.1fx at p99", case.name,
                    ratios["p50_ms"], ratios["p99_ms"])
        logger.info("%s: pipelined read, median ms by step: %s", case.name, case.stages_ms)
        results.append({"name": case.name, "entities": case.entities, "samples": case.samples,
                        "summary": stats, "naive_over_pipelined": ratios,
                        "pipelined_median_ms_by_step": case.stages_ms,
                        "pipelined_us": case.pipelined_us, "naive_us": case.naive_us})
    args.reports.mkdir(parents=True, exist_ok=True)
    raw = args.reports / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    raw.write_text(json.dumps({"meta": meta, "cases": results}, indent=1))
    plot(cases, meta, args.plot)
    logger.info("raw samples: %s; plot: %s", raw, args.plot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--samples-one", type=int, default=5000, help="reads of 1 entity")
    parser.add_argument("--samples-many", type=int, default=1000, help="reads of 100 entities")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports/feature-store-read")
    parser.add_argument("--plot", type=Path,
                        default=REPO_ROOT / "docs/img/feature-store-read-latency.png")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    matplotlib.use("Agg")  # files only, no display needed
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
