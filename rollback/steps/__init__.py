"""Rollback steps: one module per kind, each honouring the `Step` contract.

    describe()  -> StepDescription   what it will do, in words and as data
    apply()     -> Applied           idempotent: reads the cloud first, no-op if done;
                                     returns `prior`, the JSON state compensation needs
    verify()    -> list[Evidence]    reads the cloud back; never trusts its own write
    compensate(prior) -> None        puts back what apply changed

`prior` is JSON so that the run journal can store it and `rollback resume`
can compensate a step applied by a process that died.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from rollback.models import Evidence, StepDescription


@dataclass(frozen=True)
class Applied:
    """The result of apply(): whether the cloud changed and how to put it back."""

    changed: bool
    prior: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


class Step(Protocol):
    kind: str  # traffic, dns, db-snapshot, db-restore, migrate, integrity, health, artifact, smoke, stack

    def describe(self) -> StepDescription: ...

    def apply(self) -> Applied: ...

    def verify(self) -> list[Evidence]: ...

    def compensate(self, prior: dict[str, Any]) -> None: ...


def now_iso() -> str:
    """UTC wall time for evidence records."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def evidence(api: str, observed: dict[str, Any], ok: bool, note: str = "") -> Evidence:
    return Evidence(api=api, at=now_iso(), observed=observed, ok=ok, note=note)
