"""Work started on a daemon thread, its answer in a Future."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def in_daemon_thread(work: Callable[[], T], name: str) -> Future[T]:
    """`work()` on a new daemon thread: its result, or what it raised, goes to the Future.

    A daemon, so a process that ends before it needs the answer does not wait for it
    (a passphrase's million-round PBKDF2, started early, for a run refused before).
    """
    answer: Future[T] = Future()

    def run() -> None:
        try:
            answer.set_result(work())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            answer.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return answer
