"""Preflight: prove the target release is intact before anything moves.

Read-only: apply changes nothing; verify re-hashes the release's blobs in the
store and checks the snapshot a restore would use. (The receiving colour's
health is the traffic step's own precondition.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollback.errors import IntegrityError, NotFound
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence

if TYPE_CHECKING:
    from rollback.aws.rds import Rds
    from rollback.store import Store


class PreflightStep:
    kind = "preflight"
    read_only = True  # its journal records may wait for the next change's (executor.go)

    def __init__(
        self,
        store: Store,
        blobs: list[str],
        rds: Rds | None = None,
        snapshot_id: str | None = None,
        db_kind: str = "instance",
    ) -> None:
        from rollback.aws.databases import databases

        self.store = store
        self.blobs = blobs
        self.db = databases(rds, db_kind) if rds is not None else None
        self.snapshot_id = snapshot_id

    def describe(self) -> StepDescription:
        return StepDescription(
            self.kind,
            "check the release's stored blobs and the snapshot a restore would use",
            {"blobs": self.blobs, "snapshot_id": self.snapshot_id},
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
        if self.snapshot_id and self.db is not None:
            snap = self.db.find_snapshot(self.snapshot_id)
            status = snap.status if snap else None
            found.append(
                evidence(
                    self.db.snapshot_api,
                    {"snapshot_id": self.snapshot_id, "status": status},
                    status == "available",
                    ""
                    if status == "available"
                    else f"snapshot {self.snapshot_id} is {status or 'missing'}",
                )
            )
        return found

    def compensate(self, prior: dict[str, Any]) -> None:
        """Nothing to undo: preflight only reads."""
