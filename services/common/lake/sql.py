"""The lake as SQL: one DuckDB view per topic over its live Parquet files, each event once.

DuckDB runs in this process and reads the files where they are; the same files and the same
SQL would serve Trino or Spark once one machine is not enough. A view keeps each event id once
(a producer that retried may have published an event twice, at two offsets), and exposes `data`
as JSON, read with `data->>'field'`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from services.common.bus import topics
from services.common.lake.files import live_files

VIEWS = {
    "watches": topics.WATCH_EVENTS,
    "impressions": topics.REC_IMPRESSIONS,
    "clicks": topics.REC_CLICKS,
    "exposures": topics.EXPOSURES,
    "transactions": topics.TRANSACTIONS,
    "decisions": topics.FRAUD_DECISIONS,
    "shadow_decisions": topics.FRAUD_DECISIONS_SHADOW,
    "labels": topics.FRAUD_LABELS,
    "titles": topics.CATALOG,
}

_EMPTY = ("SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS type, NULL::VARCHAR AS source, "
          "NULL::BIGINT AS time_ms, NULL::VARCHAR AS key, NULL::INTEGER AS partition, "
          "NULL::BIGINT AS offset, NULL::VARCHAR AS data WHERE false")


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def open_lake(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per topic (`watches`, `decisions`, ...) over `root`."""
    con = duckdb.connect()
    for view, topic in VIEWS.items():
        files = live_files(root, topic)
        source = (f"SELECT * FROM read_parquet([{', '.join(map(_quoted, files))}])" if files
                  else _EMPTY)
        con.execute(f"""
            CREATE VIEW {view} AS
            SELECT event_id, type, source, time_ms, epoch_ms(time_ms) AS time, key,
                   "partition", "offset", data::JSON AS data
            FROM ({source})
            QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY "partition", "offset") = 1
        """)
    return con


@dataclass(frozen=True)
class Table:
    """A query's answer as a report shows it."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def query(con: duckdb.DuckDBPyConnection, sql: str,
          params: list[Any] | dict[str, Any] | None = None) -> Table:
    cursor = con.execute(sql, params or [])
    columns = [d[0] for d in cursor.description or []]
    return Table(columns, [tuple(row) for row in cursor.fetchall()])
