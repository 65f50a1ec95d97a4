"""Redshift: cluster subnet groups and clusters.

Follows terraform-provider-aws (internal/service/redshift/cluster.go and
subnet_group.go), which pulumi-aws bridges: ids are the subnet group's name
and the cluster identifier; a cluster's `endpoint` is `<address>:<port>` and
its `dnsName` the address; create waits for `available`, delete for the
cluster to be gone. The master password is in create and update outputs
(pulumi-aws marks `masterPassword` an additional secret output, so the
checkpoint holds it encrypted) and never in `read`: AWS does not return it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.checking import AutoName
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import partition_of, physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags
from rollback.errors import EngineError

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType


def _arn(clients: Clients, kind: str, name: str) -> str:
    region = clients("redshift").meta.region_name
    return f"arn:{partition_of(region)}:redshift:{region}:{clients.account()}:{kind}:{name}"


def _retag(redshift: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        redshift.create_tags(ResourceName=arn, Tags=aws_tags(to_set))
    if to_remove:
        redshift.delete_tags(ResourceName=arn, TagKeys=to_remove)


@dataclass(frozen=True)
class SubnetGroup:
    """aws:redshift/subnetGroup:SubnetGroup; id is the name. Subnets, description and tags change in place."""

    clients: Clients
    token = "aws:redshift/subnetGroup:SubnetGroup"
    # pulumi-aws auto-names `name` as for every type (provider/autonaming.go), without
    # lower-casing: Redshift wants lower case, so a program names it or uses a lower-case name.
    autoname = AutoName("name", 255)
    replace_on = frozenset({"name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group = physical_name(inputs, "name", name, 255)
        with applying(self.token, name, "create"):
            self.clients("redshift").create_cluster_subnet_group(
                ClusterSubnetGroupName=group,
                Description=inputs.get("description") or "Managed by Pulumi",
                SubnetIds=list(inputs.get("subnetIds") or []),
                Tags=aws_tags(inputs.get("tags")),
            )
        return group, present(self.read(group, {**inputs, "name": group}), self.token, group)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        redshift = self.clients("redshift")
        with applying(self.token, id, "update"):
            if sorted(news.get("subnetIds") or []) != sorted(
                olds.get("subnetIds") or []
            ) or news.get("description") != olds.get("description"):
                redshift.modify_cluster_subnet_group(
                    ClusterSubnetGroupName=id,
                    Description=news.get("description") or "Managed by Pulumi",
                    SubnetIds=list(news.get("subnetIds") or []),
                )
            _retag(redshift, _arn(self.clients, "subnetgroup", id), olds, news)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                group = self.clients("redshift").describe_cluster_subnet_groups(
                    ClusterSubnetGroupName=id
                )["ClusterSubnetGroups"][0]
            except ClientError as exc:
                if aws_code(exc) == "ClusterSubnetGroupNotFoundFault":
                    return None
                raise
        outputs = {
            **inputs,
            "name": group["ClusterSubnetGroupName"],
            "description": group.get("Description", ""),
            "subnetIds": in_declared_order(
                [s["SubnetIdentifier"] for s in group.get("Subnets", [])], inputs.get("subnetIds")
            ),
            "arn": _arn(self.clients, "subnetgroup", id),
        }
        return with_tags(outputs, pulumi_tags(group.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with (
            applying(self.token, id, "delete"),
            already_gone("ClusterSubnetGroupNotFoundFault"),
        ):
            self.clients("redshift").delete_cluster_subnet_group(ClusterSubnetGroupName=id)


# Pulumi input -> (CreateCluster / ModifyCluster parameter, type); the ones that change in place.
_MODIFIABLE = {
    "nodeType": ("NodeType", str),
    "clusterType": ("ClusterType", str),
    "numberOfNodes": ("NumberOfNodes", int),
    "masterPassword": ("MasterUserPassword", str),
    "publiclyAccessible": ("PubliclyAccessible", bool),
    "vpcSecurityGroupIds": ("VpcSecurityGroupIds", list),
    "clusterParameterGroupName": ("ClusterParameterGroupName", str),
    "automatedSnapshotRetentionPeriod": ("AutomatedSnapshotRetentionPeriod", int),
    "preferredMaintenanceWindow": ("PreferredMaintenanceWindow", str),
    "clusterVersion": ("ClusterVersion", str),
    "allowVersionUpgrade": ("AllowVersionUpgrade", bool),
    "enhancedVpcRouting": ("EnhancedVpcRouting", bool),
    "encrypted": ("Encrypted", bool),
}
# Set at creation only.
_CREATE_ONLY = {
    "databaseName": ("DBName", str),
    "masterUsername": ("MasterUsername", str),
    "clusterSubnetGroupName": ("ClusterSubnetGroupName", str),
    "availabilityZone": ("AvailabilityZone", str),
    "port": ("Port", int),
    "kmsKeyId": ("KmsKeyId", str),
    "elasticIp": ("ElasticIp", str),
}


def _parameters(inputs: dict[str, Any], table: dict[str, tuple[str, type]]) -> dict[str, Any]:
    return {
        parameter: (list(inputs[key]) if kind is list else kind(inputs[key]))
        for key, (parameter, kind) in table.items()
        if inputs.get(key) is not None
    }


@dataclass(frozen=True)
class Cluster:
    """aws:redshift/cluster:Cluster; id is the cluster identifier.

    Changes in _MODIFIABLE go through ModifyCluster, IAM roles through
    ModifyClusterIamRoles, tags through Create/DeleteTags; the rest replaces
    the cluster. Delete takes a final snapshot unless `skipFinalSnapshot`.
    """

    clients: Clients
    token = "aws:redshift/cluster:Cluster"
    replace_on = frozenset(
        {
            "clusterIdentifier",
            "databaseName",
            "masterUsername",
            "clusterSubnetGroupName",
            "availabilityZone",
            "kmsKeyId",
            "snapshotIdentifier",
            "snapshotClusterIdentifier",
            "ownerAccount",
            "port",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        identifier = str(inputs["clusterIdentifier"])
        parameters: dict[str, Any] = {
            "ClusterIdentifier": identifier,
            **_parameters(inputs, _MODIFIABLE),
            **_parameters(inputs, _CREATE_ONLY),
            "Tags": aws_tags(inputs.get("tags")),
        }
        if inputs.get("iamRoles"):
            parameters["IamRoles"] = list(inputs["iamRoles"])
        if inputs.get("defaultIamRoleArn"):
            parameters["DefaultIamRoleArn"] = inputs["defaultIamRoleArn"]
        redshift = self.clients("redshift")
        with applying(self.token, name, "create"):
            redshift.create_cluster(**parameters)
            redshift.get_waiter("cluster_available").wait(ClusterIdentifier=identifier)
        outputs = present(self.read(identifier, inputs), self.token, identifier)
        return identifier, _with_password(outputs, inputs)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        redshift = self.clients("redshift")
        old, new = _parameters(olds, _MODIFIABLE), _parameters(news, _MODIFIABLE)
        changed = {k: v for k, v in new.items() if v != old.get(k)}
        if "NodeType" in changed or "NumberOfNodes" in changed:
            # A resize names all three, as the provider's update does.
            for key in ("NodeType", "NumberOfNodes", "ClusterType"):
                if key in new:
                    changed[key] = new[key]
        old_roles, new_roles = set(olds.get("iamRoles") or []), set(news.get("iamRoles") or [])
        with applying(self.token, id, "update"):
            if changed:
                redshift.modify_cluster(ClusterIdentifier=id, **changed)
                redshift.get_waiter("cluster_available").wait(ClusterIdentifier=id)
            if old_roles != new_roles:
                redshift.modify_cluster_iam_roles(
                    ClusterIdentifier=id,
                    AddIamRoles=sorted(new_roles - old_roles),
                    RemoveIamRoles=sorted(old_roles - new_roles),
                )
                redshift.get_waiter("cluster_available").wait(ClusterIdentifier=id)
            _retag(redshift, _arn(self.clients, "cluster", id), olds, news)
        return _with_password(present(self.read(id, news), self.token, id), news)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                cluster = self.clients("redshift").describe_clusters(ClusterIdentifier=id)[
                    "Clusters"
                ][0]
            except ClientError as exc:
                if aws_code(exc) == "ClusterNotFound":
                    return None
                raise
        endpoint = cluster.get("Endpoint") or {}
        address, port = endpoint.get("Address", ""), endpoint.get("Port", 0)
        outputs = {
            **inputs,
            "clusterIdentifier": cluster["ClusterIdentifier"],
            "arn": _arn(self.clients, "cluster", id),
            "clusterNamespaceArn": cluster.get("ClusterNamespaceArn", ""),
            "nodeType": cluster["NodeType"],
            "numberOfNodes": float(cluster.get("NumberOfNodes", 1)),
            "clusterType": "multi-node" if cluster.get("NumberOfNodes", 1) > 1 else "single-node",
            "databaseName": cluster.get("DBName", ""),
            "masterUsername": cluster.get("MasterUsername", ""),
            "clusterSubnetGroupName": cluster.get("ClusterSubnetGroupName", ""),
            "availabilityZone": cluster.get("AvailabilityZone", ""),
            "publiclyAccessible": bool(cluster.get("PubliclyAccessible", False)),
            "encrypted": bool(cluster.get("Encrypted", False)),
            "enhancedVpcRouting": bool(cluster.get("EnhancedVpcRouting", False)),
            "clusterVersion": cluster.get("ClusterVersion", ""),
            "allowVersionUpgrade": bool(cluster.get("AllowVersionUpgrade", True)),
            "automatedSnapshotRetentionPeriod": float(
                cluster.get("AutomatedSnapshotRetentionPeriod", 1)
            ),
            "preferredMaintenanceWindow": cluster.get("PreferredMaintenanceWindow", ""),
            "clusterParameterGroupName": next(
                (g["ParameterGroupName"] for g in cluster.get("ClusterParameterGroups", [])), ""
            ),
            "vpcSecurityGroupIds": in_declared_order(
                [g["VpcSecurityGroupId"] for g in cluster.get("VpcSecurityGroups", [])],
                inputs.get("vpcSecurityGroupIds"),
            ),
            "iamRoles": in_declared_order(
                [r["IamRoleArn"] for r in cluster.get("IamRoles", [])], inputs.get("iamRoles")
            ),
            "dnsName": address,
            "port": float(port),
            "endpoint": f"{address}:{port}" if address else "",
            "clusterNodes": [
                {
                    "nodeRole": n.get("NodeRole", ""),
                    "privateIpAddress": n.get("PrivateIPAddress", ""),
                    "publicIpAddress": n.get("PublicIPAddress", ""),
                }
                for n in cluster.get("ClusterNodes", [])
            ],
            "skipFinalSnapshot": bool(inputs.get("skipFinalSnapshot", False)),
        }
        # AWS never returns the password: leaving it out keeps drift checks from guessing.
        outputs.pop("masterPassword", None)
        return with_tags(outputs, pulumi_tags(cluster.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        """Delete the cluster; a final snapshot is taken unless `skipFinalSnapshot`.

        Raises EngineError, before calling AWS, when a final snapshot is due but
        `finalSnapshotIdentifier` is not set (as the provider does).
        """
        parameters: dict[str, Any] = {
            "ClusterIdentifier": id,
            "SkipFinalClusterSnapshot": bool(inputs.get("skipFinalSnapshot", False)),
        }
        if not parameters["SkipFinalClusterSnapshot"]:
            if not inputs.get("finalSnapshotIdentifier"):
                raise EngineError(
                    f"Cannot delete {self.token} {id!r}: set finalSnapshotIdentifier, or "
                    "skipFinalSnapshot to true.",
                    resource=id,
                    type=self.token,
                )
            parameters["FinalClusterSnapshotIdentifier"] = inputs["finalSnapshotIdentifier"]
        redshift = self.clients("redshift")
        with applying(self.token, id, "delete"):
            with already_gone("ClusterNotFound"):
                redshift.delete_cluster(**parameters)
            redshift.get_waiter("cluster_deleted").wait(ClusterIdentifier=id)


def _with_password(outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Create and update outputs carry the declared password, as Pulumi's state does."""
    if "masterPassword" in inputs:
        return {**outputs, "masterPassword": inputs["masterPassword"]}
    return outputs


def appliers(clients: Clients) -> list[ResourceType]:
    """The Redshift appliers."""
    return [SubnetGroup(clients), Cluster(clients)]
