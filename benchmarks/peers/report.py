"""The side-by-side report from its machine-readable result: markdown tables and one plot a family.

    .venv/bin/python benchmarks/peers/report.py [RESULT.json] [--out reports/peers]

run.py calls this after measuring; run alone it redraws the report from a committed result, and
with --docs it also rewrites docs/benchmarks.md's tables (between its markers), its plots and the
README's comparison line: a unit test checks the page and the line against the committed result,
so they can only show measured numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULT = REPO_ROOT / "benchmarks" / "results" / "peers.json"
BEGIN, END = "<!-- peers:begin (benchmarks/peers/report.py) -->", "<!-- peers:end -->"

Result = Mapping[str, Any]


def ms(us: float | None) -> str:
    if us is None:
        return "n/a"
    return f"{us / 1000:.3f}" if us < 10_000 else f"{us / 1000:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.1f}x"


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def feature_rows(result: Result) -> list[str]:
    lines = ["| case | path | ours p50 / p99 ms | Feast p50 / p99 ms | floor p50 / p99 ms | "
             "reads/s (one client) ours / Feast | Feast / ours (p50) | ours / floor (p50) |",
             "|---|---|---|---|---|---|---|---|"]
    for case in result["features"]["cases"]:
        for path, (ours, feast, floor) in case["paths"].items():
            o, f, fl = (case["ways"][name] for name in (ours, feast, floor))
            lines.append(
                f"| {case['name']} | {path} | {ms(o['p50_us'])} / {ms(o['p99_us'])} | "
                f"{ms(f['p50_us'])} / {ms(f['p99_us'])} | {ms(fl['p50_us'])} / "
                f"{ms(fl['p99_us'])} | {rate(o['per_s'])} / {rate(f['per_s'])} | "
                f"{ratio(f['p50_us'], o['p50_us'])} | {ratio(o['p50_us'], fl['p50_us'])} |")
    return lines


def serving_latency_rows(result: Result) -> list[str]:
    serving = result["model_serving"]
    servers: list[str] = serving["servers"]
    head = " | ".join(f"{s} p50 / p99 ms" for s in servers)
    lines = [f"| model, rows | {head} | ONNX Runtime call (floor) p50 ms | empty endpoint "
             f"(floor) p50 ms | {' | '.join(f'{s} / ours (p50)' for s in servers[1:])} | "
             "ours / ORT call (p50) |",
             "|---|" + "---|" * (len(servers) + 2 + len(servers) - 1 + 1)]
    for case in serving["latency"]:
        ways = case["ways"]
        ours = ways[servers[0]]
        cells = " | ".join(f"{ms(ways[s]['p50_us'])} / {ms(ways[s]['p99_us'])}" for s in servers)
        ratios = " | ".join(ratio(ways[s]["p50_us"], ours["p50_us"]) for s in servers[1:])
        ort_call, empty = ways["floor: ONNX Runtime call"], ways["floor: empty FastAPI endpoint"]
        lines.append(f"| {case['name']} | {cells} | {ms(ort_call['p50_us'])} | "
                     f"{ms(empty['p50_us'])} | {ratios} | "
                     f"{ratio(ours['p50_us'], ort_call['p50_us'])} |")
    return lines


def serving_load_rows(result: Result) -> list[str]:
    serving = result["model_serving"]
    lines = ["| model, rows | server | p99 ms at fixed rate | req/s with p99 within budget "
             "(highest step passed) | vs ours |", "|---|---|---|---|---|"]
    for case in serving["load"]:
        ours = case["servers"][serving["servers"][0]]["max_rate_within_budget"]
        for server, load in case["servers"].items():
            fixed = load["fixed"]
            errors = f" ({fixed['errors']} errors)" if fixed["errors"] else ""
            lines.append(
                f"| {case['name']} ({case['fixed_rate']:g} req/s; budget p99 "
                f"{case['budget_ms']:g} ms) | {server} | {ms(fixed['p99_us'])}{errors} | "
                f"{rate(load['max_rate_within_budget'])} | "
                f"{ratio(load['max_rate_within_budget'], ours) if ours else 'n/a'} |")
    return lines


def assignment_rows(result: Result) -> list[str]:
    assignment = result["assignment"]
    lines = ["| experiment | ids | mismatches | ours ns/assignment | GrowthBook SDK ns/assignment"
             " | hash alone (floor) ns | GrowthBook / ours | ours / floor |",
             "|---|---|---|---|---|---|---|---|"]
    for case in assignment["experiments"]:
        lines.append(
            f"| {case['name']} | {case['ids']:,} | {case['mismatches']} | {case['ours_ns']:,.0f}"
            f" | {case['growthbook_ns']:,.0f} | {case['floor_ns']:,.0f} | "
            f"{ratio(case['growthbook_ns'], case['ours_ns'])} | "
            f"{ratio(case['ours_ns'], case['floor_ns'])} |")
    return lines


def meta_lines(result: Result) -> list[str]:
    machine = result["machine"]
    versions = result["versions"]
    load = result["load_avg_1m"]
    return [
        f"Measured {result['date']} on {machine['cpu']} ({machine['cpus']} CPUs, "
        f"{machine['platform']}, Python {machine['python']}); 1-minute load average "
        + ", ".join(f"{value:.2f} {when}" for when, value in load.items()) + ". Samples: "
        + ", ".join(f"{k} {v:,}" for k, v in result["samples"].items()) + ".",
        "",
        "Versions: " + "; ".join(
            f"{side}: " + ", ".join(f"{name} {version}" for name, version in sorted(pins.items()))
            for side, pins in versions.items()) + ".",
    ]


def tables(result: Result) -> str:
    """The report's tables, the same text in summary.md and in docs/benchmarks.md."""
    sections = [
        ("Feature reads: Feast vs our store (5 views x 10 features)", feature_rows(result)),
        ("Model serving: MLServer vs our model server, one client, JSON tensors",
         serving_latency_rows(result)),
        ("Model serving at fixed rates (open loop, evenly spaced arrivals)",
         serving_load_rows(result)),
        ("A/B assignment: GrowthBook Python SDK vs ours", assignment_rows(result)),
    ]
    parts = meta_lines(result)
    for title, rows in sections:
        parts += ["", f"**{title}**", "", *rows]
    return "\n".join(parts) + "\n"


