"""`python -m services.catalog_etl FILE` (`make catalog FILE=...`): load a catalog file.

The titles go to the catalog of record first (PostgreSQL, MLSD_POSTGRES_*) with their events in
the outbox, one transaction a batch; then the outbox is relayed to the catalog topic. If Kafka
fails after the commit, the titles stay recorded and the records service publishes them later.

Exit code: 0 every row loaded; 1 some rows were bad (each printed as FILE:LINE: problem; the good
rows are loaded); 2 nothing could be loaded (unreadable file, unknown format or columns,
PostgreSQL), or Kafka did not take what was recorded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg

from services.catalog_etl.job import TITLE, LoadReport, load
from services.catalog_etl.rows import FORMATS, CatalogFileError
from services.catalog_etl.titles import BadRow
from services.common.bus.clients import kafka_publisher
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.ports import Publisher, PublishFailed
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.records.outbox import OutboxRelay
from services.common.records.pool import records_pool
from services.common.records.settings import PostgresSettings
from services.common.settings import PlatformSettings
from services.designs.recs.records import CatalogRecords


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.catalog_etl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help=f"a catalog file: {', '.join(sorted(FORMATS))}")
    parser.add_argument("--dry-run", action="store_true", help="validate only, publish nothing")
    parser.add_argument("--source", default="catalog-etl", help="the events' source field")
    args = parser.parse_args(argv)
    path: Path = args.file

    def print_bad(row: BadRow) -> None:
        print(f"{path}:{row.line}: {row.problem}", file=sys.stderr)

    try:
        if not path.is_file():
            raise CatalogFileError(f"{path}: no such file")
        if args.dry_run:
            report = load(path, None, args.source, on_bad=print_bad)
        else:
            report = record_and_publish(path, args.source, print_bad)
    except (CatalogFileError, UnicodeDecodeError, OSError, psycopg.Error) as exc:
        print(f"catalog: {exc}", file=sys.stderr)
        return 2
    except PublishFailed as exc:
        print(f"catalog: recorded, but Kafka did not take the titles yet ({exc}); the records "
              "service publishes them from the outbox when it can", file=sys.stderr)
        return 2
    print(summary(report, args.dry_run))
    return 0 if report.ok else 1


def record_and_publish(path: Path, source: str,
                       on_bad: Callable[[BadRow], None]) -> LoadReport:
    """Into the catalog of record and its outbox, then the outbox relayed to Kafka."""
    pool = records_pool(PostgresSettings(), "catalog-etl")
    try:
        report = load(path, None, source, on_bad=on_bad, records=CatalogRecords(pool))
        publisher = connect(PlatformSettings(service_name="catalog_etl"))
        try:
            OutboxRelay(pool, publisher).drain()
        finally:
            publisher.close()
    finally:
        pool.close()
    return report


def connect(settings: PlatformSettings) -> Publisher:
    ensure_topics(settings.kafka_access(), [
        TopicSpec(TITLE.topic, settings.kafka_topic_partitions, settings.kafka_replication_factor),
        TopicSpec(dlq_topic(TITLE.topic), 1, settings.kafka_replication_factor)])
    return kafka_publisher(settings, "catalog-etl", delivery_timeout_s=30.0, linger_ms=20)


def summary(report: LoadReport, dry_run: bool) -> str:
    done = (f"{report.valid:,} valid titles (dry run: nothing published)" if dry_run
            else f"{report.published:,} titles recorded and published to {TITLE.topic!r}")
    return f"catalog {report.path}: {done}; {len(report.bad):,} bad rows"


if __name__ == "__main__":
    sys.exit(main())
