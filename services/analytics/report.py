"""Writes the analytics reports: markdown tables, a JSON copy of every table, and plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt

from services.analytics import ab, engagement, fraud
from services.common.lake.sql import Table


def markdown_table(table: Table) -> str:
    if not table.rows:
        return "_(no rows yet)_\n"
    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1_000 else f"{value:.4g}"
    return str(value)


def _section(title: str, table: Table, note: str = "") -> str:
    return f"## {title}\n\n{note + chr(10) + chr(10) if note else ''}{markdown_table(table)}\n"


def write_reports(con: duckdb.DuckDBPyConnection, out: Path, lake_root: Path) -> list[Path]:
    """Every report under `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"_From the lake at `{lake_root}`, {stamp} (DuckDB {duckdb.__version__})._\n\n"
    tables: dict[str, Table] = {}
    written: list[Path] = []

    ab_md = "# A/B results from the lake\n\n" + header + (
        "Recomputed in SQL from exposures, impressions and clicks; the same counts as the "
        "online counters (services/analytics/ab.py says what each means).\n\n")
    for experiment in ab.experiments(con):
        table = ab.ab_table(con, experiment)
        tables[f"ab:{experiment}"] = table
        ab_md += _section(f"Experiment `{experiment}`", table)
    written.append(_write(out / "ab.md", ab_md))
    written += _bar_plot(out / "ab.png", "conversion by variation",
                         {name: t for name, t in tables.items() if name.startswith("ab:")},
                         "variation", "conversion")

    mix, rules, actions = (fraud.decision_mix(con), fraud.rule_quality(con),
                           fraud.action_quality(con))
    tables.update(fraud_mix=mix, fraud_rules=rules, fraud_actions=actions)
    written.append(_write(out / "fraud.md", "# Fraud report\n\n" + header
                          + _section("Decisions per day", mix)
                          + _section("Rules: hit rate, precision and recall", rules,
                                     "Precision and recall over labelled decisions only.")
                          + _section("Actions: precision and recall", actions)))
    written += _stacked_plot(out / "fraud_decisions.png", mix, "day",
                             ["approve", "review", "decline"], "decisions per day")

    daily, positions = engagement.daily_engagement(con), engagement.clicks_by_position(con)
    tables.update(engagement_daily=daily, engagement_positions=positions)
    written.append(_write(out / "engagement.md", "# Engagement\n\n" + header
                          + _section("Per day", daily)
                          + _section("Clicks by position in the list", positions)))
    written += _stacked_plot(out / "engagement.png", daily, "day", ["watches"],
                             "watches per day")

    summary, genres, top = (engagement.catalog_summary(con), engagement.genres(con),
                            engagement.top_titles(con))
    tables.update(catalog_summary=summary, catalog_genres=genres, catalog_top=top)
    written.append(_write(out / "catalog.md", "# Catalog\n\n" + header
                          + _section("Coverage", summary) + _section("Genres", genres)
                          + _section("Most watched titles", top)))

    written.append(_write(out / "tables.json", json.dumps(
        {name: t.records() for name, t in tables.items()}, indent=1, default=str)))
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _stacked_plot(path: Path, table: Table, x: str, series: Sequence[str],
                  title: str) -> list[Path]:
    if not table.rows:
        return []
    rows = table.records()
    labels = [str(r[x]) for r in rows]
    fig, axis = plt.subplots(figsize=(8, 4))
    bottom = [0.0] * len(rows)
    for name in series:
        values = [float(r[name] or 0) for r in rows]
        axis.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set_title(title)
    axis.legend()
    axis.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def _bar_plot(path: Path, title: str, tables: dict[str, Table], x: str,
              y: str) -> list[Path]:
    bars = [(f"{name.removeprefix('ab:')}/{r[x]}", float(r[y] or 0))
            for name, t in tables.items() for r in t.records()]
    if not bars:
        return []
    fig, axis = plt.subplots(figsize=(8, 4))
    axis.bar([b[0] for b in bars], [b[1] for b in bars])
    axis.set_title(title)
    axis.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