def headline(result: Result) -> str:
    """The README's comparison line, from the same result (a unit test keeps them equal)."""
    one = result["features"]["cases"][0]["ways"]
    ours_read = one["ours: RedisFeatureStore.read (in process)"]["p50_us"]
    feast_read = one["Feast: get_online_features (in process)"]["p50_us"]
    feast_http = one["Feast: feature server (HTTP)"]["p50_us"]
    ours_http = one["ours: service path (HTTP)"]["p50_us"]
    serving = next(c for c in result["model_serving"]["latency"] if c["rows"] == 1
                   and c["model"] == "fraud")["ways"]
    servers = result["model_serving"]["servers"]
    ours_serve = serving[servers[0]]["p50_us"]
    experiments = result["assignment"]["experiments"]
    ids = experiments[0]["ids"]
    mismatches = sum(c["mismatches"] + c["non_ascii_mismatches"] for c in experiments)
    speedup = [c["growthbook_ns"] / c["ours_ns"] for c in experiments]
    return (
        f"Beside the alternatives, same machine and run (`make bench-peers`, "
        f"[docs/benchmarks.md](docs/benchmarks.md), {result['date'][:10]}), at p50: Feast's SDK "
        f"takes {ratio(feast_read, ours_read)} our store's time to read 50 features of one "
        f"entity in process ({ratio(feast_http, ours_http)} over HTTP); MLServer takes "
        f"{ratio(serving[servers[1]]['p50_us'], ours_serve)} our model server's time for a "
        f"1-row fraud request with its scikit-learn runtime and "
        f"{ratio(serving[servers[2]]['p50_us'], ours_serve)} running the same ONNX graph; "
        f"GrowthBook's Python SDK puts {ids:,} ids (and {experiments[0]['non_ascii_ids']:,} "
        f"non-ASCII ones) in the same variations as ours in {len(experiments)} experiments "
        f"({mismatches} mismatches), taking {min(speedup):.1f}-{max(speedup):.1f}x our time "
        f"per assignment.{peer_wins(result)}")


def peer_wins(result: Result) -> str:
    """Where a peer held a higher rate than ours within the p99 budget, as a sentence."""
    serving = result["model_serving"]
    ours = serving["servers"][0]
    wins = []
    for case in serving["load"]:
        ours_rate = case["servers"][ours]["max_rate_within_budget"]
        for server, load in case["servers"].items():
            rate_ = load["max_rate_within_budget"]
            if server != ours and rate_ is not None and (ours_rate is None or rate_ > ours_rate):
                wins.append(f"{server.removeprefix('MLServer: ')} held {rate_:g} req/s of "
                            f"{case['name'].replace(', ', ' ')} requests within the "
                            f"{case['budget_ms']:g} ms p99 budget, ours {ours_rate or 0:g}")
    if not wins:
        return ""
    return f" Where a peer won: MLServer's {'; '.join(wins)} (docs/benchmarks.md says why)."


