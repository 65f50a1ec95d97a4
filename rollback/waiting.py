"""Bounded polling with back-off. The one loop the toolkit waits in.

It takes `sleep` and `clock` so tests never really wait, and reports each wait
through `on_wait` (what, seconds so far, deadline, last observed state) so the
CLI can show progress: the state is what the probe saw last (`status
backing-up`, `404 Not Found`), from the `observe` callback a caller passes.
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
# (what, seconds so far, deadline in seconds, last observed state or failure reason)
OnWait = Callable[[str, float, float, str], None]


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
    observe: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something other than None; return that.

    Sleeps `interval` seconds between probes, growing by `backoff` up to
    `max_interval`. `observe` says what the last probe saw, for progress and
    for the timeout's message. Raises CheckFailed naming `what` (and the last
    observation) after `timeout` seconds.
    """
    start = timing.clock()
    delay = interval
    while True:
        result = probe()
        if result is not None:
            return result
        elapsed = timing.clock() - start
        state = observe() if observe else ""
        if elapsed >= timeout:
            last = f" (last: {state})" if state else ""
            raise CheckFailed(
                f"gave up waiting for {what} after {elapsed:.0f}s{last}.",
                waited_for=what,
                last_observed=state,
            )
        if timing.on_wait:
            timing.on_wait(what, elapsed, timeout, state)
        timing.sleep(min(delay, max(timeout - elapsed, 0.0)))
        delay = min(delay * backoff, max_interval)
