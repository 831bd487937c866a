"""The catalog ETL job on files: each format parsed, bad rows named by line, good rows published."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.catalog_etl.__main__ import main
from services.catalog_etl.job import load
from services.catalog_etl.rows import CatalogFileError, read_rows
from services.catalog_etl.titles import BadRow, GoodRow, validate
from services.common.bus.envelope import decode_event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.topics import CATALOG
from services.designs.payloads import payload_of

HEADER = "content_id,title,genres,actors,maturity_rating,release_date,rating,thumbnail_url\n"


def parsed(path: Path) -> list[GoodRow | BadRow]:
    return list(validate(read_rows(path)))


def good(rows: list[GoodRow | BadRow]) -> list[GoodRow]:
    return [r for r in rows if isinstance(r, GoodRow)]


def bad(rows: list[GoodRow | BadRow]) -> dict[int, str]:
    return {r.line: r.problem for r in rows if isinstance(r, BadRow)}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_row_splits_its_lists_on_pipes_and_parses_every_field(tmp_path: Path) -> None:
    path = write(tmp_path / "titles.csv", HEADER + "t456,Action Comedy Adventure,Action| Comedy,"
                 "Ann Lee|Bo Park,PG-13,2026-11-01,4.2,https://img.example/456.png\n")
    [row] = good(parsed(path))
    assert row.line == 2
    title = row.title
    assert (title.content_id, title.title) == ("t456", "Action Comedy Adventure")
    assert title.genres == ["Action", "Comedy"] and title.actors == ["Ann Lee", "Bo Park"]
    assert title.maturity_rating == "PG-13" and title.release_date == date(2026, 11, 1)
    assert title.rating == 4.2 and title.thumbnail_url == "https://img.example/456.png"


def test_csv_bad_rows_are_named_by_the_line_they_start_on_and_say_what_is_wrong(
        tmp_path: Path) -> None:
    path = write(tmp_path / "titles.csv", HEADER
                 + "t1,Fine,Drama,,,,,\n"                                   # line 2
                 + 't2,"A title\nover two lines",Drama,,XX,2026-13-01,7,\n'  # lines 3-4
                 + "\n"                                                     # 5: blank
                 + ",No id,,,,,,\n"                                         # 6
                 + "t3,Too,many,cells,,,,,,\n"                              # 7
                 + "t1,Again,,,,,,\n")                                      # 8
    rows = parsed(path)
    assert [r.title.content_id for r in good(rows)] == ["t1"]
    problems = bad(rows)
    assert sorted(problems) == [3, 6, 7, 8]
    assert "maturity_rating" in problems[3] and "'XX'" in problems[3]
    assert "release_date" in problems[3] and "rating" in problems[3]
    assert "content_id: Field required" in problems[6]
    assert "10 cells, the header has 8" in problems[7]
    assert "already on line 2" in problems[8]


def test_a_csv_without_a_required_column_or_with_an_unknown_one_is_refused_whole(
        tmp_path: Path) -> None:
    with pytest.raises(CatalogFileError, match=r"missing required column\(s\) \['title'\]"):
        list(read_rows(write(tmp_path / "a.csv", "content_id,genres\nt1,Drama\n")))
    with pytest.raises(CatalogFileError, match=r"unknown column\(s\) \['relase_date'\]"):
        list(read_rows(write(tmp_path / "b.csv", "content_id,title,relase_date\nt1,X,2020\n")))
    with pytest.raises(CatalogFileError, match=r"unknown extension '\.xlsx'"):
        list(read_rows(tmp_path / "c.xlsx"))


def test_json_lines_take_lists_as_arrays_and_report_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"content_id": "t5", "title": "Drama Romance", "genres": ["Drama", "Romance"],
                    "rating": 3.8, "release_date": "2024-02-14", "maturity_rating": None}),
        "",
        "{not json",
        json.dumps(["t6", "a list"]),
        json.dumps({"content_id": "t7", "title": "X", "genres": "Drama"}),   # not an array
        json.dumps({"content_id": "t8", "title": "X", "director": "Someone"}),
        json.dumps({"content_id": 9, "title": "An integer id"}),
    ]
    rows = parsed(write(tmp_path / "titles.jsonl", "\n".join(lines) + "\n"))
    assert [(r.line, r.title.content_id) for r in good(rows)] == [(1, "t5"), (7, "9")]
    assert good(rows)[0].title.genres == ["Drama", "Romance"]
    problems = bad(rows)
    assert sorted(problems) == [3, 4, 5, 6]
    assert problems[3].startswith("not JSON") and "a JSON object expected" in problems[4]
    assert "genres: Input should be a valid list" in problems[5]
    assert "director: Extra inputs are not permitted" in problems[6]


def test_parquet_takes_list_columns_and_numbers_its_rows(tmp_path: Path) -> None:
    table = pa.table({
        "content_id": ["t10", "t11", "t12"],
        "title": ["Space", "", "Kids"],
        "genres": [["Science Fiction"], [], ["Animation", "Family"]],
        "release_date": [date(2026, 1, 2), None, date(2010, 5, 6)],
        "rating": [4.0, 2.0, float("nan")],
    })
    pq.write_table(table, tmp_path / "titles.parquet")
    rows = parsed(tmp_path / "titles.parquet")
    assert [(r.line, r.title.content_id) for r in good(rows)] == [(1, "t10"), (3, "t12")]
    assert good(rows)[1].title.genres == ["Animation", "Family"]
    assert good(rows)[1].title.rating is None                    # NaN is an absent value
    assert "title: String should have at least 1 character" in bad(rows)[2]


def test_the_job_publishes_each_good_title_keyed_by_its_id_and_reports_the_bad(
        tmp_path: Path) -> None:
    path = write(tmp_path / "titles.csv", HEADER + "t1,One,Drama,,,,,\nt2,Two,,,R,bad,,\n"
                 "t3,Three,Comedy|Drama,,G,2026-01-01,5,\n")
    broker = InMemoryBroker()
    report = load(path, InMemoryPublisher(broker), progress=False)
    assert (report.valid, report.published) == (2, 2)
    assert [b.line for b in report.bad] == [3]
    records = broker.records(CATALOG)
    assert sorted(r.key for r in records if r.key) == [b"t1", b"t3"]
    events = [decode_event(r.value) for r in records]
    assert {e.type for e in events} == {"title"}
    three = next(payload_of(e.type, e.data) for e in events if e.data["content_id"] == "t3")
    assert three == payload_of("title", {"content_id": "t3", "title": "Three",
                                         "genres": ["Comedy", "Drama"], "maturity_rating": "G",
                                         "release_date": "2026-01-01", "rating": 5})


def test_the_exit_code_says_whether_any_row_was_bad(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    clean = write(tmp_path / "clean.csv", HEADER + "t1,One,Drama,,,,,\n")
    dirty = write(tmp_path / "dirty.csv", HEADER + "t1,One,Drama,,,,,\nt2,,,,,,,\n")
    assert main(["--dry-run", str(clean)]) == 0
    assert main(["--dry-run", str(dirty)]) == 1
    assert f"{dirty}:3: title: Field required" in capsys.readouterr().err
    assert main(["--dry-run", str(tmp_path / "missing.csv")]) == 2
    assert main(["--dry-run", str(write(tmp_path / "x.csv", "id,name\n1,a\n"))]) == 2
