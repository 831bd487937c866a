"""The A/B results recomputed in SQL from the exposures, impressions and clicks in the lake.

Each count means what the online counters mean (services/designs/experiments/counts.py), so the
two must agree; tests/integration/lake/test_lake_analytics.py holds them equal on the same events:
- exposed: distinct units exposed, each in the variation of its first exposure;
- converted: of those, units with a click (any click of that user) at or after that exposure;
- impressions: distinct request ids whose (first) impression was served under the variation;
- clicks: distinct click events on those requests;
- empty: of those requests, the ones whose list had no title.
The latency guardrail's p99 is not recomputed here (VariationCounts.latency stays None).
"""

from __future__ import annotations

import duckdb

from services.common.lake.sql import Table
from services.designs.experiments.tallies import VariationCounts

AB_COUNTS = """
WITH first_exposure AS (
    SELECT data->>'unit_id' AS unit, arg_min(data->>'variation', time_ms) AS variation,
           min(time_ms) AS first_ms
    FROM exposures WHERE data->>'experiment' = $experiment
    GROUP BY 1
), last_click AS (
    SELECT data->>'user_id' AS unit, max(time_ms) AS last_ms FROM clicks GROUP BY 1
), shown AS (
    SELECT data->>'request_id' AS request_id, data->>'experiment' AS experiment,
           data->>'variation' AS variation,
           json_array_length(data->'content_ids') = 0 AS empty
    FROM impressions
    QUALIFY row_number() OVER (PARTITION BY data->>'request_id'
                               ORDER BY time_ms, "partition", "offset") = 1
)
SELECT variation, 'exposed' AS kind, count(*) AS n FROM first_exposure GROUP BY 1
UNION ALL
SELECT f.variation, 'converted', count(*)
FROM first_exposure f JOIN last_click c USING (unit) WHERE c.last_ms >= f.first_ms GROUP BY 1
UNION ALL
SELECT variation, 'impressions', count(*) FROM shown WHERE experiment = $experiment GROUP BY 1
UNION ALL
SELECT variation, 'empty', count(*) FROM shown WHERE experiment = $experiment AND empty
GROUP BY 1
UNION ALL
SELECT s.variation, 'clicks', count(DISTINCT c.event_id)
FROM clicks c JOIN shown s ON c.data->>'request_id' = s.request_id
WHERE s.experiment = $experiment GROUP BY 1
"""

_FIELDS = {"exposed": "exposed", "converted": "converted", "impressions": "impressions",
           "clicks": "clicks", "empty": "empty"}


def experiments(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every experiment anyone was exposed to, by name."""
    rows = con.execute("SELECT DISTINCT data->>'experiment' FROM exposures ORDER BY 1").fetchall()
    return [str(row[0]) for row in rows]


def ab_counts(con: duckdb.DuckDBPyConnection, experiment: str) -> dict[str, VariationCounts]:
    """{variation: counts}, variations sorted by name: what experiment_counts() answers online."""
    found: dict[str, dict[str, int]] = {}
    for variation, kind, n in con.execute(AB_COUNTS, {"experiment": experiment}).fetchall():
        found.setdefault(str(variation), dict.fromkeys(_FIELDS.values(), 0))[_FIELDS[kind]] = n
    return {v: VariationCounts(found[v]["exposed"], found[v]["converted"],
                               found[v]["impressions"], found[v]["clicks"], found[v]["empty"])
            for v in sorted(found)}


def ab_table(con: duckdb.DuckDBPyConnection, experiment: str) -> Table:
    """The counts with their rates, one row per variation."""
    return Table(
        ["variation", "exposed", "converted", "conversion", "impressions", "clicks", "ctr"],
        [(v, c.exposed, c.converted, _ratio(c.converted, c.exposed), c.impressions, c.clicks,
          _ratio(c.clicks, c.impressions)) for v, c in ab_counts(con, experiment).items()])


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
