"""Engagement and catalog reports in SQL: who watches what, how lists are clicked, what the
catalog holds and how much of it is watched."""

from __future__ import annotations

import duckdb

from services.common.lake.sql import Table, query

DAILY = """
WITH w AS (
    SELECT epoch_ms(time_ms)::DATE AS day, count(DISTINCT data->>'user_id') AS active_users,
           count(*) AS watches,
           round(sum((data->>'watch_seconds')::BIGINT) / 3600, 1) AS watch_hours,
           round(avg((data->>'completed')::BOOLEAN::INT), 4) AS completion_rate
    FROM watches WHERE type = 'watch' GROUP BY 1
), i AS (
    SELECT epoch_ms(time_ms)::DATE AS day, count(*) AS impressions FROM impressions GROUP BY 1
), c AS (
    SELECT epoch_ms(time_ms)::DATE AS day, count(*) AS clicks FROM clicks GROUP BY 1
)
SELECT day, coalesce(active_users, 0) AS active_users, coalesce(watches, 0) AS watches,
       coalesce(watch_hours, 0) AS watch_hours, completion_rate,
       coalesce(impressions, 0) AS impressions, coalesce(clicks, 0) AS clicks,
       round(clicks / nullif(impressions, 0), 4) AS ctr
FROM w FULL JOIN i USING (day) FULL JOIN c USING (day) ORDER BY day
"""

CLICKS_BY_POSITION = """
SELECT (data->>'position')::INT AS position, count(*) AS clicks,
       round(count(*) / sum(count(*)) OVER (), 4) AS share
FROM clicks GROUP BY 1 ORDER BY 1
"""

_CATALOG = """
CREATE OR REPLACE TEMP VIEW catalog_now AS
SELECT data->>'content_id' AS content_id, data->>'title' AS title,
       from_json(data->'genres', '["VARCHAR"]') AS genres,
       data->>'maturity_rating' AS maturity_rating
FROM titles
QUALIFY row_number() OVER (PARTITION BY data->>'content_id'
                           ORDER BY time_ms DESC, "partition" DESC, "offset" DESC) = 1;
CREATE OR REPLACE TEMP VIEW watched AS
SELECT data->>'content_id' AS content_id, count(*) AS watches,
       count(DISTINCT data->>'user_id') AS viewers
FROM watches WHERE type = 'watch' GROUP BY 1;
"""

CATALOG_SUMMARY = """
SELECT (SELECT count(*) FROM catalog_now) AS titles,
       (SELECT count(*) FROM catalog_now JOIN watched USING (content_id)) AS titles_watched,
       (SELECT count(*) FROM watched ANTI JOIN catalog_now USING (content_id))
           AS watched_titles_not_in_catalog
"""

GENRES = """
SELECT genre, count(DISTINCT c.content_id) AS titles, coalesce(sum(w.watches), 0) AS watches
FROM (SELECT content_id, unnest(genres) AS genre FROM catalog_now) c
LEFT JOIN watched w USING (content_id)
GROUP BY genre ORDER BY watches DESC, genre
"""

TOP_TITLES = """
SELECT w.content_id, c.title, w.watches, w.viewers
FROM watched w LEFT JOIN catalog_now c USING (content_id)
ORDER BY w.watches DESC, w.content_id LIMIT $limit
"""


def daily_engagement(con: duckdb.DuckDBPyConnection) -> Table:
    return query(con, DAILY)


def clicks_by_position(con: duckdb.DuckDBPyConnection) -> Table:
    return query(con, CLICKS_BY_POSITION)


def catalog_summary(con: duckdb.DuckDBPyConnection) -> Table:
    con.execute(_CATALOG)
    return query(con, CATALOG_SUMMARY)


def genres(con: duckdb.DuckDBPyConnection) -> Table:
    con.execute(_CATALOG)
    return query(con, GENRES)


def top_titles(con: duckdb.DuckDBPyConnection, limit: int = 10) -> Table:
    con.execute(_CATALOG)
    return query(con, TOP_TITLES, {"limit": limit})
