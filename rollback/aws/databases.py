"""The two kinds of database a topology names: an RDS DB instance or an Aurora DB cluster.

The database steps, the planner, preflight and `release record` work on either
through one small typed wrapper per kind over `Rds`, chosen by the topology's
`db_kind` (`databases(rds, kind)`). Both speak the same verbs: find, snapshot,
restore a copy, rename, wait. What differs stays here:

- instance: a snapshot is a DB snapshot; a restore is one call.
- cluster: a snapshot is a DB cluster snapshot; a restore is
  RestoreDBClusterFromSnapshot, which "only restores the DB cluster, not the
  DB instances", plus CreateDBInstance in the new cluster (AWS RDS API
  reference, RestoreDBClusterFromSnapshot). Renaming a cluster
  (ModifyDBCluster NewDBClusterIdentifier) moves its endpoint with the name,
  and the endpoint's other part is the account and region's own
  (`<id>.cluster-<account-region id>.<region>.rds.amazonaws.com`; Aurora user
  guide, "Amazon Aurora endpoint connections"), so the restored cluster
  renamed to the original identifier answers at the endpoint applications use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar

from rollback.aws.rds import (
    INSTANCE_ID_MAX,
    DbCluster,
    DbInstance,
    DbSnapshot,
    Rds,
    rds_identifier,
)
from rollback.errors import UsageError
from rollback.models import DB_KINDS
from rollback.waiting import Timing

_Record = TypeVar("_Record", DbInstance, DbCluster)


class Database(Protocol):
    """What the steps read of a DB instance or an Aurora cluster (`DbInstance`, `DbCluster`)."""

    @property
    def identifier(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def endpoint(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def tags(self) -> dict[str, str]: ...

    def settings(self) -> dict[str, object]: ...


class Databases(Protocol):
    """One kind of database: its reads, snapshots, restores and renames."""

    kind: str  # instance | cluster
    noun: str  # "DB instance" | "DB cluster", for sentences
    describe_api: str  # the read that evidence names
    snapshot_api: str

    def find(self, identifier: str) -> Database | None: ...

    def find_snapshot(self, snapshot_id: str) -> DbSnapshot | None: ...

    def create_snapshot(
        self, snapshot_id: str, source_id: str, tags: dict[str, str]
    ) -> DbSnapshot: ...

    def wait_snapshot_available(
        self, snapshot_id: str, timeout_s: float, timing: Timing | None = None
    ) -> DbSnapshot: ...

    def restore(
        self, new_id: str, snapshot_id: str, like: Database, tags: dict[str, str]
    ) -> None: ...

    def wait_available(
        self, identifier: str, timeout_s: float, timing: Timing | None = None
    ) -> Database: ...

    def rename(self, identifier: str, new_id: str) -> None: ...

    def wait_renamed(
        self, old_id: str, new_id: str, timeout_s: float, timing: Timing
    ) -> Database: ...

    def tag(self, database: Database, tags: dict[str, str]) -> None: ...

    def follow(self, identifier: str, former: str, timeout_s: float, timing: Timing) -> None: ...


class Instances:
    """RDS DB instances and their DB snapshots."""

    kind = "instance"
    noun = "DB instance"
    describe_api = "rds:DescribeDBInstances"
    snapshot_api = "rds:DescribeDBSnapshots"

    def __init__(self, rds: Rds) -> None:
        self.rds = rds

    def find(self, identifier: str) -> DbInstance | None:
        return self.rds.find_instance(identifier)

    def find_snapshot(self, snapshot_id: str) -> DbSnapshot | None:
        return self.rds.find_snapshot(snapshot_id)

    def create_snapshot(self, snapshot_id: str, source_id: str, tags: dict[str, str]) -> DbSnapshot:
        return self.rds.create_snapshot(snapshot_id, source_id, tags)

    def wait_snapshot_available(
        self, snapshot_id: str, timeout_s: float, timing: Timing | None = None
    ) -> DbSnapshot:
        return self.rds.wait_snapshot_available(snapshot_id, timeout_s, timing)

    def restore(self, new_id: str, snapshot_id: str, like: Database, tags: dict[str, str]) -> None:
        """Restore `snapshot_id` as instance `new_id` with `like`'s settings, unless it exists."""
        if self.rds.find_instance(new_id) is None:
            self.rds.restore_from_snapshot(new_id, snapshot_id, _of(like, DbInstance), tags)

    def wait_available(
        self, identifier: str, timeout_s: float, timing: Timing | None = None
    ) -> DbInstance:
        return self.rds.wait_instance_available(identifier, timeout_s, timing)

    def rename(self, identifier: str, new_id: str) -> None:
        self.rds.rename_instance(identifier, new_id)

    def wait_renamed(
        self, old_id: str, new_id: str, timeout_s: float, timing: Timing
    ) -> DbInstance:
        return self.rds.wait_renamed(old_id, new_id, timeout_s, timing)

    def tag(self, database: Database, tags: dict[str, str]) -> None:
        self.rds.tag_instance(_of(database, DbInstance), tags)

    def follow(self, identifier: str, former: str, timeout_s: float, timing: Timing) -> None:
        """Nothing is named after an instance."""


