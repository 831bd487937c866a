"""Another commit's tree beside this checkout (services/devstack/worktrees.py), on this repo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.devstack.worktrees import (
    checkout_commit,
    commit,
    exported,
    uncommitted,
    worktree,
)
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


def test_a_tag_or_branch_is_followed_to_its_commit_and_a_non_commit_is_refused() -> None:
    tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    branch = subprocess.run(["git", "symbolic-ref", "-q", "--short", "HEAD"], cwd=REPO_ROOT,
                            check=False, capture_output=True, text=True).stdout.strip()
    if branch:  # a detached checkout has no branch to follow
        assert commit(branch) == commit()
    with pytest.raises(subprocess.CalledProcessError):
        commit(tree)  # a tree object is no commit


def test_exported_writes_the_commits_files_only_under_the_paths_asked(tmp_path: Path) -> None:
    full = exported("HEAD", tmp_path / "tree", ("services/devstack",))
    assert full == commit()
    written = tmp_path / "tree/services/devstack/worktrees.py"
    shown = subprocess.run(["git", "show", "HEAD:services/devstack/worktrees.py"],
                           cwd=REPO_ROOT, check=True, capture_output=True).stdout
    assert written.read_bytes() == shown
    assert not (tmp_path / "tree/benchmarks").exists()


def test_uncommitted_sees_a_changed_file_under_its_paths_only(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for name in ("services", "docs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_text("one\n")
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "y"],
                   cwd=tmp_path, check=True)
    assert not uncommitted(cwd=tmp_path)
    (tmp_path / "docs/a.txt").write_text("two\n")
    assert not uncommitted(cwd=tmp_path)
    assert checkout_commit(cwd=tmp_path) == commit(cwd=tmp_path)
    (tmp_path / "services/a.txt").write_text("two\n")
    assert uncommitted(cwd=tmp_path)
    # what a report names as its source
    assert checkout_commit(cwd=tmp_path) == commit(cwd=tmp_path) + " + working tree"
