"""`make lint`'s dependency audit: the pinned requirements against a local copy of the PyPA advisory
database (OSV records), so the check never depends on the network at lint time.

pip-audit asks PyPI's or OSV's web service about every pin on every run; neither answers from
this project's build machine, and a lint that fails when a web service is slow is worse than
none. The same records pip-audit's OSV service serves live in github.com/pypa/advisory-database;
`make advisory-db` clones it into .cache/advisory-database (refresh it the same way), and this
module matches every pin of pyproject.toml against it. A match fails unless the allow-list
(config/security/audit-allowlist.toml) names it with a reason and a date to look again.

    python -m services.devstack.audit                  # the audit (make lint)
    python -m services.devstack.audit --requirements   # the pins, for pip-audit -r - online
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB = REPO_ROOT / ".cache" / "advisory-database"
ALLOWLIST = REPO_ROOT / "config" / "security" / "audit-allowlist.toml"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)")


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]
    summary: str

    def line(self) -> str:
        names = ", ".join((self.advisory, *self.aliases))
        fixed = ", ".join(self.fixed) or "no fixed version listed"
        return f"{self.package}=={self.version}: {names} (fixed in {fixed}): {self.summary}"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(pyproject: Path) -> dict[str, str]:
    """name -> version of every `name==version` in the project's dependencies and extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        lines += group
    found = {}
    for line in lines:
        match = PIN.match(line)
        if match is None:
            raise ValueError(f"{pyproject}: '{line}' is not pinned with ==")
        found[normalize(match.group(1))] = match.group(3)
    return found


def advisories(db: Path, packages: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The OSV records of `packages` under db/vulns/<package>/ (YAML, as the database keeps
    them; a folder is named after the package as PyPI lists it, so names are normalized)."""
    wanted = set(packages)
    vulns = db / "vulns"
    for folder in sorted(vulns.iterdir()) if vulns.is_dir() else []:
        if normalize(folder.name) in wanted:
            for path in sorted(folder.glob("*.yaml")):
                yield yaml.safe_load(path.read_text())


def affects(record: dict[str, Any], package: str, version: str) -> tuple[bool, tuple[str, ...]]:
    """Whether the record names this version of this package, and its fixed versions."""
    try:
        pinned = Version(version)
    except InvalidVersion:
        return False, ()
    for affected in record.get("affected", []):
        if normalize(affected.get("package", {}).get("name", "")) != package:
            continue
        fixed = tuple(str(e["fixed"]) for r in affected.get("ranges", [])
                      if r.get("type") == "ECOSYSTEM"
                      for e in r.get("events", []) if "fixed" in e)
        if version in [str(v) for v in affected.get("versions", [])]:
            return True, fixed
        for span in affected.get("ranges", []):
            if span.get("type") == "ECOSYSTEM" and _in_range(pinned, span.get("events", [])):
                return True, fixed
    return False, ()


def _in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """OSV ECOSYSTEM events: each `introduced` opens a span, `fixed` (excluded) or
    `last_affected` (included) closes it."""
    inside = False
    for event in sorted(events, key=_event_version):
        if "introduced" in event:
            inside = inside or version >= _event_version(event)
        elif ("fixed" in event and version >= _event_version(event)) or (
                "last_affected" in event and version > _event_version(event)):
            inside = False
    return inside


def _event_version(event: dict[str, str]) -> Version:
    value = next(iter(event.values()))
    return Version("0") if value == "0" else Version(str(value))


def audit(pinned: dict[str, str], db: Path) -> list[Finding]:
    findings = []
    for record in advisories(db, pinned):
        if record.get("withdrawn"):
            continue
        for package, version in pinned.items():
            hit, fixed = affects(record, package, version)
            if hit:
                summary = str(record.get("summary") or record.get("details", "")).split("\n")[0]
                findings.append(Finding(package, version, str(record["id"]),
                                        tuple(record.get("aliases") or ()), fixed, summary[:160]))
    return findings


def allowed(allowlist: Path, today: dt.date) -> dict[str, str]:
    """Advisory id -> reason, for entries whose `review_by` date has not passed; an expired
    entry is an error (the reason it was safe must be checked again)."""
    if not allowlist.exists():
        return {}
    entries = tomllib.loads(allowlist.read_text()).get("allow", [])
    result = {}
    for entry in entries:
        if dt.date.fromisoformat(str(entry["review_by"])) < today:
            raise ValueError(f"{allowlist}: {entry['id']} was to be reviewed by "
                             f"{entry['review_by']}: check it again and move the date")
        result[str(entry["id"])] = str(entry["reason"])
    return result


def database_date(db: Path) -> str:
    result = subprocess.run(["git", "-C", str(db), "log", "-1", "--format=%cI %h"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown (not a git clone)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requirements", action="store_true",
                        help="print the pins as a requirements file and stop")
    parser.add_argument("--require-db", action="store_true",
                        help="fail when the advisory database is missing (CI)")
    args = parser.parse_args(argv)
    pinned = pins(REPO_ROOT / "pyproject.toml")
    if args.requirements:
        sys.stdout.write("".join(f"{n}=={v}\n" for n, v in sorted(pinned.items())))
        return 0
    db = Path(os.environ.get("MLSD_ADVISORY_DB", DEFAULT_DB))
    if not (db / "vulns").is_dir():
        sys.stderr.write(f"audit: NOT RUN: no advisory database at {db} (make advisory-db "
                         "clones it; MLSD_ADVISORY_DB names another copy)\n")
        return 1 if args.require_db else 0
    findings = audit(pinned, db)
    allow = allowed(ALLOWLIST, dt.date.today())
    refused = [f for f in findings if not ({f.advisory, *f.aliases} & set(allow))]
    sys.stdout.write(f"audit: {len(pinned)} pins against {db} ({database_date(db)}): "
                     f"{len(findings)} known advisories, {len(findings) - len(refused)} "
                     "allowed\n")
    for finding in refused:
        sys.stdout.write(f"  VULNERABLE {finding.line()}\n")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
