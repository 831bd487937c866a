"""Another commit's tree beside this checkout (services/devstack/worktrees.py), on this repo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.devstack.worktrees import commit, worktree
from tests.harness import REPO_ROOT


def listed() -> str:
    return subprocess.run(["git", "worktree", "list"], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True).stdout


def test_a_commit_is_checked_out_with_its_links_and_removed_even_after_a_failure(
        tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the block failed"), \
            worktree("HEAD", tmp_path / "old", links=(".venv",)) as tree:
        assert commit(cwd=tree) == commit()
        assert (tree / ".venv").is_symlink() and (tree / ".venv").resolve() == REPO_ROOT / ".venv"
        assert str(tree) in listed()
        raise RuntimeError("the block failed")
    assert not tree.exists() and str(tree) not in listed()


def test_a_commit_is_named_by_its_full_id() -> None:
    assert len(commit()) == 40 and commit("HEAD") == commit()
