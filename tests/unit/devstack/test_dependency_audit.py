"""make lint's dependency audit: pins matched against OSV records offline, with an allow-list."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.devstack.audit import REPO_ROOT, allowed, audit, pins

RECORD = """\
id: PYSEC-2099-1
aliases: [CVE-2099-0001, GHSA-aaaa-bbbb-cccc]
summary: header injection
affected:
- package: {name: Some_Lib, ecosystem: PyPI}
  ranges:
  - type: GIT
    events: [{introduced: "0"}, {fixed: 0123abcd}]
  - type: ECOSYSTEM
    events: [{introduced: "1.2"}, {fixed: "1.4.1"}, {introduced: "2.0"}, {last_affected: "2.1"}]
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    folder = tmp_path / "vulns" / "some-lib"
    folder.mkdir(parents=True)
    (folder / "PYSEC-2099-1.yaml").write_text(RECORD)
    (folder / "PYSEC-2099-2.yaml").write_text(RECORD.replace("2099-1", "2099-2")
                                              + "withdrawn: '2099-02-01T00:00:00Z'\n")
    return tmp_path


@pytest.mark.parametrize(("version", "vulnerable"), [
    ("1.1", False), ("1.2", True), ("1.4.0", True), ("1.4.1", False), ("1.9", False),
    ("2.0", True), ("2.1", True), ("2.1.1", False)])
def test_a_pin_inside_an_affected_range_is_found_with_its_fixed_versions(
        database: Path, version: str, vulnerable: bool) -> None:
    findings = audit({"some-lib": version, "other": "1.2"}, database)
    assert [f.advisory for f in findings] == (["PYSEC-2099-1"] if vulnerable else [])
    if vulnerable:
        assert findings[0].fixed == ("1.4.1",)  # the git commit is not a version
        assert "CVE-2099-0001" in findings[0].line()


def test_allowed_advisories_need_a_reason_and_expire(tmp_path: Path) -> None:
    allowlist = tmp_path / "allow.toml"
    allowlist.write_text('[[allow]]\nid = "CVE-2099-0001"\npackage = "some-lib"\n'
                         'reason = "not reachable"\nreview_by = 2099-06-01\n')
    assert allowed(allowlist, dt.date(2099, 5, 1)) == {"CVE-2099-0001": "not reachable"}
    with pytest.raises(ValueError, match="to be reviewed by 2099-06-01"):
        allowed(allowlist, dt.date(2099, 6, 2))


def test_every_requirement_of_the_project_is_pinned_and_read() -> None:
    pinned = pins(REPO_ROOT / "pyproject.toml")
    assert pinned["fastapi"] and pinned["psycopg"] and pinned["pytest"]
    assert all(version[0].isdigit() for version in pinned.values())


def test_an_unpinned_requirement_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["fastapi>=0.1"]\n')
    with pytest.raises(ValueError, match="not pinned"):
        pins(tmp_path / "pyproject.toml")
