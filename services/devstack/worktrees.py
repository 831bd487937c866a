"""Another commit's source tree beside this checkout, for benchmarks that compare the two,
and the commit a benchmark's report names."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from services.devstack.servers import REPO_ROOT


def commit(ref: str = "HEAD", cwd: Path = REPO_ROOT) -> str:
    """The full id of the commit `ref` names (a tag or branch is followed to its commit)."""
    return subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def uncommitted(paths: Sequence[str] = ("services",), cwd: Path = REPO_ROOT) -> bool:
    """Whether the working tree differs from HEAD under `paths` (a report made from it says so
    beside its commit)."""
    return bool(subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=cwd,
                               check=True, capture_output=True, text=True).stdout.strip())


def checkout_commit(paths: Sequence[str] = ("services",), cwd: Path = REPO_ROOT) -> str:
    """What a report made from this checkout names as its source: HEAD's commit, with
    " + working tree" when the files under `paths` differ from it."""
    return commit(cwd=cwd) + (" + working tree" if uncommitted(paths, cwd) else "")


def exported(ref: str, into: Path, paths: Sequence[str] = ()) -> str:
    """`ref`'s files (only `paths`, if given) written into `into` by `git archive`: no
    worktree, the repository untouched. Returns its commit."""
    full = commit(ref)
    archive = subprocess.run(["git", "archive", full, *paths], cwd=REPO_ROOT, check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return full


@contextmanager
def worktree(ref: str, at: Path, links: Sequence[str] = ()) -> Iterator[Path]:
    """`ref` checked out (detached) at `at` for the block, each of `links` (this checkout's
    ignored folders it needs: .state, .venv, .cache) linked in; removed afterwards, whatever
    happened."""
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(at), ref], cwd=REPO_ROOT,
                   check=True)
    try:
        for link in links:
            (at / link).symlink_to(REPO_ROOT / link)
        yield at
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(at)], cwd=REPO_ROOT,
                       check=False)
