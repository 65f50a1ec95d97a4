"""Bounded polling with back-off. The one loop the toolkit waits in.

It takes `sleep` and `clock` so tests never really wait, and reports each wait
through `on_wait` (what, seconds so far, deadline) so the CLI can show progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rollback.errors import CheckFailed

T = TypeVar("T")

Sleep = Callable[[float], None]
Clock = Callable[[], float]
OnWait = Callable[[str, float, float], None]


@dataclass(frozen=True)
class Timing:
    """How a step waits: injected sleep and monotonic clock, optional progress callback."""

    sleep: Sleep = time.sleep
    clock: Clock = time.monotonic
    on_wait: OnWait | None = None


def poll(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    timing: Timing = Timing(),
    interval: float = 1.0,
    max_interval: float = 15.0,
    backoff: float = 1.5,
) -> T:
    """Call `probe` until it returns something other than None; return that.

    Sleeps `interval` seconds between probes, growing by `backoff` up to
    `max_interval`. Raises CheckFailed naming `what` after `timeout` seconds.
    """
    start = timing.clock()
    delay = interval
    while True:
        result = probe()
        if result is not None:
            return result
        elapsed = timing.clock() - start
        if elapsed >= timeout:
            raise CheckFailed(f"gave up waiting for {what} after {elapsed:.0f}s.", waited_for=what)
        if timing.on_wait:
            timing.on_wait(what, elapsed, timeout)
        timing.sleep(min(delay, max(timeout - elapsed, 0.0)))
        delay = min(delay * backoff, max_interval)
