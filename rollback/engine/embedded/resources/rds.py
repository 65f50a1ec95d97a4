"""RDS: DB subnet groups and DB instances (PostgreSQL in the reference stack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags
from rollback.errors import EngineError

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType


def _retag(rds: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        rds.add_tags_to_resource(ResourceName=arn, Tags=aws_tags(to_set))
    if to_remove:
        rds.remove_tags_from_resource(ResourceName=arn, TagKeys=to_remove)


def _live_tags(rds: Any, arn: str) -> dict[str, str]:
    return pulumi_tags(rds.list_tags_for_resource(ResourceName=arn).get("TagList"))


@dataclass(frozen=True)
class SubnetGroup:
    """aws:rds/subnetGroup:SubnetGroup; id is the (lower-case) name. Subnets, description and tags change in place."""

    clients: Clients
    token = "aws:rds/subnetGroup:SubnetGroup"
    replace_on = frozenset({"name", "namePrefix", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group = physical_name(inputs, "name", name.lower(), 255).lower()
        with applying(self.token, name, "create"):
            self.clients("rds").create_db_subnet_group(
                DBSubnetGroupName=group,
                DBSubnetGroupDescription=inputs.get("description") or "Managed by Pulumi",
                SubnetIds=list(inputs.get("subnetIds") or []),
                Tags=aws_tags(inputs.get("tags")),
            )
        return group, present(self.read(group, inputs), self.token, group)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        rds = self.clients("rds")
        with applying(self.token, id, "update"):
            arn = rds.describe_db_subnet_groups(DBSubnetGroupName=id)["DBSubnetGroups"][0][
                "DBSubnetGroupArn"
            ]
            _retag(rds, arn, olds, news)
            if sorted(news.get("subnetIds") or []) != sorted(
                olds.get("subnetIds") or []
            ) or news.get("description") != olds.get("description"):
                rds.modify_db_subnet_group(
                    DBSubnetGroupName=id,
                    DBSubnetGroupDescription=news.get("description") or "Managed by Pulumi",
                    SubnetIds=list(news.get("subnetIds") or []),
                )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        rds = self.clients("rds")
        with applying(self.token, id, "read"):
            try:
                group = rds.describe_db_subnet_groups(DBSubnetGroupName=id)["DBSubnetGroups"][0]
            except ClientError as exc:
                if aws_code(exc) == "DBSubnetGroupNotFoundFault":
                    return None
                raise
            tags = _live_tags(rds, group["DBSubnetGroupArn"])
        outputs = {
            **inputs,
            "name": group["DBSubnetGroupName"],
            "description": group["DBSubnetGroupDescription"],
            "subnetIds": in_declared_order(
                [s["SubnetIdentifier"] for s in group.get("Subnets", [])], inputs.get("subnetIds")
            ),
            "vpcId": group.get("VpcId", ""),
            "arn": group["DBSubnetGroupArn"],
            "supportedNetworkTypes": list(group.get("SupportedNetworkTypes", [])),
        }
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("DBSubnetGroupNotFoundFault"):
            self.clients("rds").delete_db_subnet_group(DBSubnetGroupName=id)


# Pulumi input -> (CreateDBInstance / ModifyDBInstance parameter, type); the ones that change in place.
_MODIFIABLE = {
    "instanceClass": ("DBInstanceClass", str),
    "allocatedStorage": ("AllocatedStorage", int),
    "maxAllocatedStorage": ("MaxAllocatedStorage", int),
    "storageType": ("StorageType", str),
    "iops": ("Iops", int),
    "engineVersion": ("EngineVersion", str),
    "password": ("MasterUserPassword", str),
    "backupRetentionPeriod": ("BackupRetentionPeriod", int),
    "backupWindow": ("PreferredBackupWindow", str),
    "maintenanceWindow": ("PreferredMaintenanceWindow", str),
    "multiAz": ("MultiAZ", bool),
    "publiclyAccessible": ("PubliclyAccessible", bool),
    "vpcSecurityGroupIds": ("VpcSecurityGroupIds", list),
    "deletionProtection": ("DeletionProtection", bool),
    "parameterGroupName": ("DBParameterGroupName", str),
    "autoMinorVersionUpgrade": ("AutoMinorVersionUpgrade", bool),
    "copyTagsToSnapshot": ("CopyTagsToSnapshot", bool),
    "caCertIdentifier": ("CACertificateIdentifier", str),
}
# Set at creation only.
_CREATE_ONLY = {
    "engine": ("Engine", str),
    "dbName": ("DBName", str),
    "username": ("MasterUsername", str),
    "dbSubnetGroupName": ("DBSubnetGroupName", str),
    "availabilityZone": ("AvailabilityZone", str),
    "port": ("Port", int),
    "storageEncrypted": ("StorageEncrypted", bool),
    "kmsKeyId": ("KmsKeyId", str),
}
# Parameters restore_db_instance_from_db_snapshot takes.
_RESTORE = {
    "DBInstanceClass",
    "StorageType",
    "Iops",
    "MultiAZ",
    "PubliclyAccessible",
    "VpcSecurityGroupIds",
    "DeletionProtection",
    "DBParameterGroupName",
    "AutoMinorVersionUpgrade",
    "CopyTagsToSnapshot",
    "DBSubnetGroupName",
    "AvailabilityZone",
    "Port",
    "DBName",
    "Engine",
    "AllocatedStorage",
}


def _parameters(inputs: dict[str, Any], table: dict[str, tuple[str, type]]) -> dict[str, Any]:
    return {
        parameter: (list(inputs[key]) if kind is list else kind(inputs[key]))
        for key, (parameter, kind) in table.items()
        if inputs.get(key) is not None
    }


def _with_password(outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Create and update outputs carry the declared password, as Pulumi's state does."""
    if "password" in inputs:
        return {**outputs, "password": inputs["password"]}
    return outputs


