"""Reapply worktrees a killed run left behind: found by the pid in their folder's name, removed.

Light on purpose (standard library only): the executor prunes once a run's
steps are done, and need not import `rollback.stacks` for it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

WORKTREE_PREFIX = "rollback-reapply-"  # + pid + "-": see stacks.worktree


def prune_stale_worktrees(tmp_dir: Path | None = None, git_dirs: Sequence[Path] = ()) -> list[Path]:
    """Remove the reapply worktrees that killed processes of this host left; return them.

    A leftover is a `rollback-reapply-<pid>-*` folder in the temporary
    directory whose pid is gone. Its checkout is deleted and its repository
    (found through the worktree's `.git` file, or among `git_dirs`, whose
    registrations are read for worktrees in such folders) runs `git worktree
    prune`, so `git worktree list` no longer shows it. The lock `git worktree
    add` puts on a registration until its checkout is done ("initializing")
    stays when git is killed with us, and prune keeps locked registrations:
    a dead run's registration is unlocked first (nobody else locks ours).
    Folders of live processes are left alone. Never raises for a leftover it
    cannot clean (logged instead).
    """
    import re
    import shutil
    import subprocess

    from rollback.store.lock import process_alive

    base = tmp_dir or Path(tempfile.gettempdir())
    pattern = re.compile(rf"^{re.escape(WORKTREE_PREFIX)}(\d+)-")

    real_base = base.resolve()

    def dead(folder: Path) -> bool:
        match = pattern.match(folder.name)
        if match is None or folder.parent.resolve() != real_base:
            return False
        return not process_alive(int(match.group(1)))

    removed = []
    try:
        candidates = [p for p in base.iterdir() if pattern.match(p.name) and p.is_dir()]
    except OSError:
        candidates = []
    registrations: set[Path] = set()  # <repo>/.git/worktrees/<name> of dead runs' worktrees
    for git_dir in git_dirs:
        for registration in _registrations(git_dir):
            try:
                checkout = Path(
                    (registration / "gitdir").read_text(encoding="utf-8").strip()
                ).parent  # <folder>/src/.git -> <folder>/src
            except OSError:
                continue
            if dead(checkout.parent):
                registrations.add(registration)
    for folder in candidates:
        if not dead(folder):
            continue
        git_file = folder / "src" / ".git"
        try:
            text = git_file.read_text(encoding="utf-8").strip()
            if text.startswith("gitdir:"):
                registrations.add(Path(text.removeprefix("gitdir:").strip()))
        except OSError:
            pass
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("removed the reapply worktree %s a killed run left behind", folder)
        removed.append(folder)
    # <repo>/.git/worktrees/<name>: the repository's git dir is two levels up
    for registration in registrations:
        (registration / "locked").unlink(missing_ok=True)
    for git_dir in {registration.parent.parent for registration in registrations}:
        done = subprocess.run(
            ["git", "--git-dir", str(git_dir), "worktree", "prune"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            log.warning("git worktree prune in %s failed: %s", git_dir, done.stderr.strip())
    return removed


def _registrations(git_dir: Path) -> list[Path]:
    """The worktree registrations of a repository (`<git dir>/worktrees/*`)."""
    try:
        return [p for p in (git_dir / "worktrees").iterdir() if p.is_dir()]
    except OSError:
        return []
