"""Stack re-apply: the engine's re-apply of a prior release, in the Step contract.

apply is idempotent: when the stack's state already matches the release
(same resources, same inputs) it changes nothing. It never moves users: the
traffic weights are the toolkit's (rollback/ownership.py), so after the apply
the owner puts back the desired traffic if the program moved it, and says so.
verify compares the stack's checkpoint with the release's, reads every
resource back from the cloud and checks that traffic is where the toolkit put
it. compensate (only `rollback abort` asks) re-applies the release that ran
before, holding traffic the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollback.errors import NotFound
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence

if TYPE_CHECKING:
    from rollback.engine import StackEngine
    from rollback.ownership import TrafficOwner
    from rollback.releases import Registry


class StackStep:
    kind = "stack"

    def __init__(
        self,
        engine: StackEngine,
        registry: Registry,
        version: str,
        stack: str,
        previous: str | None,
        owner: TrafficOwner | None = None,
        set_by: str = "the stack step",
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.version = version
        self.stack = stack  # the stack name (without project)
        self.previous = previous
        self.owner = owner
        self.set_by = set_by

    def describe(self) -> StepDescription:
        release = self.registry.show(self.version).release
        return StepDescription(
            self.kind,
            f"re-apply {release.tag} ({release.commit[:12]}) with its recorded config",
            {"version": self.version, "commit": release.commit, "engine": self.engine.name},
        )

    def _differences(self) -> list[Any]:
        from rollback import stacks

        release = self.registry.show(self.version).release
        try:
            actual = self.engine.export(self.stack)
        except NotFound:
            return ["the stack has no state"]
        return stacks.compare_checkpoints(
            stacks.release_checkpoint(self.registry.store, release), actual
        )

    def _live_drift(self, release: Any) -> bool:
        """True when the engine's live read (pulumi: preview --refresh) finds hand-made changes.

        Equal checkpoints do not prove the cloud: someone may have changed it by hand.
        """
        from rollback import stacks

        live = stacks.prove_release(self.engine, self.registry.store, release, self.stack)
        return live is not None and not live.ok

    def apply(self) -> Applied:
        from rollback import stacks

        release = self.registry.show(self.version).release
        if not self._differences() and not self._live_drift(release):
            return Applied(changed=False, prior={"version": self.previous})
        # The proof is verify's job: raising here would lose the prior compensation needs.
        # A failure to put traffic back is recorded, not raised: verify's traffic check fails.
        hold = self.owner.holder(self.set_by, quiet=True) if self.owner else None
        result = stacks.reapply(
            self.engine, self.registry.store, release, self.stack, prove=False, hold=hold
        )
        detail: dict[str, Any] = {"counts": result.up.counts(), "refreshed": result.refreshed}
        if result.up.traffic is not None:
            detail["traffic"] = result.up.traffic
        if result.up.warnings:
            detail["warnings"] = list(result.up.warnings)
        return Applied(changed=True, prior={"version": self.previous}, detail=detail)

    def verify(self) -> list[Evidence]:
        from rollback import stacks

        differences = self._differences()
        found = [
            evidence(
                f"{self.engine.name}.export",
                {"differences": [vars(d) if hasattr(d, "urn") else d for d in differences][:20]},
                not differences,
                ""
                if not differences
                else f"{len(differences)} difference(s) from release {self.version}",
            )
        ]
        actual = None
        if self.owner is not None or hasattr(self.engine, "read_live"):
            try:
                actual = self.engine.export(self.stack)
            except NotFound:
                actual = None
        if self.owner is not None and actual is not None:
            topology = stacks.topology_of(actual)
            if topology is not None:
                found.append(self.owner.check(topology))
        if not differences and hasattr(self.engine, "prove"):
            # The pulumi engine's live read: `preview --refresh --expect-no-changes`.
            live = stacks.prove_release(
                self.engine,
                self.registry.store,
                self.registry.show(self.version).release,
                self.stack,
            )
            if live is not None:
                found.append(
                    evidence(
                        f"{self.engine.name}.preview --refresh --expect-no-changes",
                        {"checked": live.checked, "drift": [vars(d) for d in live.drift][:20]},
                        live.ok,
                        "" if live.ok else f"{len(live.drift)} drifted properties",
                    )
                )
        if not differences and actual is not None and hasattr(self.engine, "read_live"):
            report = stacks.verify(self.engine, self.stack, actual, self.version)
            found.append(
                evidence(
                    f"{self.engine.name}.read_live",
                    {"checked": report.checked, "drift": [vars(d) for d in report.drift][:20]},
                    report.ok,
                    "" if report.ok else f"{len(report.drift)} drifted properties",
                )
            )
        return found

    def compensate(self, prior: dict[str, Any]) -> None:
        from rollback import stacks

        version = prior.get("version")
        if not version:
            return
        release = self.registry.show(str(version)).release
        hold = self.owner.holder(self.set_by) if self.owner else None
        stacks.reapply(self.engine, self.registry.store, release, self.stack, hold=hold)
