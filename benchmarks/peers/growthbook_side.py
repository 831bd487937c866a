"""GrowthBook's side of the assignment comparison; runs in the peers' virtualenv, not ours.

    .cache/peers-venv/feast/bin/python benchmarks/peers/growthbook_side.py SPEC.json OUT_DIR

SPEC.json (written by benchmarks/peers/run.py) holds the experiments, in GrowthBook's own
fields (key, variations, weights, coverage, seed, hashVersion, namespace), and the ids. For each
experiment this runs the GrowthBook Python SDK on every id the way a server uses it, one
instance with the user's attributes set per request (`set_attributes`, then `run`), and writes

    OUT_DIR/<key>.npy    the variation index per id, -1 where the SDK put the id outside
    OUT_DIR/result.json  seconds per experiment over all ids, the SDK's version

for the driver to compare with our assignment id by id. It imports nothing from the project.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from growthbook import Experiment, GrowthBook


def experiment_of(spec: dict[str, Any]) -> Experiment[int]:
    namespace = spec.get("namespace")
    return Experiment(key=spec["key"], variations=list(range(len(spec["weights"]))),
                      weights=spec["weights"], coverage=spec["coverage"], seed=spec["seed"],
                      hashVersion=spec["hashVersion"],
                      namespace=None if namespace is None else tuple(namespace))


def assign_all(spec: dict[str, Any], ids: list[str]) -> tuple[np.ndarray, float]:
    """The variation index per id (-1: not in) and the seconds the SDK took for all of them."""
    experiment = experiment_of(spec)
    gb = GrowthBook(attributes={})
    out = np.empty(len(ids), dtype=np.int8)
    gc.collect()
    start = time.perf_counter()
    for i, unit in enumerate(ids):
        gb.set_attributes({"id": unit})
        result = gb.run(experiment)
        out[i] = result.variationId if result.inExperiment else -1
    return out, time.perf_counter() - start


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    ids: list[str] = spec["ids"]
    seconds = {}
    for experiment in spec["experiments"]:
        variations, elapsed = assign_all(experiment, ids)
        np.save(out_dir / f"{experiment['key']}.npy", variations)
        seconds[experiment["key"]] = elapsed
    (out_dir / "result.json").write_text(json.dumps({
        "seconds": seconds, "ids": len(ids),
        "versions": {"growthbook": importlib.metadata.version("growthbook")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
