"""Another commit's source tree beside this checkout, for benchmarks that compare the two."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from services.devstack.servers import REPO_ROOT


def commit(ref: str = "HEAD", cwd: Path = REPO_ROOT) -> str:
    """The full commit id `ref` names."""
    return subprocess.run(["git", "rev-parse", ref], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


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