class Clusters:
    """Aurora DB clusters (with their DB instances) and their DB cluster snapshots."""

    kind = "cluster"
    noun = "DB cluster"
    describe_api = "rds:DescribeDBClusters"
    snapshot_api = "rds:DescribeDBClusterSnapshots"

    def __init__(self, rds: Rds) -> None:
        self.rds = rds

    def find(self, identifier: str) -> DbCluster | None:
        return self.rds.find_cluster(identifier)

    def find_snapshot(self, snapshot_id: str) -> DbSnapshot | None:
        return self.rds.find_cluster_snapshot(snapshot_id)

    def create_snapshot(self, snapshot_id: str, source_id: str, tags: dict[str, str]) -> DbSnapshot:
        return self.rds.create_cluster_snapshot(snapshot_id, source_id, tags)

    def wait_snapshot_available(
        self, snapshot_id: str, timeout_s: float, timing: Timing | None = None
    ) -> DbSnapshot:
        return self.rds.wait_cluster_snapshot_available(snapshot_id, timeout_s, timing)

    def restore(self, new_id: str, snapshot_id: str, like: Database, tags: dict[str, str]) -> None:
        """Restore `snapshot_id` as cluster `new_id` with `like`'s settings, and give it a writer
        instance of the class of `like`'s writer; each part only when it is missing (resumable).

        The instance is `<new_id>-1`: a rename of the cluster keeps its instances.
        """
        template = _of(like, DbCluster)
        restored = self.rds.find_cluster(new_id)
        if restored is None:
            restored = self.rds.restore_cluster_from_snapshot(new_id, snapshot_id, template, tags)
        if not restored.members:
            writer = self.rds.find_instance(template.members[0]) if template.members else None
            self.rds.create_cluster_instance(rds_identifier(new_id, "1"), restored, writer, tags)

    def wait_available(
        self, identifier: str, timeout_s: float, timing: Timing | None = None
    ) -> DbCluster:
        return self.rds.wait_cluster_available(identifier, timeout_s, timing)

    def rename(self, identifier: str, new_id: str) -> None:
        self.rds.rename_cluster(identifier, new_id)

    def wait_renamed(self, old_id: str, new_id: str, timeout_s: float, timing: Timing) -> DbCluster:
        return self.rds.wait_cluster_renamed(old_id, new_id, timeout_s, timing)

    def tag(self, database: Database, tags: dict[str, str]) -> None:
        self.rds.tag_cluster(_of(database, DbCluster), tags)

    def follow(self, identifier: str, former: str, timeout_s: float, timing: Timing) -> None:
        """The instances of cluster `identifier` named after its former name `former`
        (`<former>-1`) take the new one (`<identifier>-1`); others keep theirs.

        So the stack's own instance (`fargate-dev-db-1`) is again the writer of
        the cluster the stack names once the restored cluster holds that name,
        and the cluster set aside keeps its instance under the aside name.
        Idempotent: an instance already named after `identifier` stays, also
        when one name starts with the other. Raises AlreadyExists when the
        new name is taken (by another cluster's instance).
        """
        cluster = self.rds.find_cluster(identifier)
        if cluster is None:
            return
        old, new = f"{former}-", f"{identifier}-"
        for member in cluster.members:
            # Of two names where one starts with the other, the longer one is the owner.
            if not member.startswith(old) or (member.startswith(new) and len(new) >= len(old)):
                continue
            target = new + member[len(old) :]
            if len(target) > INSTANCE_ID_MAX:
                continue  # RDS would refuse the name: the instance keeps its own
            instance = self.rds.find_instance(member)
            if instance is not None and instance.status != "renaming":
                self.rds.rename_instance(member, target)
            self.rds.wait_renamed(member, target, timeout_s, timing)


def databases(rds: Rds, kind: str) -> Instances | Clusters:
    """The wrapper for the topology's `db_kind`; raises UsageError for another kind."""
    if kind == "instance":
        return Instances(rds)
    if kind == "cluster":
        return Clusters(rds)
    raise UsageError(
        f"database kind {kind!r} is not one of {', '.join(DB_KINDS)}; see docs/topology.md."
    )


def _of(database: Database, kind: type[_Record]) -> _Record:
    """`database` as the record type of this wrapper's kind."""
    if not isinstance(database, kind):
        raise UsageError(
            f"{database.identifier} is not a {kind.__name__}; the topology's db_kind does not "
            "match the database it names."
        )
    return database
