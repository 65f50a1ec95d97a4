"""Reapply worktrees a killed run left behind are removed by the next one (issue 9, item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import git

from rollback.stacks import prune_stale_worktrees, worktree  # re-exported from rollback.worktrees


def _repo(path: Path) -> git.Repo:
    repo = git.Repo.init(path)
    (path / "README").write_text("x\n")
    repo.index.add(["README"])
    repo.index.commit("init", author=git.Actor("a", "a@x"), committer=git.Actor("a", "a@x"))
    return repo


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _listed(repo: git.Repo) -> list[str]:
    return [
        line.split(" ", 1)[1]
        for line in repo.git.worktree("list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def test_a_dead_runs_worktree_is_removed_and_unregistered(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "iac")
    tmp = tmp_path / "tmp"
    dead = tmp / f"rollback-reapply-{_dead_pid()}-abcd" / "src"
    live = tmp / f"rollback-reapply-{os.getpid()}-efgh" / "src"
    other = tmp / "someone-elses" / "src"
    for path in (dead, live, other):
        path.parent.mkdir(parents=True)
        repo.git.worktree("add", "--detach", str(path), "HEAD")
    assert len(_listed(repo)) == 4

    removed = prune_stale_worktrees(tmp)

    assert removed == [dead.parent]
    assert not dead.parent.exists() and live.exists() and other.exists()
    assert str(dead) not in _listed(repo) and str(live) in _listed(repo)


def test_a_folder_killed_before_git_worktree_add_is_removed_too(tmp_path: Path) -> None:
    leftover = tmp_path / f"rollback-reapply-{_dead_pid()}-zz"
    leftover.mkdir()
    assert prune_stale_worktrees(tmp_path) == [leftover] and not leftover.exists()


def test_worktree_leaves_nothing_registered(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "iac")
    with worktree(tmp_path / "iac", repo.head.commit.hexsha) as src:
        assert (src / "README").is_file()
        assert f"rollback-reapply-{os.getpid()}-" in str(src)
    assert _listed(repo) == [str(tmp_path / "iac")]


def test_a_worktree_whose_git_was_killed_while_adding_it_is_unregistered_too(
    tmp_path: Path,
) -> None:
    # `git worktree add` locks the new registration ("initializing") until its checkout is
    # done; a SIGKILL to the process group in between leaves it locked, and a plain
    # `git worktree prune` keeps locked registrations: `git worktree list` would show it.
    repo = _repo(tmp_path / "iac")
    tmp = tmp_path / "tmp"
    dead = tmp / f"rollback-reapply-{_dead_pid()}-abcd" / "src"
    dead.parent.mkdir(parents=True)
    repo.git.worktree("add", "--detach", str(dead), "HEAD")
    (Path(repo.git_dir) / "worktrees" / "src" / "locked").write_text("initializing")
    assert str(dead) in _listed(repo)

    assert prune_stale_worktrees(tmp) == [dead.parent]

    assert _listed(repo) == [str(tmp_path / "iac")]


def test_a_locked_registration_whose_folder_is_gone_is_unregistered_through_its_repo(
    tmp_path: Path,
) -> None:
    # Killed before git wrote the checkout's `.git` file (or after the folder went): only
    # the repository still knows the worktree, so the stack step names its repository's git dir.
    repo = _repo(tmp_path / "iac")
    tmp = tmp_path / "tmp"
    dead = tmp / f"rollback-reapply-{_dead_pid()}-abcd" / "src"
    live = tmp / f"rollback-reapply-{os.getpid()}-efgh" / "src"
    for path in (dead, live):
        path.parent.mkdir(parents=True)
        repo.git.worktree("add", "--detach", str(path), "HEAD")
    for name in ("src", "src1"):
        (Path(repo.git_dir) / "worktrees" / name / "locked").write_text("initializing")
    import shutil

    shutil.rmtree(dead.parent)

    assert prune_stale_worktrees(tmp, git_dirs=[Path(repo.git_dir)]) == []

    assert _listed(repo) == [str(tmp_path / "iac"), str(live)]  # a live run's stays
