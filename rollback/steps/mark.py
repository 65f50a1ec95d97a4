"""Mark: the registry says what runs. The bad release is marked bad, the target current."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence

if TYPE_CHECKING:
    from rollback.releases import Registry


class MarkStep:
    kind = "mark"

    def __init__(self, registry: Registry, bad: str, current: str, reason: str) -> None:
        self.registry = registry
        self.bad = bad
        self.current = current
        self.reason = reason

    def describe(self) -> StepDescription:
        return StepDescription(
            self.kind,
            f"mark {self.bad} bad and make {self.current} current",
            {"bad": self.bad, "current": self.current},
        )

    def apply(self) -> Applied:
        """Idempotent: appends a status only when it is not already bad."""
        prior = {
            "current": self.registry.current(),
            "bad_status": self.registry.show(self.bad).status,
        }
        changed = False
        if prior["bad_status"] != "bad":
            self.registry.mark(self.bad, "bad", self.reason)
            changed = True
        if prior["current"] != self.current:
            self.registry.set_current(self.current, self.reason)
            changed = True
        return Applied(changed=changed, prior=prior)

    def verify(self) -> list[Evidence]:
        current = self.registry.current()
        status = self.registry.show(self.bad).status
        return [
            evidence("store.releases/current", {"current": current}, current == self.current),
            evidence(
                "store.releases/status", {"version": self.bad, "status": status}, status == "bad"
            ),
        ]

    def compensate(self, prior: dict[str, Any]) -> None:
        if prior.get("current") and self.registry.current() != prior["current"]:
            self.registry.set_current(str(prior["current"]), "compensated: the rollback was undone")
        if prior.get("bad_status") and prior["bad_status"] != "bad":
            self.registry.mark(
                self.bad, str(prior["bad_status"]), "compensated: the rollback was undone"
            )
