"""The daily fraud report in SQL: decision mix, rule hit rates, and, as labels arrive, each
rule's and each action's precision and recall against the labels.

A transaction counts once, by its first decision (the HTTP and stream paths may both decide
it); its label is the latest one (a chargeback may overturn a cleared transaction). A rule or an
action "flags" a transaction; precision is the share of its labelled flags that were fraud,
recall the share of labelled fraud it flagged. Unlabelled decisions count in the mix and the hit
rates, not in precision or recall: `labelled` says how far labels have arrived.
"""

from __future__ import annotations

import duckdb

from services.common.lake.sql import Table, query

_PREPARE = """
CREATE OR REPLACE TEMP VIEW decided AS
SELECT data->>'transaction_id' AS transaction_id, data->>'action' AS action,
       data->>'risk_level' AS risk_level,
       from_json(data->'rule_hits', '["VARCHAR"]') AS rule_hits,
       epoch_ms(time_ms)::DATE AS day
FROM decisions
QUALIFY row_number() OVER (PARTITION BY data->>'transaction_id'
                           ORDER BY time_ms, "partition", "offset") = 1;
CREATE OR REPLACE TEMP VIEW truth AS
SELECT data->>'transaction_id' AS transaction_id, (data->>'is_fraud')::BOOLEAN AS is_fraud
FROM labels
QUALIFY row_number() OVER (PARTITION BY data->>'transaction_id'
                           ORDER BY time_ms DESC, "partition" DESC, "offset" DESC) = 1;
CREATE OR REPLACE TEMP VIEW judged AS
SELECT d.*, t.is_fraud FROM decided d LEFT JOIN truth t USING (transaction_id);
"""

DECISION_MIX = """
SELECT day, count(*) AS decisions,
       count(*) FILTER (WHERE action = 'approve') AS approve,
       count(*) FILTER (WHERE action = 'review') AS review,
       count(*) FILTER (WHERE action = 'decline') AS decline,
       count(is_fraud) AS labelled,
       count(*) FILTER (WHERE is_fraud) AS fraud
FROM judged GROUP BY day ORDER BY day
"""

RULES = """
WITH totals AS (
    SELECT count(*) AS decisions, count(*) FILTER (WHERE is_fraud) AS fraud FROM judged
), hits AS (
    SELECT unnest(rule_hits) AS rule, is_fraud FROM judged
)
SELECT rule, count(*) AS hits, round(count(*) / any_value(decisions), 4) AS hit_rate,
       count(is_fraud) AS labelled, count(*) FILTER (WHERE is_fraud) AS true_positives,
       round(count(*) FILTER (WHERE is_fraud) / nullif(count(is_fraud), 0), 4) AS precision,
       round(count(*) FILTER (WHERE is_fraud) / nullif(any_value(fraud), 0), 4) AS recall
FROM hits, totals GROUP BY rule ORDER BY hits DESC, rule
"""

ACTIONS = """
WITH totals AS (SELECT count(*) FILTER (WHERE is_fraud) AS fraud FROM judged)
SELECT action, count(*) AS decisions, count(is_fraud) AS labelled,
       count(*) FILTER (WHERE is_fraud) AS fraud,
       round(count(*) FILTER (WHERE is_fraud) / nullif(count(is_fraud), 0), 4) AS precision,
       round(count(*) FILTER (WHERE is_fraud) / nullif(any_value(totals.fraud), 0), 4) AS recall
FROM judged, totals GROUP BY action ORDER BY action
"""


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_PREPARE)


def decision_mix(con: duckdb.DuckDBPyConnection) -> Table:
    prepare(con)
    return query(con, DECISION_MIX)


def rule_quality(con: duckdb.DuckDBPyConnection) -> Table:
    prepare(con)
    return query(con, RULES)


def action_quality(con: duckdb.DuckDBPyConnection) -> Table:
    prepare(con)
    return query(con, ACTIONS)
