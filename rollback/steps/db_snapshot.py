"""db-snapshot: snapshot the live database before a rollback touches it.

The database is a DB instance or an Aurora DB cluster (the topology's
`db_kind`; `rollback.aws.databases`): a DB snapshot of the one, a DB cluster
snapshot of the other. The snapshot is named after the run, so a resumed run finds and reuses it, and
it is never deleted: a rollback never destroys data that cannot be recovered.
"""

from __future__ import annotations

from typing import Any

from rollback.aws.databases import Databases, databases
from rollback.aws.rds import SNAPSHOT_ID_MAX, DbSnapshot, Rds, rds_identifier
from rollback.errors import AlreadyExists, NotFound
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence
from rollback.waiting import Timing

RUN_TAG = "rollback:run"
PURPOSE_TAG = "rollback:purpose"


def pre_rollback_snapshot_id(instance_id: str, run_id: str) -> str:
    """`<instance>-pre-rollback-<run_id>`, made valid under RDS naming rules."""
    return rds_identifier(instance_id, "pre-rollback", run_id, limit=SNAPSHOT_ID_MAX)


def snapshot_evidence(db: Databases, snapshot_id: str, source_ids: set[str]) -> Evidence:
    """Read `snapshot_id` back: it exists, is available and was taken of one of `source_ids`.

    More than one source name is accepted because the restore step renames the
    database aside; a snapshot keeps the name its database had when it was taken.
    """
    found = db.find_snapshot(snapshot_id)
    if found is None:
        return evidence(
            db.snapshot_api,
            {"snapshot_id": snapshot_id, "exists": False},
            False,
            f"snapshot {snapshot_id} does not exist",
        )
    ok = found.status == "available" and found.source_id in source_ids
    note = (
        ""
        if ok
        else (
            f"snapshot {snapshot_id} is {found.status}, of {db.noun} {found.source_id}; "
            f"expected available, of {' or '.join(sorted(source_ids))}"
        )
    )
    return evidence(db.snapshot_api, _observed(found, db.kind), ok, note)


def _observed(snapshot: DbSnapshot, kind: str) -> dict[str, Any]:
    return {
        "snapshot_id": snapshot.identifier,
        "exists": True,
        "status": snapshot.status,
        f"source_{kind}": snapshot.source_id,
        "snapshot_type": snapshot.snapshot_type,
        "created_at": snapshot.created_at.isoformat() if snapshot.created_at else None,
        "arn": snapshot.arn,
    }


class DbSnapshotStep:
    """Snapshot `instance_id` (a DB instance or, with `db_kind="cluster"`, an Aurora cluster)
    as `<id>-pre-rollback-<run_id>` and wait until available."""

    kind = "db-snapshot"

    def __init__(
        self,
        rds: Rds,
        instance_id: str,
        run_id: str,
        timing: Timing,
        timeout_s: float = 3600.0,
        db_kind: str = "instance",
    ) -> None:
        self.db = databases(rds, db_kind)
        self.instance_id = instance_id
        self.run_id = run_id
        self.timing = timing
        self.timeout_s = timeout_s
        self.snapshot_id = pre_rollback_snapshot_id(instance_id, run_id)

    def describe(self) -> StepDescription:
        return StepDescription(
            kind=self.kind,
            summary=f"snapshot {self.db.noun} {self.instance_id} as {self.snapshot_id}",
            changes={
                "instance_id": self.instance_id,
                "db_kind": self.db.kind,
                "snapshot_id": self.snapshot_id,
            },
            reason=(
                "keeps the current data before anything touches the database; compensation "
                "has nothing to undo: the snapshot is kept, a rollback never destroys data"
            ),
            expected_seconds=600.0,
        )

    def apply(self) -> Applied:
        """Create the snapshot unless this run already has it; wait until available.

        Raises AlreadyExists when a snapshot of that name belongs to another
        database, NotFound when the database does not exist.
        """
        existing = self.db.find_snapshot(self.snapshot_id)
        changed = False
        if existing is not None and existing.source_id != self.instance_id:
            raise AlreadyExists(
                f"snapshot {self.snapshot_id} exists but is of {self.db.noun} "
                f"{existing.source_id}, not {self.instance_id}; choose another run id.",
                snapshot_id=self.snapshot_id,
            )
        if existing is None:
            if self.db.find(self.instance_id) is None:
                raise NotFound(
                    f"{self.db.noun} {self.instance_id} does not exist.",
                    instance_id=self.instance_id,
                )
            self.db.create_snapshot(
                self.snapshot_id,
                self.instance_id,
                {RUN_TAG: self.run_id, PURPOSE_TAG: "pre-rollback"},
            )
            changed = True
        snapshot = self.db.wait_snapshot_available(self.snapshot_id, self.timeout_s, self.timing)
        return Applied(
            changed=changed,
            prior={"snapshot_id": self.snapshot_id, "created": changed},
            detail=_observed(snapshot, self.db.kind),
        )

    def verify(self) -> list[Evidence]:
        return [snapshot_evidence(self.db, self.snapshot_id, {self.instance_id})]

    def compensate(self, prior: dict[str, Any]) -> None:
        """Nothing to undo: the snapshot is kept on purpose (it holds the pre-rollback data)."""
