"""A stack engine built on first use.

The stack step is built with the rest of the plan, before the lock is taken;
building the engine there (the pulumi engine imports the Automation API, the
embedded one its resource appliers) would make a traffic-first rollback pay
for it before users are moved. The step touches its engine only in
apply/verify/compensate, so the build waits until then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rollback.engine import StackEngine


class _EngineOnFirstUse:
    def __init__(self, build: Callable[[], StackEngine]) -> None:
        self._build = build
        self._engine: StackEngine | None = None
        self._lock = threading.Lock()

    def _get(self) -> StackEngine:
        with self._lock:
            if self._engine is None:
                self._engine = self._build()
            return self._engine

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set in __init__: everything of the engine.
        return getattr(self._get(), name)

    def __repr__(self) -> str:
        return f"<engine built on first use: {self._engine!r}>"


def engine_on_first_use(build: Callable[[], StackEngine]) -> StackEngine:
    """A stand-in for `build()` that calls it the first time any attribute is used."""
    return cast("StackEngine", _EngineOnFirstUse(build))
