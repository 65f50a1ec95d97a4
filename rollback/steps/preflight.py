"""Preflight: prove the target release is intact and reachable before anything moves.

Read-only: apply changes nothing; verify re-hashes the release's blobs in the
store, checks the snapshot a restore would use, and the receiving target group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollback.errors import IntegrityError, NotFound
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence

if TYPE_CHECKING:
    from rollback.aws.elbv2 import LoadBalancing
    from rollback.aws.rds import Rds
    from rollback.store import Store


class PreflightStep:
    kind = "preflight"

    def __init__(
        self,
        store: Store,
        blobs: list[str],
        elbv2: LoadBalancing | None = None,
        target_group: str | None = None,
        rds: Rds | None = None,
        snapshot_id: str | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.elbv2 = elbv2
        self.target_group = target_group
        self.rds = rds
        self.snapshot_id = snapshot_id

    def describe(self) -> StepDescription:
        return StepDescription(
            self.kind,
            "check the release's stored blobs, the snapshot and the receiving targets",
            {
                "blobs": self.blobs,
                "snapshot_id": self.snapshot_id,
                "target_group": self.target_group,
            },
        )

    def apply(self) -> Applied:
        return Applied(changed=False)

    def verify(self) -> list[Evidence]:
        found = []
        for digest in self.blobs:
            try:
                ref = self.store.verify_blob(digest)
                found.append(
                    evidence("store.verify_blob", {"sha256": digest, "size": ref.size}, True)
                )
            except (IntegrityError, NotFound) as exc:
                found.append(evidence("store.verify_blob", {"sha256": digest}, False, exc.message))
        if self.snapshot_id and self.rds is not None:
            snap = self.rds.find_snapshot(self.snapshot_id)
            status = snap.status if snap else None
            found.append(
                evidence(
                    "rds.describe_db_snapshots",
                    {"snapshot_id": self.snapshot_id, "status": status},
                    status == "available",
                    ""
                    if status == "available"
                    else f"snapshot {self.snapshot_id} is {status or 'missing'}",
                )
            )
        if self.target_group and self.elbv2 is not None:
            health = self.elbv2.target_health(self.target_group)
            routable = [t.target_id for t in health if t.routable]
            found.append(
                evidence(
                    "elbv2.describe_target_health",
                    {
                        "target_group": self.target_group,
                        "routable": routable,
                        "targets": len(health),
                    },
                    bool(routable),
                    "" if routable else "the receiving target group has no healthy target",
                )
            )
        return found

    def compensate(self, prior: dict[str, Any]) -> None:
        """Nothing to undo: preflight only reads."""
