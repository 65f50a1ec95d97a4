"""Follow a stack's latest run until it ends: what `rollback status --watch` waits in.

A run has ended when its journal carries a result. A run with no result whose
stack lock nobody holds is not running either: its process died (`rollback
resume RUN` finishes it). One observation of that could be the instant
between a run's start and its lock, so it takes two in a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rollback.journal import Run, latest_run
from rollback.store import Store
from rollback.store.lock import read_lock
from rollback.waiting import Timing


@dataclass(frozen=True)
class Followed:
    """The run as last read, and how following it ended: `ended`, `abandoned` or `none`."""

    run: Run | None
    how: str


def follow_run(
    store: Store,
    stack: str,
    *,
    timing: Timing | None = None,
    interval_s: float = 2.0,
    on_change: Callable[[Run], None] | None = None,
) -> Followed:
    """Read the latest run every `interval_s` until it has a result or is abandoned.

    `on_change` gets the run each time a new event was journalled (and once at
    the start). Never gives up on a live run: Ctrl-C ends the wait.
    """
    timing = timing or Timing()
    seen = -1
    unlocked = 0
    while True:
        run = latest_run(store, stack)
        if run is None:
            return Followed(None, "none")
        if len(run.events) != seen:
            seen = len(run.events)
            if on_change:
                on_change(run)
        if run.result:
            return Followed(run, "ended")
        unlocked = unlocked + 1 if read_lock(store, stack) is None else 0
        if unlocked >= 2:
            return Followed(run, "abandoned")
        timing.sleep(interval_s)
