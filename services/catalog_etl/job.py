"""The job: read, validate, then per batch of good rows either record them (PostgreSQL, with
their events in the outbox, one transaction a batch) or publish them (acks=all)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from services.catalog_etl.rows import count_rows, read_rows
from services.catalog_etl.titles import BadRow, GoodRow, validate
from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage, Publisher, publish_or_raise
from services.designs.payloads import EVENT_TYPES, TitleData
from services.designs.recs.records import CatalogRecords

TITLE = EVENT_TYPES["title"]
BATCH = 1_000  # messages per publish: each batch waits for every acknowledgement


@dataclass
class LoadReport:
    path: Path
    valid: int = 0
    published: int = 0  # published to Kafka by the job, or committed to the outbox with `records`
    bad: list[BadRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad


def title_message(row: GoodRow, run_id: str, source: str, at: datetime) -> OutboundMessage:
    """One title event, keyed by content id. Every row of a run shares the run's time: that is
    when this metadata became the catalog's, and a later run's replaces it."""
    data = row.title.model_dump(mode="json", exclude_none=True)
    event = Event.new(TITLE.name, source, data, time=at, id=f"catalog-{run_id}-{row.line}")
    return OutboundMessage.of(TITLE.topic, row.title.content_id, event)


def load(path: Path, publisher: Publisher | None, source: str = "catalog-etl",
         progress: bool | None = None,
         on_bad: Callable[[BadRow], None] = lambda _: None,
         records: CatalogRecords | None = None) -> LoadReport:
    """Publish every valid row of `path` (none if `publisher` is None: a dry run).

    With `records`, the catalog of record: each batch of titles is written to PostgreSQL with
    its events in the outbox, in one transaction, and `publisher` is not used; the outbox relay
    publishes what committed (the caller drains it; the records service relays what is left).

    Bad rows are reported through `on_bad` as they are met and collected in the report; the
    good ones are published whatever the bad ones are. A publish failure raises PublishFailed
    (what was acknowledged before stays published; a rerun publishes it again, harmlessly).
    """
    report = LoadReport(path)
    run_id, at = uuid.uuid4().hex[:12], datetime.now(UTC)
    batch: list[OutboundMessage] = []
    titles: list[TitleData] = []

    def send() -> None:
        if records is not None:
            if batch:
                records.save(titles, batch, source, at)
        elif publisher is not None and batch:
            publish_or_raise(publisher, batch)
        report.published += len(batch) if (publisher or records) is not None else 0
        batch.clear()
        titles.clear()

    total = count_rows(path)
    with tqdm(total=total, desc=f"catalog {path.name}", unit="row", unit_scale=True,
              disable=None if progress is None else not progress) as bar:
        for row in validate(read_rows(path)):
            bar.update(1)
            if isinstance(row, BadRow):
                report.bad.append(row)
                on_bad(row)
                continue
            report.valid += 1
            batch.append(title_message(row, run_id, source, at))
            titles.append(row.title)
            if len(batch) >= BATCH:
                send()
        send()
    return report
