"""Reading a catalog file into raw rows with their line numbers, one reader per format (pure I/O).

    file ──by extension──▶ (line, {column: value}) ──validate (titles.py)──▶ TitleData | BadRow

Lists are JSON arrays in JSON lines, `|`-separated in CSV, list columns in Parquet. An empty CSV
cell or a null is an absent optional field. Line numbers are the file's own (CSV: the line a
record starts on, the header is line 1; JSON lines: the physical line; Parquet: the row, from 1).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from services.designs.payloads import TitleData

COLUMNS = tuple(TitleData.model_fields)
REQUIRED = tuple(name for name, f in TitleData.model_fields.items() if f.is_required())
LIST_COLUMNS = ("genres", "actors")
LIST_SEPARATOR = "|"
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

Raw = dict[str, Any]


class CatalogFileError(ValueError):
    """The file as a whole cannot be read: unknown format, missing or unknown columns."""


@dataclass(frozen=True)
class RawRow:
    line: int
    fields: Raw | None            # None: the line itself could not be parsed
    problem: str = ""             # why, when fields is None


def file_format(path: Path) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise CatalogFileError(f"{path}: unknown extension {path.suffix!r}; "
                               f"expected one of {sorted(FORMATS)}")
    return found


def check_columns(path: Path, columns: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    if missing or unknown:
        parts = [f"missing required column(s) {missing}"] if missing else []
        parts += [f"unknown column(s) {unknown}"] if unknown else []
        raise CatalogFileError(f"{path}: {'; '.join(parts)}; columns are {list(COLUMNS)} "
                               f"({list(REQUIRED)} required)")


def count_rows(path: Path) -> int:
    """Rows to expect (for the progress bar): Parquet's metadata, else lines."""
    if file_format(path) == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as f:
        return sum(1 for _ in f)


def read_rows(path: Path) -> Iterator[RawRow]:
    readers = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}
    return readers[file_format(path)](path)


def _opaque_id(fields: Raw) -> Raw:
    # An integer id column (MovieLens' item ids) is its decimal string: ids are opaque strings.
    value = fields.get("content_id")
    if isinstance(value, int) and not isinstance(value, bool):
        fields["content_id"] = str(value)
    return fields


def _csv_rows(path: Path) -> Iterator[RawRow]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise CatalogFileError(f"{path}: empty file, expected a header row")
        columns = [c.strip() for c in header]
        check_columns(path, columns)
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue  # a blank line
            if len(record) != len(columns):
                yield RawRow(line, None, f"{len(record)} cells, the header has {len(columns)}")
                continue
            yield RawRow(line, _opaque_id(_csv_fields(dict(zip(columns, record, strict=True)))))


def _csv_fields(record: dict[str, str]) -> Raw:
    fields: Raw = {}
    for column, cell in record.items():
        text = cell.strip()
        if not text:
            continue
        if column in LIST_COLUMNS:
            fields[column] = [part.strip() for part in text.split(LIST_SEPARATOR) if part.strip()]
        else:  # an id is opaque: kept as written, spaces and all
            fields[column] = cell if column == "content_id" else text
    return fields


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    with path.open(encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(line, None, f"not JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(value, dict):
                yield RawRow(line, None, f"a JSON object expected, got {type(value).__name__}")
                continue
            yield RawRow(line, _opaque_id({k: v for k, v in value.items() if v is not None}))


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    parquet = pq.ParquetFile(path)
    check_columns(path, list(parquet.schema_arrow.names))
    line = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            line += 1
            yield RawRow(line, _opaque_id({k: v for k, v in record.items()
                                           if v is not None and not _is_nan(v)}))


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
