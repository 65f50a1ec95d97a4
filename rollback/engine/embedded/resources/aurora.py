"""Aurora: DB clusters, cluster instances and cluster parameter groups.

The cluster's id is its identifier (pulumi-aws uses the identifier for
clusters, unlike instances); a restore-and-rename keeps the identifier and
so the endpoint. The master password is in create and update outputs but
never in `read`: AWS does not return it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_NO_CLUSTER = "DBClusterNotFoundFault"
_NO_INSTANCE = "DBInstanceNotFound"


def _retag(rds: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        rds.add_tags_to_resource(ResourceName=arn, Tags=aws_tags(to_set))
    if to_remove:
        rds.remove_tags_from_resource(ResourceName=arn, TagKeys=to_remove)


def _tags_out(outputs: dict[str, Any], live: list[dict[str, Any]] | None) -> dict[str, Any]:
    tags = pulumi_tags(live)
    if tags or "tags" in outputs:
        outputs["tags"] = tags
    outputs["tagsAll"] = tags
    return outputs


# Pulumi cluster input -> CreateDBCluster parameter, with its type.
_CLUSTER_CREATE = {
    "engine": ("Engine", str),
    "engineVersion": ("EngineVersion", str),
    "databaseName": ("DatabaseName", str),
    "masterUsername": ("MasterUsername", str),
    "masterPassword": ("MasterUserPassword", str),
    "dbSubnetGroupName": ("DBSubnetGroupName", str),
    "dbClusterParameterGroupName": ("DBClusterParameterGroupName", str),
    "port": ("Port", int),
    "backupRetentionPeriod": ("BackupRetentionPeriod", int),
    "preferredBackupWindow": ("PreferredBackupWindow", str),
    "storageEncrypted": ("StorageEncrypted", bool),
    "kmsKeyId": ("KmsKeyId", str),
    "deletionProtection": ("DeletionProtection", bool),
    "engineMode": ("EngineMode", str),
}
# Inputs ModifyDBCluster changes in place.
_CLUSTER_MODIFY = {
    "engineVersion": ("EngineVersion", str),
    "masterPassword": ("MasterUserPassword", str),
    "dbClusterParameterGroupName": ("DBClusterParameterGroupName", str),
    "backupRetentionPeriod": ("BackupRetentionPeriod", int),
    "preferredBackupWindow": ("PreferredBackupWindow", str),
    "deletionProtection": ("DeletionProtection", bool),
}


def _with_password(outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    if "masterPassword" in inputs:
        return {**outputs, "masterPassword": inputs["masterPassword"]}
    return outputs


@dataclass(frozen=True)
class Cluster:
    """aws:rds/cluster:Cluster (Aurora); id is the cluster identifier.

    Engine version, password, parameter group, backups, deletion protection,
    security groups and tags change in place (immediately); delete skips the
    final snapshot only when `skipFinalSnapshot` says so.
    """

    clients: Clients
    token = "aws:rds/cluster:Cluster"
    replace_on = frozenset(
        {
            "clusterIdentifier",
            "clusterIdentifierPrefix",
            "engine",
            "databaseName",
            "masterUsername",
            "dbSubnetGroupName",
            "storageEncrypted",
            "kmsKeyId",
            "snapshotIdentifier",
            "port",
            "engineMode",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rds = self.clients("rds")
        identifier = physical_name(
            {
                **inputs,
                "identifier": inputs.get("clusterIdentifier"),
                "identifierPrefix": inputs.get("clusterIdentifierPrefix"),
            },
            "identifier",
            name.lower(),
            63,
        ).lower()
        kwargs: dict[str, Any] = {"DBClusterIdentifier": identifier}
        for key, (parameter, kind) in _CLUSTER_CREATE.items():
            if inputs.get(key) is not None:
                kwargs[parameter] = kind(inputs[key])
        if inputs.get("vpcSecurityGroupIds"):
            kwargs["VpcSecurityGroupIds"] = list(inputs["vpcSecurityGroupIds"])
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            if inputs.get("snapshotIdentifier"):
                restore = {
                    k: v
                    for k, v in kwargs.items()
                    if k
                    in (
                        "DBClusterIdentifier",
                        "Engine",
                        "EngineVersion",
                        "DBSubnetGroupName",
                        "VpcSecurityGroupIds",
                        "Port",
                        "Tags",
                    )
                }
                rds.restore_db_cluster_from_snapshot(
                    SnapshotIdentifier=inputs["snapshotIdentifier"], **restore
                )
            else:
                rds.create_db_cluster(**kwargs)
            rds.get_waiter("db_cluster_available").wait(DBClusterIdentifier=identifier)
        outputs = present(
            self.read(identifier, {**inputs, "clusterIdentifier": identifier}),
            self.token,
            identifier,
        )
        return identifier, _with_password(outputs, inputs)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        rds = self.clients("rds")
        changed = {
            parameter: kind(news[key])
            for key, (parameter, kind) in _CLUSTER_MODIFY.items()
            if news.get(key) is not None and news.get(key) != olds.get(key)
        }
        if sorted(news.get("vpcSecurityGroupIds") or []) != sorted(
            olds.get("vpcSecurityGroupIds") or []
        ):
            changed["VpcSecurityGroupIds"] = list(news.get("vpcSecurityGroupIds") or [])
        with applying(self.token, id, "update"):
            if changed:
                if "EngineVersion" in changed:
                    changed["AllowMajorVersionUpgrade"] = bool(news.get("allowMajorVersionUpgrade"))
                rds.modify_db_cluster(DBClusterIdentifier=id, ApplyImmediately=True, **changed)
                rds.get_waiter("db_cluster_available").wait(DBClusterIdentifier=id)
            arn = rds.describe_db_clusters(DBClusterIdentifier=id)["DBClusters"][0]["DBClusterArn"]
            _retag(rds, arn, olds, news)
        outputs = present(self.read(id, {**news, "clusterIdentifier": id}), self.token, id)
        return _with_password(outputs, news)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        rds = self.clients("rds")
        with applying(self.token, id, "read"):
            try:
                cluster = rds.describe_db_clusters(DBClusterIdentifier=id)["DBClusters"][0]
            except ClientError as exc:
                if aws_code(exc) == _NO_CLUSTER:
                    return None
                raise
        if cluster.get("Status") == "deleting":
            return None
        outputs: dict[str, Any] = {
            **{k: v for k, v in inputs.items() if k != "masterPassword"},
            "clusterIdentifier": cluster["DBClusterIdentifier"],
            "arn": cluster["DBClusterArn"],
            "clusterResourceId": cluster.get("DbClusterResourceId", ""),
            "endpoint": cluster.get("Endpoint", ""),
            "readerEndpoint": cluster.get("ReaderEndpoint", ""),
            "engine": cluster.get("Engine", ""),
            "engineVersion": cluster.get("EngineVersion", ""),
            "port": float(cluster.get("Port", 0)),
            "masterUsername": cluster.get("MasterUsername", ""),
            "hostedZoneId": cluster.get("HostedZoneId", ""),
            "clusterMembers": sorted(
                m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])
            ),
            "vpcSecurityGroupIds": in_declared_order(
                [g["VpcSecurityGroupId"] for g in cluster.get("VpcSecurityGroups", [])],
                inputs.get("vpcSecurityGroupIds"),
            ),
        }
        for key, (parameter, kind) in _CLUSTER_CREATE.items():
            source = {
                "DatabaseName": cluster.get("DatabaseName"),
                "DBSubnetGroupName": cluster.get("DBSubnetGroup"),
                "DBClusterParameterGroupName": cluster.get("DBClusterParameterGroup"),
            }.get(parameter, cluster.get(parameter))
            if key in inputs and key != "masterPassword" and source is not None:
                outputs[key] = float(source) if kind is int else kind(source)
        return _tags_out(outputs, cluster.get("TagList"))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        rds = self.clients("rds")
        kwargs: dict[str, Any] = {"DBClusterIdentifier": id}
        if inputs.get("skipFinalSnapshot"):
            kwargs["SkipFinalSnapshot"] = True
        else:
            kwargs["FinalDBSnapshotIdentifier"] = str(
                inputs.get("finalSnapshotIdentifier") or f"{id}-final"
            )
        with applying(self.token, id, "delete"), already_gone(_NO_CLUSTER):
            rds.delete_db_cluster(**kwargs)


@dataclass(frozen=True)
class ClusterInstance:
    """aws:rds/clusterInstance:ClusterInstance; id is the instance identifier.

    Instance class, parameter group, public accessibility and tags change in place.
    """

    clients: Clients
    token = "aws:rds/clusterInstance:ClusterInstance"
    replace_on = frozenset(
        {
            "identifier",
            "identifierPrefix",
            "clusterIdentifier",
            "engine",
            "dbSubnetGroupName",
            "availabilityZone",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rds = self.clients("rds")
        identifier = physical_name(inputs, "identifier", name.lower(), 63).lower()
        kwargs: dict[str, Any] = {
            "DBInstanceIdentifier": identifier,
            "DBClusterIdentifier": inputs["clusterIdentifier"],
            "DBInstanceClass": inputs["instanceClass"],
            "Engine": inputs["engine"],
        }
        for key, parameter in (
            ("engineVersion", "EngineVersion"),
            ("dbSubnetGroupName", "DBSubnetGroupName"),
            ("dbParameterGroupName", "DBParameterGroupName"),
            ("availabilityZone", "AvailabilityZone"),
        ):
            if inputs.get(key):
                kwargs[parameter] = inputs[key]
        if inputs.get("publiclyAccessible") is not None:
            kwargs["PubliclyAccessible"] = bool(inputs["publiclyAccessible"])
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            rds.create_db_instance(**kwargs)
            rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=identifier)
        return identifier, present(
            self.read(identifier, {**inputs, "identifier": identifier}), self.token, identifier
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        rds = self.clients("rds")
        changed: dict[str, Any] = {}
        if news.get("instanceClass") != olds.get("instanceClass"):
            changed["DBInstanceClass"] = news["instanceClass"]
        if news.get("publiclyAccessible") != olds.get("publiclyAccessible"):
            changed["PubliclyAccessible"] = bool(news.get("publiclyAccessible"))
        if news.get("dbParameterGroupName") != olds.get("dbParameterGroupName") and news.get(
            "dbParameterGroupName"
        ):
            changed["DBParameterGroupName"] = news["dbParameterGroupName"]
        with applying(self.token, id, "update"):
            if changed:
                rds.modify_db_instance(DBInstanceIdentifier=id, ApplyImmediately=True, **changed)
                rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=id)
            arn = rds.describe_db_instances(DBInstanceIdentifier=id)["DBInstances"][0][
                "DBInstanceArn"
            ]
            _retag(rds, arn, olds, news)
        return present(self.read(id, {**news, "identifier": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        rds = self.clients("rds")
        with applying(self.token, id, "read"):
            try:
                instance = rds.describe_db_instances(DBInstanceIdentifier=id)["DBInstances"][0]
            except ClientError as exc:
                if aws_code(exc) == _NO_INSTANCE:
                    return None
                raise
        if instance.get("DBInstanceStatus") == "deleting":
            return None
        endpoint = instance.get("Endpoint") or {}
        outputs: dict[str, Any] = {
            **inputs,
            "identifier": instance["DBInstanceIdentifier"],
            "arn": instance["DBInstanceArn"],
            "clusterIdentifier": instance.get("DBClusterIdentifier", ""),
            "instanceClass": instance["DBInstanceClass"],
            "engine": instance["Engine"],
            "endpoint": endpoint.get("Address", ""),
            "port": float(endpoint.get("Port", 0)),
            "dbiResourceId": instance.get("DbiResourceId", ""),
            "publiclyAccessible": bool(instance.get("PubliclyAccessible", False)),
        }
        if "engineVersion" in inputs:
            outputs["engineVersion"] = instance.get("EngineVersion", "")
        if "dbSubnetGroupName" in inputs:
            outputs["dbSubnetGroupName"] = (instance.get("DBSubnetGroup") or {}).get(
                "DBSubnetGroupName", ""
            )
        return _tags_out(outputs, instance.get("TagList"))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        rds = self.clients("rds")
        with applying(self.token, id, "delete"), already_gone(_NO_INSTANCE):
            rds.delete_db_instance(DBInstanceIdentifier=id, SkipFinalSnapshot=True)


@dataclass(frozen=True)
class ClusterParameterGroup:
    """aws:rds/clusterParameterGroup:ClusterParameterGroup; id is the name. Parameters and tags change in place."""

    clients: Clients
    token = "aws:rds/clusterParameterGroup:ClusterParameterGroup"
    replace_on = frozenset({"name", "namePrefix", "family", "description", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rds = self.clients("rds")
        group = physical_name(inputs, "name", name.lower(), 255).lower()
        with applying(self.token, name, "create"):
            rds.create_db_cluster_parameter_group(
                DBClusterParameterGroupName=group,
                DBParameterGroupFamily=inputs["family"],
                Description=inputs.get("description") or "Managed by Pulumi",
                Tags=aws_tags(inputs.get("tags")),
            )
            self._set(rds, group, inputs)
        return group, present(self.read(group, {**inputs, "name": group}), self.token, group)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        rds = self.clients("rds")
        with applying(self.token, id, "update"):
            if news.get("parameters") != olds.get("parameters"):
                self._set(rds, id, news)
            arn = rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=id)[
                "DBClusterParameterGroups"
            ][0]["DBClusterParameterGroupArn"]
            _retag(rds, arn, olds, news)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        rds = self.clients("rds")
        with applying(self.token, id, "read"):
            try:
                group = rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=id)[
                    "DBClusterParameterGroups"
                ][0]
            except ClientError as exc:
                if aws_code(exc) in ("DBParameterGroupNotFound", "DBParameterGroupNotFoundFault"):
                    return None
                raise
        return {
            **inputs,
            "name": group["DBClusterParameterGroupName"],
            "arn": group.get("DBClusterParameterGroupArn", ""),
            "family": group.get("DBParameterGroupFamily", inputs.get("family")),
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with (
            applying(self.token, id, "delete"),
            already_gone("DBParameterGroupNotFound", "DBParameterGroupNotFoundFault"),
        ):
            self.clients("rds").delete_db_cluster_parameter_group(DBClusterParameterGroupName=id)

    @staticmethod
    def _set(rds: Any, group: str, inputs: dict[str, Any]) -> None:
        parameters = [
            {
                "ParameterName": p["name"],
                "ParameterValue": str(p["value"]),
                "ApplyMethod": p.get("applyMethod") or "immediate",
            }
            for p in inputs.get("parameters") or []
        ]
        if parameters:
            rds.modify_db_cluster_parameter_group(
                DBClusterParameterGroupName=group, Parameters=parameters
            )


def appliers(clients: Clients) -> list[ResourceType]:
    """The Aurora appliers."""
    return [Cluster(clients), ClusterInstance(clients), ClusterParameterGroup(clients)]
