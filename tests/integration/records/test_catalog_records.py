"""`make catalog` on real PostgreSQL and Kafka: titles recorded first, published from the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from services.catalog_etl.__main__ import main
from services.common.bus.envelope import decode_event
from services.common.bus.kafka_bus import records_to_end
from services.common.bus.topics import CATALOG
from services.common.records.settings import PostgresSettings
from services.designs.recs.records import CatalogRecords
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration
HEADER = "content_id,title,genres,actors,maturity_rating,release_date,rating,thumbnail_url\n"


def test_the_job_records_good_titles_then_publishes_them_from_the_outbox(
        kafka_server: ServerProcess, postgres_settings: PostgresSettings,
        records: ConnectionPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_KAFKA_BOOTSTRAP_SERVERS", kafka_server.address)
    monkeypatch.setenv("MLSD_POSTGRES_PORT", str(postgres_settings.postgres_port))
    before = {decode_event(r.value).id for r in records_to_end(kafka_server.address, CATALOG)}
    path = tmp_path / "titles.csv"
    path.write_text(HEADER + "rec-1,One,Drama,,PG,2026-01-01,4,\nrec-bad,,,,,,,\n"
                    "rec-2,Two,Comedy|Drama,Ann Lee,,,,\n")

    assert main([str(path)]) == 1  # one bad row; the good ones are loaded

    assert [(t.content_id, t.title) for t in CatalogRecords(records).titles()] == [
        ("rec-1", "One"), ("rec-2", "Two")]
    with records.connection() as conn:
        assert conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone() == (0,)
    published = [decode_event(r.value) for r in records_to_end(kafka_server.address, CATALOG)]
    new = [e for e in published if e.id not in before]
    assert sorted(e.data["content_id"] for e in new) == ["rec-1", "rec-2"]


def test_without_postgres_nothing_is_published_and_the_job_says_why(
        kafka_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLSD_KAFKA_BOOTSTRAP_SERVERS", kafka_server.address)
    monkeypatch.setenv("MLSD_POSTGRES_PORT", "1")  # nothing listens there
    before = len(list(records_to_end(kafka_server.address, CATALOG)))
    path = tmp_path / "titles.csv"
    path.write_text(HEADER + "rec-9,Nine,Drama,,,,,\n")
    assert main([str(path)]) == 2
    assert "catalog: " in capsys.readouterr().err
    assert len(list(records_to_end(kafka_server.address, CATALOG))) == before
