"""Connection pools from settings (jobs: migrated, connected now; services: later); the probe."""

from __future__ import annotations

import logging

import psycopg
from psycopg_pool import ConnectionPool

from services.common.records.migrate import migrate
from services.common.records.settings import PostgresSettings

logger = logging.getLogger(__name__)


def records_pool(settings: PostgresSettings, application: str) -> ConnectionPool:
    """For jobs and the records service, which cannot work without the record: the migrations
    applied (idempotent, serialised by an advisory lock), then a pool connected now; fails fast
    if PostgreSQL is not there."""
    with psycopg.connect(settings.conninfo(application), autocommit=True) as conn:
        applied = migrate(conn)
    if applied:
        logger.info("migrations applied", extra={"versions": applied})
    pool = unopened_pool(settings, application)
    pool.open(wait=True, timeout=settings.postgres_connect_timeout_s * 5)
    logger.info("postgres pool open", extra={"address": settings.address,
                                             "application": application})
    return pool


def unopened_pool(settings: PostgresSettings, application: str) -> ConnectionPool:
    """A pool of `postgres_pool_min`..`_max` connections named `application` in pg_stat_activity,
    not opened yet. A service whose requests mostly do without the record (fraud's GET of an
    old decision, experiments' admin writes) opens it in its lifespan with open(wait=False): it
    connects in the background, the service starts and answers while PostgreSQL is away, and a
    call in the meantime fails after `postgres_connect_timeout_s` (the service answers 503)."""
    return ConnectionPool(
        settings.conninfo(application), min_size=settings.postgres_pool_min,
        max_size=settings.postgres_pool_max, timeout=settings.postgres_connect_timeout_s,
        name=application, open=False,
        # a connection that died while idle (a restarted server) is found and replaced
        check=ConnectionPool.check_connection)


def postgres_ready(settings: PostgresSettings, timeout_s: float = 1.0) -> bool:
    """True when the database answers a query (not just a port): for /readyz and `make run`."""
    try:
        with psycopg.connect(settings.conninfo("probe"), connect_timeout=max(1, round(timeout_s)),
                             autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False
