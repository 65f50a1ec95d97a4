"""The plan of a rollback: an ordered list of planned steps, as data.

The planner produces a `Plan`; the executor (or the display-only executor of a
dry run) consumes it. A `PlannedStep` holds everything needed to rebuild its
`Step` object (`params`, JSON), so that `rollback resume` in a new process can
rebuild the steps from the journal through a `StepBuilder`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollback.errors import IntegrityError, NotFound
from rollback.models import StepDescription

if TYPE_CHECKING:
    from rollback.steps import Step

PLAN_SCHEMA = 1


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by start time: `20261129T120000123Z-<4 hex>` (UTC, to the ms).

    To the millisecond: a cutover and the rollback right after it often start
    in the same second, and `status` shows the run whose id sorts last. No dot
    before the milliseconds: run ids become parts of cloud names (snapshot
    identifiers) that allow only letters, digits and hyphens.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(2)}"


def description_from_dict(data: dict[str, Any]) -> StepDescription:
    """Rebuild a StepDescription read from the store."""
    return StepDescription(
        kind=str(data["kind"]),
        summary=str(data["summary"]),
        changes=dict(data.get("changes") or {}),
        reason=str(data.get("reason", "")),
        expected_seconds=float(data.get("expected_seconds", 0.0)),
    )


@dataclass(frozen=True)
class PlannedStep:
    """One step of a plan: its unique name, kind, description and rebuild parameters.

    `skippable` is False for steps the run cannot safely go without (the
    snapshot taken before a restore, for instance): `--skip` refuses them.
    """

    name: str
    kind: str
    description: StepDescription
    params: dict[str, Any] = field(default_factory=dict)
    skippable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": asdict(self.description),
            "params": self.params,
            "skippable": self.skippable,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlannedStep:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            description=description_from_dict(dict(data["description"])),
            params=dict(data.get("params") or {}),
            skippable=bool(data.get("skippable", True)),
        )


@dataclass(frozen=True)
class Plan:
    """An ordered rollback of `stack` from one release to another, with its warnings.

    `data_loss_window_s` is how many seconds of writes a database restore
    would lose (None when the plan restores no data).
    """

    run_id: str
    stack: str  # PROJECT/STACK
    from_version: str
    to_version: str
    steps: tuple[PlannedStep, ...]
    warnings: tuple[str, ...] = ()
    created_at: str = ""
    created_by: str = ""
    data_loss_window_s: float | None = None
    reason: str = ""
    schema: int = PLAN_SCHEMA

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise IntegrityError(
                f"plan {self.run_id} names a step twice ({', '.join(duplicates)}); step names must be unique.",
            )

    def step(self, name: str) -> PlannedStep:
        """The planned step called `name`; raises NotFound naming the known steps."""
        for planned in self.steps:
            if planned.name == name:
                return planned
        raise NotFound(
            f"the plan has no step {name!r}; its steps are {', '.join(s.name for s in self.steps) or 'none'}.",
            step=name,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "run_id": self.run_id,
            "stack": self.stack,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "data_loss_window_s": self.data_loss_window_s,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Build from a stored plan; raises IntegrityError on an unknown schema or shape."""
        if data.get("schema") != PLAN_SCHEMA:
            raise IntegrityError(
                f"plan has schema {data.get('schema')!r}, this toolkit reads schema {PLAN_SCHEMA}; "
                "upgrade rollback or check the store.",
            )
        try:
            window = data.get("data_loss_window_s")
            return cls(
                run_id=str(data["run_id"]),
                stack=str(data["stack"]),
                from_version=str(data["from_version"]),
                to_version=str(data["to_version"]),
                steps=tuple(PlannedStep.from_dict(dict(s)) for s in data["steps"]),
                warnings=tuple(str(w) for w in data.get("warnings") or ()),
                created_at=str(data.get("created_at", "")),
                created_by=str(data.get("created_by", "")),
                data_loss_window_s=None if window is None else float(window),
                reason=str(data.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"plan is malformed ({exc}); check the store.") from exc


StepBuilder = Callable[[PlannedStep], "Step"]
"""Turns a planned step into the Step object that acts on the cloud."""
