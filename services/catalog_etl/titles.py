"""Raw catalog rows validated as TitleData: each good row a title, each bad one its line and why."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from services.catalog_etl.rows import RawRow
from services.designs.payloads import TitleData


@dataclass(frozen=True)
class BadRow:
    line: int
    problem: str


@dataclass(frozen=True)
class GoodRow:
    line: int
    title: TitleData


def describe(exc: ValidationError) -> str:
    """Every problem of a row, field by field: `rating: Input should be ... (got '7')`."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "row"
        got = f" (got {error['input']!r})" if error["type"] != "missing" else ""
        problems.append(f"{where}: {error['msg']}{got}")
    return "; ".join(problems)


def validate(rows: Iterable[RawRow]) -> Iterator[GoodRow | BadRow]:
    """TitleData per row; a content id seen on an earlier line makes the later row bad (which
    of two versions in one file is meant cannot be told)."""
    first_line: dict[str, int] = {}
    for row in rows:
        if row.fields is None:
            yield BadRow(row.line, row.problem)
            continue
        try:
            title = TitleData.model_validate(row.fields)
        except ValidationError as exc:
            yield BadRow(row.line, describe(exc))
            continue
        seen = first_line.setdefault(title.content_id, row.line)
        if seen != row.line:
            yield BadRow(row.line, f"content_id {title.content_id!r} is already on line {seen}")
            continue
        yield GoodRow(row.line, title)
