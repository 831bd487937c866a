"""`python -m services.catalog_etl FILE` (`make catalog FILE=...`): load a catalog file.

Exit code: 0 every row loaded; 1 some rows were bad (each printed as FILE:LINE: problem; the good
rows are loaded); 2 nothing could be loaded (unreadable file, unknown format or columns, Kafka).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.catalog_etl.job import TITLE, LoadReport, load
from services.catalog_etl.rows import FORMATS, CatalogFileError
from services.catalog_etl.titles import BadRow
from services.common.bus.clients import kafka_publisher
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.ports import Publisher, PublishFailed
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.settings import PlatformSettings


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
        publisher = None if args.dry_run else connect(PlatformSettings(service_name="catalog_etl"))
        try:
            report = load(path, publisher, args.source, on_bad=print_bad)
        finally:
            if publisher is not None:
                publisher.close()
    except (CatalogFileError, UnicodeDecodeError, OSError) as exc:
        print(f"catalog: {exc}", file=sys.stderr)
        return 2
    except PublishFailed as exc:
        print(f"catalog: Kafka did not take the titles: {exc}", file=sys.stderr)
        return 2
    print(summary(report, args.dry_run))
    return 0 if report.ok else 1


def connect(settings: PlatformSettings) -> Publisher:
    ensure_topics(settings.kafka_bootstrap_servers, [
        TopicSpec(TITLE.topic, settings.kafka_topic_partitions, settings.kafka_replication_factor),
        TopicSpec(dlq_topic(TITLE.topic), 1, settings.kafka_replication_factor)])
    return kafka_publisher(settings, "catalog-etl", delivery_timeout_s=30.0, linger_ms=20)


def summary(report: LoadReport, dry_run: bool) -> str:
    done = (f"{report.valid:,} valid titles (dry run: nothing published)" if dry_run
            else f"{report.published:,} titles published to {TITLE.topic!r}")
    return f"catalog {report.path}: {done}; {len(report.bad):,} bad rows"


if __name__ == "__main__":
    sys.exit(main())