@dataclass(frozen=True)
class DbInstance:
    """aws:rds/instance:Instance; id is the DBI resource id (`db-...`), as in pulumi-aws v7.

    The instance is found by its `identifier`, which is what stays stable
    across a restore-and-rename. Changes in _MODIFIABLE are applied with
    ModifyDBInstance, immediately unless `applyImmediately` is false; create
    and update wait for `available`. With `snapshotIdentifier`, create
    restores that snapshot. The password is in create and update outputs
    but never in `read`: AWS does not return it.
    """

    clients: Clients
    token = "aws:rds/instance:Instance"
    replace_on = frozenset(
        {
            "identifier",
            "identifierPrefix",
            "engine",
            "dbName",
            "username",
            "availabilityZone",
            "dbSubnetGroupName",
            "storageEncrypted",
            "kmsKeyId",
            "characterSetName",
            "snapshotIdentifier",
            "timezone",
            "port",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rds = self.clients("rds")
        identifier = physical_name(inputs, "identifier", name.lower(), 63).lower()
        parameters = {
            "DBInstanceIdentifier": identifier,
            **_parameters(inputs, _MODIFIABLE),
            **_parameters(inputs, _CREATE_ONLY),
            "Tags": aws_tags(inputs.get("tags")),
        }
        with applying(self.token, name, "create"):
            if inputs.get("snapshotIdentifier"):
                rds.restore_db_instance_from_db_snapshot(
                    DBSnapshotIdentifier=inputs["snapshotIdentifier"],
                    **{
                        k: v
                        for k, v in parameters.items()
                        if k in _RESTORE | {"DBInstanceIdentifier", "Tags"}
                    },
                )
            else:
                rds.create_db_instance(**parameters)
            rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=identifier)
        outputs = present(
            self.read("", {**inputs, "identifier": identifier}), self.token, identifier
        )
        return self._unique_id(outputs), _with_password(outputs, inputs)

    def _unique_id(self, outputs: dict[str, Any]) -> str:
        """The DBI resource id (pulumi-aws v7's id) when it names this instance alone, else the identifier.

        AWS gives every instance its own DbiResourceId; moto gives all of them the
        same one. An id shared by two instances would let one stack find and
        change another stack's database, so then the identifier (the id form
        older pulumi-aws versions used, still accepted by the provider) is the id.
        """
        resource_id = str(outputs.get("resourceId") or "")
        if resource_id:
            with applying(self.token, outputs["identifier"], "read"):
                sharing = self.clients("rds").describe_db_instances(
                    Filters=[{"Name": "dbi-resource-id", "Values": [resource_id]}]
                )["DBInstances"]
            if len(sharing) == 1:
                return resource_id
        return str(outputs["identifier"])

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        rds = self.clients("rds")
        identifier = self._identifier(id, {**olds, **news})
        old, new = _parameters(olds, _MODIFIABLE), _parameters(news, _MODIFIABLE)
        changed = {k: v for k, v in new.items() if v != old.get(k)}
        with applying(self.token, identifier, "update"):
            arn = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0][
                "DBInstanceArn"
            ]
            _retag(rds, arn, olds, news)
            if changed:
                if "EngineVersion" in changed and news.get("allowMajorVersionUpgrade"):
                    changed["AllowMajorVersionUpgrade"] = True
                rds.modify_db_instance(
                    DBInstanceIdentifier=identifier,
                    ApplyImmediately=bool(news.get("applyImmediately", True)),
                    **changed,
                )
                rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=identifier)
        outputs = present(self.read(id, {**news, "identifier": identifier}), self.token, id)
        return _with_password(outputs, news)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        db = self._describe(id, inputs)
        if db is None:
            return None
        with applying(self.token, db["DBInstanceIdentifier"], "read"):
            tags = _live_tags(self.clients("rds"), db["DBInstanceArn"])
        endpoint = db.get("Endpoint") or {}
        live_version = db.get("EngineVersion", "")
        declared_version = str(inputs.get("engineVersion") or "")
        outputs = {
            **inputs,
            "identifier": db["DBInstanceIdentifier"],
            "resourceId": db.get("DbiResourceId", ""),
            "arn": db["DBInstanceArn"],
            "engine": db["Engine"],
            # "16" declared, "16.3" running is no drift: AWS picks the minor version.
            "engineVersion": declared_version
            if declared_version and live_version.startswith(declared_version)
            else live_version,
            "engineVersionActual": live_version,
            "instanceClass": db["DBInstanceClass"],
            "allocatedStorage": float(db.get("AllocatedStorage", 0)),
            "storageType": db.get("StorageType", ""),
            "username": db.get("MasterUsername", ""),
            "multiAz": bool(db.get("MultiAZ", False)),
            "publiclyAccessible": bool(db.get("PubliclyAccessible", False)),
            "backupRetentionPeriod": float(db.get("BackupRetentionPeriod", 0)),
            "deletionProtection": bool(db.get("DeletionProtection", False)),
            "storageEncrypted": bool(db.get("StorageEncrypted", False)),
            "vpcSecurityGroupIds": in_declared_order(
                [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])],
                inputs.get("vpcSecurityGroupIds"),
            ),
            "dbSubnetGroupName": (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName", ""),
            "availabilityZone": db.get("AvailabilityZone", ""),
            "status": db.get("DBInstanceStatus", ""),
            "address": endpoint.get("Address", ""),
            "port": float(endpoint.get("Port") or db.get("DbInstancePort") or 0),
            "endpoint": f"{endpoint.get('Address', '')}:{endpoint.get('Port', '')}",
            "hostedZoneId": endpoint.get("HostedZoneId", ""),
        }
        if db.get("DBName"):
            outputs["dbName"] = db["DBName"]
        # AWS never returns the password: leaving it out keeps drift checks from guessing.
        outputs.pop("password", None)
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        """Delete the instance; a final snapshot is taken unless `skipFinalSnapshot`.

        Raises EngineError, before calling AWS, when a final snapshot is due but
        `finalSnapshotIdentifier` is not set (as the AWS provider does).
        """
        db = self._describe(id, inputs)
        if db is None:
            return
        identifier = db["DBInstanceIdentifier"]
        parameters: dict[str, Any] = {
            "DBInstanceIdentifier": identifier,
            "SkipFinalSnapshot": bool(inputs.get("skipFinalSnapshot", False)),
            "DeleteAutomatedBackups": bool(inputs.get("deleteAutomatedBackups", True)),
        }
        if not parameters["SkipFinalSnapshot"]:
            if not inputs.get("finalSnapshotIdentifier"):
                raise EngineError(
                    f"Cannot delete {self.token} {identifier!r}: set finalSnapshotIdentifier, or skipFinalSnapshot to true.",
                    resource=identifier,
                    type=self.token,
                )
            parameters["FinalDBSnapshotIdentifier"] = inputs["finalSnapshotIdentifier"]
        rds = self.clients("rds")
        with applying(self.token, identifier, "delete"):
            with already_gone("DBInstanceNotFound"):
                rds.delete_db_instance(**parameters)
            rds.get_waiter("db_instance_deleted").wait(DBInstanceIdentifier=identifier)

    def _identifier(self, id: str, inputs: dict[str, Any]) -> str:
        db = self._describe(id, inputs)
        if db is None:
            raise EngineError(f"{self.token} {id!r} does not exist.", resource=id, type=self.token)
        return str(db["DBInstanceIdentifier"])

    def _describe(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The instance named by `identifier`, else the one whose resource id is `id`; None if gone."""
        from botocore.exceptions import ClientError

        rds = self.clients("rds")
        identifier = inputs.get("identifier")
        with applying(self.token, identifier or id, "read"):
            if identifier:
                try:
                    return dict(
                        rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
                    )
                except ClientError as exc:
                    if aws_code(exc) != "DBInstanceNotFound":
                        raise
                    return None
            if id and not id.startswith("db-"):
                # The id is the identifier (see _unique_id).
                return self._describe(id, {"identifier": id})
            found = rds.describe_db_instances(
                Filters=[{"Name": "dbi-resource-id", "Values": [id]}]
            )["DBInstances"]
        if len(found) > 1:
            # Never guess: the first match may be another stack's database.
            raise EngineError(
                f"{self.token} {id!r} names {len(found)} DB instances "
                f"({', '.join(d['DBInstanceIdentifier'] for d in found)}), so nothing was "
                "changed: the state must record its `identifier` to tell them apart.",
                resource=id,
                type=self.token,
            )
        return dict(found[0]) if found and id else None


def appliers(clients: Clients) -> list[ResourceType]:
    """The RDS appliers."""
    return [SubnetGroup(clients), DbInstance(clients)]