def headline_paragraph(result: Result) -> str:
    """The headline as the README wraps its prose."""
    return textwrap.fill(headline(result), width=99, break_long_words=False,
                         break_on_hyphens=False)


def summary(result: Result) -> str:
    notes = [f"- {note}" for note in result.get("notes", [])]
    return "\n".join(["# Side by side: Feast, MLServer, GrowthBook (make bench-peers)", "",
                      tables(result), "Notes:", "", *notes, "",
                      "Plots: features.png, model-serving.png, assignment.png beside this file.",
                      ""])


def plot(result: Result, out: Path) -> list[Path]:
    import matplotlib  # noqa: PLC0415  (only the plots need it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from matplotlib.ticker import NullFormatter  # noqa: PLC0415

    paths = []

    def bars(axis: Any, labels: Sequence[str], values: Sequence[float], title: str,
             unit: str) -> None:
        colours = ["tab:green" if "ours" in label else "tab:grey" if "floor" in label
                   else "tab:orange" for label in labels]
        axis.barh(range(len(values)), values, color=colours)
        axis.set_yticks(range(len(values)), labels, fontsize=8)
        axis.invert_yaxis()
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # labelled decades only
        axis.set_xlabel(unit)
        axis.set_title(title, fontsize=9)
        for i, value in enumerate(values):
            axis.text(value, i, f" {value:,.3g}", va="center", fontsize=7)

    cases = result["features"]["cases"]
    figure, axes = plt.subplots(1, len(cases), figsize=(6.5 * len(cases), 4))
    for axis, case in zip(axes, cases, strict=True):
        names = list(case["ways"])
        bars(axis, names, [case["ways"][n]["p50_us"] / 1000 for n in names],
             f"feature read, {case['name']}: p50", "ms (log)")
    paths.append(_save(figure, out / "features.png"))

    latency = result["model_serving"]["latency"]
    columns = 2
    figure, axes = plt.subplots((len(latency) + 1) // columns, columns,
                                figsize=(6.5 * columns, 3.2 * ((len(latency) + 1) // columns)))
    for axis, case in zip(np.ravel(axes), latency, strict=False):
        names = list(case["ways"])
        bars(axis, names, [case["ways"][n]["p50_us"] / 1000 for n in names],
             f"{case['name']}: p50", "ms (log)")
    paths.append(_save(figure, out / "model-serving.png"))

    experiments = result["assignment"]["experiments"]
    figure, axes = plt.subplots(1, len(experiments), figsize=(4.5 * len(experiments), 3))
    for axis, case in zip(axes, experiments, strict=True):
        bars(axis, ["ours: assign()", "GrowthBook SDK: run()", "floor: hash alone"],
             [case["ours_ns"], case["growthbook_ns"], case["floor_ns"]],
             f"{case['name']}\n{case['mismatches']} mismatches in {case['ids']:,} ids",
             "ns per assignment (log)")
    paths.append(_save(figure, out / "assignment.png"))
    return paths


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def write(result: Result, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.md"
    path.write_text(summary(result), encoding="utf-8")
    plot(result, out)
    return path


HEADLINE_START = "Beside the alternatives, same machine and run"


def update_docs(result: Result, root: Path = REPO_ROOT) -> None:
    """docs/benchmarks.md's tables, its plots (docs/img/peers-*.png) and the README's line,
    from `result`: the committed page shows the committed result."""
    page = root / "docs" / "benchmarks.md"
    text = page.read_text("utf-8")
    begin, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    page.write_text(f"{text[:begin]}\n\n{tables(result)}\n{text[end:]}", encoding="utf-8")
    readme = root / "README.md"
    lines = readme.read_text("utf-8").split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(HEADLINE_START))
    # The line is one paragraph: replace it up to the blank line that ends it.
    stop = next(i for i in range(at, len(lines)) if not lines[i].strip())
    lines[at:stop] = headline_paragraph(result).split("\n")
    readme.write_text("\n".join(lines), encoding="utf-8")
    with tempfile.TemporaryDirectory() as scratch:
        for path in plot(result, Path(scratch)):
            shutil.copy(path, root / "docs" / "img" / f"peers-{path.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", nargs="?", type=Path, default=RESULT)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "peers")
    parser.add_argument("--docs", action="store_true",
                        help="also rewrite docs/benchmarks.md's tables, its plots and the "
                             "README's comparison line from the result")
    args = parser.parse_args()
    result = json.loads(args.result.read_text("utf-8"))
    write(result, args.out)
    if args.docs:
        update_docs(result)


if __name__ == "__main__":
    main()
