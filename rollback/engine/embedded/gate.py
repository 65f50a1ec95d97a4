"""When an embedded `up` may start changing the cloud, and how many changes run at once.

Pulumi runs the program once per update and executes each step as its
registration arrives, several at once: steps wait only on what they depend
on, because a language host sends a registration only once its dependencies
are done (pkg/resource/deploy/step_executor.go, "Since Pulumi language hosts
can only invoke the resource monitor once all of their dependencies have
resolved ..."). The default degree of parallelism is four per CPU
(`defaultParallel`, pkg/cmd/pulumi/operations/up.go; `PULUMI_PARALLEL`
overrides it).

The embedded engine promises one thing more than Pulumi: a program that
declares a type it cannot apply is refused before anything changes. So the
registrations are decided (diffed, checked) as they arrive but wait here
until the program has done all it can without any step's result: its own
code has returned (every resource it constructed is known) and every
registration not waiting on another resource's outputs has arrived and been
decided. Then the engine checks them and opens the gate (the waiting steps
run, `parallel` at a time, and later ones as they arrive) or refuses (none
ever runs).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def default_parallelism() -> int:
    """Pulumi's default: `PULUMI_PARALLEL` when set above zero, else four per CPU."""
    try:
        configured = int(os.environ.get("PULUMI_PARALLEL", "0"))
    except ValueError:
        configured = 0
    return configured if configured > 0 else (os.cpu_count() or 1) * 4


class ProgramGate:
    """Closed while the program's code runs; then opened (steps run) or refused (none ever runs)."""

    def __init__(self, parallel: int) -> None:
        self._decided = threading.Event()
        self._refusal: BaseException | None = None
        self._steps = threading.BoundedSemaphore(max(parallel, 1))
        self._lock = threading.Lock()
        self._waiting = 0

    def waiting(self) -> int:
        """How many steps wait for the decision now."""
        with self._lock:
            return self._waiting

    @property
    def opened(self) -> bool:
        """True once changes may be (or were) made."""
        return self._decided.is_set() and self._refusal is None

    @property
    def closed(self) -> bool:
        """True while nothing has been decided: the program's code still runs."""
        return not self._decided.is_set()

    def open(self) -> None:
        self._decided.set()

    def refuse(self, reason: BaseException) -> None:
        """Release every waiting step with `reason` raised in it; later ones raise it too."""
        if not self._decided.is_set():
            self._refusal = reason
            self._decided.set()

    def wait(self) -> None:
        """Block until decided; raises the refusal when the gate was refused."""
        if not self._decided.is_set():
            with self._lock:
                self._waiting += 1
            try:
                self._decided.wait()
            finally:
                with self._lock:
                    self._waiting -= 1
        if self._refusal is not None:
            raise self._refusal

    @contextmanager
    def step(self) -> Iterator[None]:
        """Hold one of the `parallel` slots for the cloud calls of one step."""
        with self._steps:
            yield
