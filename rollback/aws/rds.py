"""A small typed wrapper over the RDS client: instances, Aurora clusters, their snapshots,
restores and renames.

Every botocore error becomes a `rollback.errors` class: a missing instance or
snapshot is NotFound, a taken identifier AlreadyExists, anything else
CloudError. Reads return frozen records, never raw response dictionaries.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rollback.errors import AlreadyExists, CloudError, NotFound, UsageError
from rollback.waiting import Timing, poll

log = logging.getLogger(__name__)

INSTANCE_ID_MAX = 63
SNAPSHOT_ID_MAX = 255
_NOT_FOUND = {
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterNotFoundFault",
    "DBClusterSnapshotNotFoundFault",
}
_EXISTS = {
    "DBInstanceAlreadyExists",
    "DBInstanceAlreadyExistsFault",
    "DBSnapshotAlreadyExists",
    "DBSnapshotAlreadyExistsFault",
    "DBClusterAlreadyExistsFault",
    "DBClusterSnapshotAlreadyExistsFault",
}
_WAITER_DELAY_S = 15  # seconds between status reads once a wait has grown (botocore's delay)
# The failure states of botocore's db_instance_available / db_snapshot_available waiters.
_FAILED_STATUSES = frozenset(
    {"deleted", "deleting", "failed", "incompatible-restore", "incompatible-parameters"}
)


def rds_identifier(*parts: str, limit: int = INSTANCE_ID_MAX) -> str:
    """Join `parts` with hyphens into a valid RDS identifier of at most `limit` characters.

    RDS identifiers start with a letter, hold only letters, digits and single
    hyphens, do not end with a hyphen, and are stored lower-case. Other
    characters become hyphens. A name that is too long keeps its head and gets
    a short hash of the whole name, so the result stays deterministic (a
    resumed run finds the same name) and distinct per run.
    """
    name = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"r-{name}".rstrip("-")
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"
    return name


@dataclass(frozen=True)
class DbInstance:
    """One RDS instance as describe_db_instances reports it."""

    identifier: str
    status: str
    arn: str
    engine: str
    engine_version: str
    instance_class: str
    subnet_group: str | None
    parameter_groups: tuple[str, ...]
    security_groups: tuple[str, ...]
    option_groups: tuple[str, ...]
    multi_az: bool
    storage_type: str | None
    allocated_storage: int
    iops: int | None
    storage_throughput: int | None
    port: int | None
    publicly_accessible: bool
    deletion_protection: bool
    copy_tags_to_snapshot: bool
    auto_minor_version_upgrade: bool
    iam_auth: bool
    availability_zone: str | None
    endpoint: str | None
    created_at: datetime | None
    tags: dict[str, str] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The settings a restore must carry over (a restore does not copy them by itself)."""
        return {
            "instance_class": self.instance_class,
            "subnet_group": self.subnet_group,
            "parameter_groups": sorted(self.parameter_groups),
            "security_groups": sorted(self.security_groups),
            "option_groups": sorted(self.option_groups),
            "multi_az": self.multi_az,
            "storage_type": self.storage_type,
            "allocated_storage": self.allocated_storage,
            "iops": self.iops,
            "storage_throughput": self.storage_throughput,
            "port": self.port,
            "publicly_accessible": self.publicly_accessible,
            "deletion_protection": self.deletion_protection,
            "copy_tags_to_snapshot": self.copy_tags_to_snapshot,
            "auto_minor_version_upgrade": self.auto_minor_version_upgrade,
            "iam_auth": self.iam_auth,
        }

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> DbInstance:
        subnet = data.get("DBSubnetGroup") or {}
        endpoint = data.get("Endpoint") or {}
        return cls(
            identifier=str(data["DBInstanceIdentifier"]),
            status=str(data.get("DBInstanceStatus", "")),
            arn=str(data.get("DBInstanceArn", "")),
            engine=str(data.get("Engine", "")),
            engine_version=str(data.get("EngineVersion", "")),
            instance_class=str(data.get("DBInstanceClass", "")),
            subnet_group=subnet.get("DBSubnetGroupName"),
            parameter_groups=tuple(
                str(p["DBParameterGroupName"]) for p in data.get("DBParameterGroups") or []
            ),
            security_groups=tuple(
                str(g["VpcSecurityGroupId"]) for g in data.get("VpcSecurityGroups") or []
            ),
            option_groups=tuple(
                str(g["OptionGroupName"]) for g in data.get("OptionGroupMemberships") or []
            ),
            multi_az=bool(data.get("MultiAZ", False)),
            storage_type=data.get("StorageType"),
            allocated_storage=int(data.get("AllocatedStorage") or 0),
            iops=data.get("Iops"),
            storage_throughput=data.get("StorageThroughput"),
            port=endpoint.get("Port") or data.get("DbInstancePort"),
            publicly_accessible=bool(data.get("PubliclyAccessible", False)),
            deletion_protection=bool(data.get("DeletionProtection", False)),
            copy_tags_to_snapshot=bool(data.get("CopyTagsToSnapshot", False)),
            auto_minor_version_upgrade=bool(data.get("AutoMinorVersionUpgrade", True)),
            iam_auth=bool(data.get("IAMDatabaseAuthenticationEnabled", False)),
            availability_zone=data.get("AvailabilityZone"),
            endpoint=endpoint.get("Address"),
            created_at=data.get("InstanceCreateTime"),
            tags={str(t["Key"]): str(t["Value"]) for t in data.get("TagList") or []},
        )


