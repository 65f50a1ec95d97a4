"""Stack re-apply: the engine's re-apply of a prior release, in the Step contract.

apply is idempotent: when the stack's state already matches the release
(same resources, same inputs) it changes nothing. verify compares the stack's
checkpoint with the release's and reads every resource back from the cloud.
compensate re-applies the release that ran before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollback.errors import NotFound
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence

if TYPE_CHECKING:
    from rollback.engine import StackEngine
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
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.version = version
        self.stack = stack  # the stack name (without project)
        self.previous = previous

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
        result = stacks.reapply(self.engine, self.registry.store, release, self.stack, prove=False)
        return Applied(
            changed=True,
            prior={"version": self.previous},
            detail={"counts": result.up.counts(), "refreshed": result.refreshed},
        )

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
        if not differences and hasattr(self.engine, "read_live"):
            report = stacks.verify(
                self.engine, self.stack, self.engine.export(self.stack), self.version
            )
            found.append(
                evidence(
                    f"{self.engine.name}.read_live",
                    {"checked": report.checked, "drift": [vars(d) for d in report.drift][:20]},
                    report.ok,
                    "" if report.ok else f"{len(report.drift)} drifted properties",
                )
            )
        return found

    def compensation_colors(self, prior: dict[str, Any]) -> list[str]:
        """The colours the previous release's program sends traffic to.

        Re-applying it re-applies its weights too, so the executor must treat
        this compensation like a traffic shift: only towards a healthy colour.
        """
        version = prior.get("version")
        if not version:
            return []
        release = self.registry.show(str(version)).release
        if release.topology is None:
            return [release.color] if release.color else []
        return [self.registry.topology(release).live_color]

    def compensate(self, prior: dict[str, Any]) -> None:
        from rollback import stacks

        version = prior.get("version")
        if not version:
            return
        release = self.registry.show(str(version)).release
        stacks.reapply(self.engine, self.registry.store, release, self.stack)
