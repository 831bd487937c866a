"""GrowthBook's side of the assignment comparison; runs in the peers' virtualenv, not ours.

    .cache/peers-venv/feast/bin/python benchmarks/peers/growthbook_side.py IDS.json SPEC.json OUT

IDS.json is the list of ids; SPEC.json one experiment in GrowthBook's own fields (key,
variations' weights, coverage, seed, hashVersion, namespace), both written by
benchmarks/peers/run.py, which calls this once per experiment, taking turns with our side. It
runs the GrowthBook Python SDK on every id the way a server uses it, one instance with the
user's attributes set per request (`set_attributes`, then `run`), and writes

    OUT.npy     the variation index per id, -1 where the SDK put the id outside
    OUT.json    the seconds each block of BLOCK ids took, the SDK's version

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


BLOCK = 100_000  # ids per timed block: the driver takes the median block, robust to bursts


def assign_all(spec: dict[str, Any], ids: list[str]) -> tuple[np.ndarray, list[float]]:
    """The variation index per id (-1: not in) and the seconds each block of ids took."""
    experiment = experiment_of(spec)
    gb = GrowthBook(attributes={})
    out = np.empty(len(ids), dtype=np.int8)
    blocks = []
    gc.collect()
    for first in range(0, len(ids), BLOCK):
        start = time.perf_counter()
        for i in range(first, min(first + BLOCK, len(ids))):
            gb.set_attributes({"id": ids[i]})
            result = gb.run(experiment)
            out[i] = result.variationId if result.inExperiment else -1
        blocks.append(time.perf_counter() - start)
    return out, blocks


def main() -> int:
    ids: list[str] = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    spec = json.loads(Path(sys.argv[2]).read_text("utf-8"))
    out = Path(sys.argv[3])
    variations, blocks = assign_all(spec, ids)
    np.save(out.with_suffix(".npy"), variations)
    out.with_suffix(".json").write_text(json.dumps({
        "block_seconds": blocks, "block": BLOCK, "ids": len(ids),
        "versions": {"growthbook": importlib.metadata.version("growthbook")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
