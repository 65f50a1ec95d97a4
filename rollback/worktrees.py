"""Reapply worktrees a killed run left behind: found by the pid in their folder's name, removed.

Light on purpose (standard library only): the executor prunes once a run's
steps are done, and need not import `rollback.stacks` for it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

WORKTREE_PREFIX = "rollback-reapply-"  # + pid + "-": see stacks.worktree


def prune_stale_worktrees(tmp_dir: Path | None = None) -> list[Path]:
    """Remove the reapply worktrees that killed processes of this host left; return them.

    A leftover is a `rollback-reapply-<pid>-*` folder in the temporary
    directory whose pid is gone. Its checkout is deleted and its repository
    (found through the worktree's `.git` file) runs `git worktree prune`, so
    `git worktree list` no longer shows it. Folders of live processes are
    left alone. Never raises for a leftover it cannot clean (logged instead).
    """
    import re
    import shutil
    import subprocess

    from rollback.store.lock import process_alive

    base = tmp_dir or Path(tempfile.gettempdir())
    pattern = re.compile(rf"^{re.escape(WORKTREE_PREFIX)}(\d+)-")
    removed = []
    try:
        candidates = [p for p in base.iterdir() if pattern.match(p.name) and p.is_dir()]
    except OSError:
        return []
    for folder in candidates:
        match = pattern.match(folder.name)
        if match is None or process_alive(int(match.group(1))):
            continue
        repos = set()
        git_file = folder / "src" / ".git"
        try:
            text = git_file.read_text(encoding="utf-8").strip()
            if text.startswith("gitdir:"):
                # <repo>/.git/worktrees/<name>: the repository's git dir is two levels up
                repos.add(Path(text.removeprefix("gitdir:").strip()).parent.parent)
        except OSError:
            pass
        shutil.rmtree(folder, ignore_errors=True)
        for git_dir in repos:
            done = subprocess.run(
                ["git", "--git-dir", str(git_dir), "worktree", "prune"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                log.warning("git worktree prune in %s failed: %s", git_dir, done.stderr.strip())
        log.warning("removed the reapply worktree %s a killed run left behind", folder)
        removed.append(folder)
    return removed