@dataclass(frozen=True)
class DbCluster:
    """One Aurora DB cluster as describe_db_clusters reports it."""

    identifier: str
    status: str
    arn: str
    engine: str
    engine_version: str
    subnet_group: str | None
    parameter_group: str | None
    security_groups: tuple[str, ...]
    members: tuple[str, ...]  # its DB instances, the writer first
    port: int | None
    deletion_protection: bool
    copy_tags_to_snapshot: bool
    iam_auth: bool
    storage_encrypted: bool
    kms_key_id: str | None
    endpoint: str | None  # the cluster (writer) endpoint applications use
    reader_endpoint: str | None
    created_at: datetime | None
    tags: dict[str, str] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The settings a restore must carry over (RestoreDBClusterFromSnapshot takes the
        snapshot's own otherwise: default parameter and security groups among them)."""
        return {
            "engine": self.engine,
            "subnet_group": self.subnet_group,
            "parameter_group": self.parameter_group,
            "security_groups": sorted(self.security_groups),
            "port": self.port,
            "deletion_protection": self.deletion_protection,
            "copy_tags_to_snapshot": self.copy_tags_to_snapshot,
            "iam_auth": self.iam_auth,
            "storage_encrypted": self.storage_encrypted,
        }

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> DbCluster:
        members = sorted(
            data.get("DBClusterMembers") or [], key=lambda m: not m.get("IsClusterWriter")
        )
        subnet = data.get("DBSubnetGroup")
        return cls(
            identifier=str(data["DBClusterIdentifier"]),
            status=str(data.get("Status", "")),
            arn=str(data.get("DBClusterArn", "")),
            engine=str(data.get("Engine", "")),
            engine_version=str(data.get("EngineVersion", "")),
            # DescribeDBClusters gives the subnet group's name as a string.
            subnet_group=str(subnet) if subnet else None,
            parameter_group=data.get("DBClusterParameterGroup"),
            security_groups=tuple(
                str(g["VpcSecurityGroupId"]) for g in data.get("VpcSecurityGroups") or []
            ),
            members=tuple(str(m["DBInstanceIdentifier"]) for m in members),
            port=data.get("Port"),
            deletion_protection=bool(data.get("DeletionProtection", False)),
            copy_tags_to_snapshot=bool(data.get("CopyTagsToSnapshot", False)),
            iam_auth=bool(data.get("IAMDatabaseAuthenticationEnabled", False)),
            storage_encrypted=bool(data.get("StorageEncrypted", False)),
            kms_key_id=data.get("KmsKeyId"),
            endpoint=data.get("Endpoint"),
            reader_endpoint=data.get("ReaderEndpoint"),
            created_at=data.get("ClusterCreateTime"),
            tags={str(t["Key"]): str(t["Value"]) for t in data.get("TagList") or []},
        )


@dataclass(frozen=True)
class DbSnapshot:
    """One RDS instance snapshot or Aurora cluster snapshot as RDS describes it."""

    identifier: str
    source_id: str  # the instance's (or cluster's) identifier when the snapshot was taken
    status: str
    arn: str
    snapshot_type: str
    engine: str
    allocated_storage: int
    created_at: datetime | None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> DbSnapshot:
        return cls(
            identifier=str(data["DBSnapshotIdentifier"]),
            source_id=str(data.get("DBInstanceIdentifier", "")),
            status=str(data.get("Status", "")),
            arn=str(data.get("DBSnapshotArn", "")),
            snapshot_type=str(data.get("SnapshotType", "")),
            engine=str(data.get("Engine", "")),
            allocated_storage=int(data.get("AllocatedStorage") or 0),
            created_at=data.get("SnapshotCreateTime"),
            tags={str(t["Key"]): str(t["Value"]) for t in data.get("TagList") or []},
        )

    @classmethod
    def from_cluster_api(cls, data: dict[str, Any]) -> DbSnapshot:
        return cls(
            identifier=str(data["DBClusterSnapshotIdentifier"]),
            source_id=str(data.get("DBClusterIdentifier", "")),
            status=str(data.get("Status", "")),
            arn=str(data.get("DBClusterSnapshotArn", "")),
            snapshot_type=str(data.get("SnapshotType", "")),
            engine=str(data.get("Engine", "")),
            allocated_storage=int(data.get("AllocatedStorage") or 0),
            created_at=data.get("SnapshotCreateTime"),
            tags={str(t["Key"]): str(t["Value"]) for t in data.get("TagList") or []},
        )


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@contextmanager
def _errors(action: str) -> Iterator[None]:
    """Turn botocore errors raised inside into NotFound, AlreadyExists or CloudError."""
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = _code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in _NOT_FOUND:
            raise NotFound(f"{action}: {message}", aws_code=code) from exc
        if code in _EXISTS:
            raise AlreadyExists(f"{action}: {message}", aws_code=code) from exc
        if code in {"InvalidParameterValue", "InvalidParameterCombination"}:
            raise UsageError(f"{action}: {message}", aws_code=code) from exc
        raise CloudError(f"{action} failed ({code}): {message}", aws_code=code) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise CloudError(f"{action} failed: {exc}") from exc


class Rds:
    """RDS operations the database steps need; takes a boto3 `rds` client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    # Instances

    def _find_one(
        self, what: str, describe: Callable[..., Any], items: str, **name: str
    ) -> dict[str, Any] | None:
        """The one item `describe(**name)` answers under `items`, or None when RDS says not found."""
        try:
            with _errors(f"describing {what}"):
                found = describe(**name).get(items) or []
        except NotFound:
            return None
        return dict(found[0]) if found else None

    def find_instance(self, instance_id: str) -> DbInstance | None:
        """The instance named `instance_id`, or None when no instance has that name."""
        found = self._find_one(
            f"DB instance {instance_id}",
            self._client.describe_db_instances,
            "DBInstances",
            DBInstanceIdentifier=instance_id,
        )
        return DbInstance.from_api(found) if found else None

    def instance(self, instance_id: str) -> DbInstance:
        """The instance named `instance_id`; raises NotFound."""
        found = self.find_instance(instance_id)
        if found is None:
            raise NotFound(f"DB instance {instance_id} does not exist.", instance_id=instance_id)
        return found

    def instance_ids(self) -> list[str]:
        """Every instance identifier in the region, sorted."""
        ids: list[str] = []
        with _errors("listing DB instances"):
            for page in self._client.get_paginator("describe_db_instances").paginate():
                ids.extend(str(i["DBInstanceIdentifier"]) for i in page.get("DBInstances") or [])
        return sorted(ids)

    def restore_from_snapshot(
        self, new_id: str, snapshot_id: str, like: DbInstance, tags: dict[str, str]
    ) -> DbInstance:
        """Restore `snapshot_id` into a new instance `new_id` with the settings of `like`.

        A restore takes only the snapshot's own settings (default parameter and
        security groups among them), so every setting of `like` is passed
        explicitly. Raises AlreadyExists when `new_id` is taken.
        """
        args: dict[str, Any] = {
            "DBInstanceIdentifier": new_id,
            "DBSnapshotIdentifier": snapshot_id,
            "DBInstanceClass": like.instance_class,
            "MultiAZ": like.multi_az,
            "PubliclyAccessible": like.publicly_accessible,
            "AllocatedStorage": like.allocated_storage,
            "DeletionProtection": like.deletion_protection,
            "CopyTagsToSnapshot": like.copy_tags_to_snapshot,
            "AutoMinorVersionUpgrade": like.auto_minor_version_upgrade,
            "EnableIAMDatabaseAuthentication": like.iam_auth,
            "Tags": _tag_list(tags),
        }
        optional = {
            "DBSubnetGroupName": like.subnet_group,
            "StorageType": like.storage_type,
            "Iops": like.iops,
            "StorageThroughput": like.storage_throughput,
            "Port": like.port,
            "DBParameterGroupName": like.parameter_groups[0] if like.parameter_groups else None,
            "OptionGroupName": next(
                (g for g in like.option_groups if not g.startswith("default:")), None
            ),
            "VpcSecurityGroupIds": list(like.security_groups) or None,
        }
        # A default option group is what a restore gets by itself, for the snapshot's
        # engine version; naming the live one's would fail across major versions.
        args.update({k: v for k, v in optional.items() if v is not None})
        # Multi-AZ instances must not name a zone; single-AZ ones stay in the same zone.
        if not like.multi_az and like.availability_zone:
            args["AvailabilityZone"] = like.availability_zone
        with _errors(f"restoring snapshot {snapshot_id} into {new_id}"):
            made = self._client.restore_db_instance_from_db_snapshot(**args)
        return DbInstance.from_api(made["DBInstance"])

    def rename_instance(self, instance_id: str, new_id: str) -> None:
        """Rename an instance now (ApplyImmediately); its endpoint follows the new name.

        Refuses with AlreadyExists when `new_id` is taken: some endpoints
        (moto among them) would silently replace the instance of that name.
        """
        if self.find_instance(new_id) is not None:
            raise AlreadyExists(
                f"cannot rename DB instance {instance_id} to {new_id}: that identifier is taken.",
                instance_id=new_id,
            )
        with _errors(f"renaming DB instance {instance_id} to {new_id}"):
            self._client.modify_db_instance(
                DBInstanceIdentifier=instance_id,
                NewDBInstanceIdentifier=new_id,
                ApplyImmediately=True,
            )

    def tag_instance(self, instance: DbInstance, tags: dict[str, str]) -> None:
        """Add or overwrite tags on `instance` (by its ARN)."""
        self._tag(f"DB instance {instance.identifier}", instance.arn, tags)

    def _tag(self, what: str, arn: str, tags: dict[str, str]) -> None:
        with _errors(f"tagging {what}"):
            self._client.add_tags_to_resource(ResourceName=arn, Tags=_tag_list(tags))

    def wait_instance_available(
        self, instance_id: str, timeout_s: float, timing: Timing | None = None
    ) -> DbInstance:
        """Poll until `instance_id` is available; return it.

        Our poll, not the boto3 waiter: a restore takes up to hours and each
        wait reports its last observed status (`timing.on_wait`). Raises
        CheckFailed on timeout, CloudError when the instance fails (e.g.
        incompatible-restore), as the waiter's failure states say.
        """
        found: DbInstance = self._wait_status(
            f"DB instance {instance_id} to be available",
            lambda: self.find_instance(instance_id),
            timeout_s,
            timing,
        )
        return found

    def wait_renamed(
        self, old_id: str, new_id: str, timeout_s: float, timing: Timing
    ) -> DbInstance:
        """Poll until `new_id` is available and `old_id` is gone; return the instance.

        No waiter fits: the available-waiter fails on DBInstanceNotFound while
        the rename is in flight, and right after modify_db_instance the old
        name still reads as available for a while.
        """
        found: DbInstance = _wait_renamed(
            f"DB instance {old_id} to be renamed {new_id}",
            self.find_instance,
            old_id,
            new_id,
            timeout_s,
            timing,
        )
        return found

    # Aurora clusters

    def find_cluster(self, cluster_id: str) -> DbCluster | None:
        """The Aurora cluster named `cluster_id`, or None."""
        found = self._find_one(
            f"DB cluster {cluster_id}",
            self._client.describe_db_clusters,
            "DBClusters",
            DBClusterIdentifier=cluster_id,
        )
        return DbCluster.from_api(found) if found else None

    def restore_cluster_from_snapshot(
        self, new_id: str, snapshot_id: str, like: DbCluster, tags: dict[str, str]
    ) -> DbCluster:
        """Restore cluster snapshot `snapshot_id` into a new cluster `new_id` with the settings
        of `like`. It has no DB instance yet (see `create_cluster_instance`).

        RestoreDBClusterFromSnapshot "only restores the DB cluster, not the DB
        instances" and otherwise applies the default security and parameter
        groups, so `like`'s are passed (AWS RDS API reference,
        RestoreDBClusterFromSnapshot). Raises AlreadyExists when `new_id` is taken.
        """
        args: dict[str, Any] = {
            "DBClusterIdentifier": new_id,
            "SnapshotIdentifier": snapshot_id,
            "Engine": like.engine,
            "DeletionProtection": like.deletion_protection,
            "CopyTagsToSnapshot": like.copy_tags_to_snapshot,
            "EnableIAMDatabaseAuthentication": like.iam_auth,
            "Tags": _tag_list(tags),
        }
        optional = {
            "DBSubnetGroupName": like.subnet_group,
            "DBClusterParameterGroupName": like.parameter_group,
            "VpcSecurityGroupIds": list(like.security_groups) or None,
            "Port": like.port,
        }
        args.update({k: v for k, v in optional.items() if v is not None})
        with _errors(f"restoring cluster snapshot {snapshot_id} into {new_id}"):
            made = self._client.restore_db_cluster_from_snapshot(**args)
        return DbCluster.from_api(made["DBCluster"])

    def create_cluster_instance(
        self, instance_id: str, cluster: DbCluster, like: DbInstance | None, tags: dict[str, str]
    ) -> DbInstance:
        """A DB instance `instance_id` in `cluster`, of `like`'s class (a cluster serves
        nothing without one). Raises AlreadyExists when `instance_id` is taken."""
        args: dict[str, Any] = {
            "DBInstanceIdentifier": instance_id,
            "DBClusterIdentifier": cluster.identifier,
            "Engine": cluster.engine,
            "DBInstanceClass": like.instance_class if like else "db.r6g.large",
            "Tags": _tag_list(tags),
        }
        if like is not None:
            args["PubliclyAccessible"] = like.publicly_accessible
            args["AutoMinorVersionUpgrade"] = like.auto_minor_version_upgrade
            if like.subnet_group:
                args["DBSubnetGroupName"] = like.subnet_group
        with _errors(f"creating DB instance {instance_id} in cluster {cluster.identifier}"):
            made = self._client.create_db_instance(**args)
        return DbInstance.from_api(made["DBInstance"])

    def rename_cluster(self, cluster_id: str, new_id: str) -> None:
        """Rename a cluster now (ApplyImmediately); its endpoints follow the new name and its
        instances stay in it. Refuses with AlreadyExists when `new_id` is taken."""
        if self.find_cluster(new_id) is not None:
            raise AlreadyExists(
                f"cannot rename DB cluster {cluster_id} to {new_id}: that identifier is taken.",
                cluster_id=new_id,
            )
        with _errors(f"renaming DB cluster {cluster_id} to {new_id}"):
            self._client.modify_db_cluster(
                DBClusterIdentifier=cluster_id,
                NewDBClusterIdentifier=new_id,
                ApplyImmediately=True,
            )

    def tag_cluster(self, cluster: DbCluster, tags: dict[str, str]) -> None:
        """Add or overwrite tags on `cluster` (by its ARN)."""
        self._tag(f"DB cluster {cluster.identifier}", cluster.arn, tags)

    def wait_cluster_available(
        self, cluster_id: str, timeout_s: float, timing: Timing | None = None
    ) -> DbCluster:
        """Poll until the cluster and every instance of it are available; return the cluster.

        A cluster reads available before its new instance does, and serves
        nothing until that instance is up.
        """

        def read() -> DbCluster | None:
            found = self.find_cluster(cluster_id)
            if found is None or found.status != "available":
                return found
            for member in found.members:
                instance = self.find_instance(member)
                if instance is None or instance.status != "available":
                    state = instance.status if instance else "missing"
                    # A failed instance fails the wait; one on its way reads as the cluster's state.
                    failed = state in _FAILED_STATUSES
                    return replace(found, status=state if failed else f"instance {member} {state}")
            return found

        cluster: DbCluster = self._wait_status(
            f"DB cluster {cluster_id} to be available", read, timeout_s, timing
        )
        return cluster

    def wait_cluster_renamed(
        self, old_id: str, new_id: str, timeout_s: float, timing: Timing
    ) -> DbCluster:
        """Poll until cluster `new_id` is available and `old_id` is gone; return it."""
        found: DbCluster = _wait_renamed(
            f"DB cluster {old_id} to be renamed {new_id}",
            self.find_cluster,
            old_id,
            new_id,
            timeout_s,
            timing,
        )
        return found

    def find_cluster_snapshot(self, snapshot_id: str) -> DbSnapshot | None:
        """The cluster snapshot named `snapshot_id`, or None."""
        found = self._find_one(
            f"DB cluster snapshot {snapshot_id}",
            self._client.describe_db_cluster_snapshots,
            "DBClusterSnapshots",
            DBClusterSnapshotIdentifier=snapshot_id,
        )
        return DbSnapshot.from_cluster_api(found) if found else None

    def create_cluster_snapshot(
        self, snapshot_id: str, cluster_id: str, tags: dict[str, str]
    ) -> DbSnapshot:
        """Start a manual snapshot of cluster `cluster_id`; AlreadyExists when the name is taken."""
        with _errors(f"snapshotting DB cluster {cluster_id} as {snapshot_id}"):
            made = self._client.create_db_cluster_snapshot(
                DBClusterSnapshotIdentifier=snapshot_id,
                DBClusterIdentifier=cluster_id,
                Tags=_tag_list(tags),
            )
        return DbSnapshot.from_cluster_api(made["DBClusterSnapshot"])

    def wait_cluster_snapshot_available(
        self, snapshot_id: str, timeout_s: float, timing: Timing | None = None
    ) -> DbSnapshot:
        """Poll until cluster snapshot `snapshot_id` is available, reporting its status."""
        found: DbSnapshot = self._wait_status(
            f"DB cluster snapshot {snapshot_id} to be available",
            lambda: self.find_cluster_snapshot(snapshot_id),
            timeout_s,
            timing,
        )
        return found

    # Snapshots

    def find_snapshot(self, snapshot_id: str) -> DbSnapshot | None:
        """The snapshot named `snapshot_id`, or None."""
        found = self._find_one(
            f"DB snapshot {snapshot_id}",
            self._client.describe_db_snapshots,
            "DBSnapshots",
            DBSnapshotIdentifier=snapshot_id,
        )
        return DbSnapshot.from_api(found) if found else None

    def create_snapshot(
        self, snapshot_id: str, instance_id: str, tags: dict[str, str]
    ) -> DbSnapshot:
        """Start a manual snapshot of `instance_id`; raises AlreadyExists when the name is taken."""
        with _errors(f"snapshotting DB instance {instance_id} as {snapshot_id}"):
            made = self._client.create_db_snapshot(
                DBSnapshotIdentifier=snapshot_id,
                DBInstanceIdentifier=instance_id,
                Tags=_tag_list(tags),
            )
        return DbSnapshot.from_api(made["DBSnapshot"])

    def wait_snapshot_available(
        self, snapshot_id: str, timeout_s: float, timing: Timing | None = None
    ) -> DbSnapshot:
        """Poll until `snapshot_id` is available, reporting its status; return it."""
        found: DbSnapshot = self._wait_status(
            f"DB snapshot {snapshot_id} to be available",
            lambda: self.find_snapshot(snapshot_id),
            timeout_s,
            timing,
        )
        return found

    def _wait_status(
        self,
        what: str,
        read: Callable[[], Any],
        timeout_s: float,
        timing: Timing | None,
    ) -> Any:
        """Poll `read` (an instance or snapshot, or None) until its status is available.

        A failure status (the boto3 waiters' own list) raises CloudError at once.
        """
        seen = {"state": "not found yet"}

        def available() -> Any:
            found = read()
            if found is None:
                seen["state"] = "not found yet"
                return None
            seen["state"] = f"status {found.status}"
            if found.status in _FAILED_STATUSES:
                raise CloudError(
                    f"waiting for {what} failed: it is {found.status}.", waited_for=what
                )
            return found if found.status == "available" else None

        log.info("waiting for %s (up to %.0fs)", what, timeout_s)
        return poll(
            what,
            available,
            timeout=timeout_s,
            timing=timing or Timing(),
            interval=5.0,
            max_interval=float(_WAITER_DELAY_S),
            observe=lambda: seen["state"],
        )


def _wait_renamed(
    what: str,
    find: Callable[[str], Any],
    old_id: str,
    new_id: str,
    timeout_s: float,
    timing: Timing,
) -> Any:
    """Poll until `find(new_id)` is available and `find(old_id)` is None; return the former."""

    def renamed() -> Any:
        if find(old_id) is not None:
            return None
        new = find(new_id)
        return new if new is not None and new.status == "available" else None

    return poll(what, renamed, timeout=timeout_s, timing=timing, interval=5.0, max_interval=30.0)
