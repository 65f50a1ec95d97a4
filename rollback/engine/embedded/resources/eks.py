"""EKS: clusters and managed node groups.

Follows terraform-provider-aws (internal/service/eks/cluster.go and
node_group.go), which pulumi-aws bridges: a cluster's id is its name, a node
group's id is `<cluster>:<node group>`; create waits for ACTIVE; update makes
one UpdateClusterConfig call per kind of change, as the API allows only one
at a time; delete waits until the resource is gone.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.checking import AutoName
from rollback.engine.embedded.resources.declared import declared_keys, in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = "ResourceNotFoundException"
_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


def _retag(eks: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        eks.tag_resource(resourceArn=arn, tags=to_set)
    if to_remove:
        eks.untag_resource(resourceArn=arn, tagKeys=to_remove)


def _floats(block: dict[str, Any]) -> dict[str, Any]:
    """Numbers as the SDK sends them (floats), so create and read outputs compare equal."""
    return {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in block.items()
    }


def _ints(block: dict[str, Any] | None) -> dict[str, Any]:
    """A declared block as the EKS API takes it: numbers as ints, no nulls."""
    return {
        k: int(v) if isinstance(v, float) else v for k, v in (block or {}).items() if v is not None
    }


def _logging(types: list[str] | None) -> dict[str, Any]:
    """enabled_cluster_log_types as the API's logging block (expandLogging: all types, each on or off)."""
    enabled = sorted(set(types or []))
    disabled = [t for t in _LOG_TYPES if t not in enabled]
    groups = [{"types": enabled, "enabled": True}] if enabled else []
    if disabled:
        groups.append({"types": disabled, "enabled": False})
    return {"clusterLogging": groups}


def _vpc_request(config: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"subnetIds": list(config.get("subnetIds") or [])}
    if config.get("securityGroupIds"):
        request["securityGroupIds"] = list(config["securityGroupIds"])
    # The provider's schema defaults: private access off, public access on.
    request["endpointPrivateAccess"] = bool(config.get("endpointPrivateAccess", False))
    request["endpointPublicAccess"] = bool(config.get("endpointPublicAccess", True))
    if config.get("publicAccessCidrs"):
        request["publicAccessCidrs"] = list(config["publicAccessCidrs"])
    return request


@dataclass(frozen=True)
class Cluster:
    """aws:eks/cluster:Cluster; id is the name (auto-named as every pulumi-aws `name`).

    Version, log types, endpoint access, subnets, security groups, access
    config and tags change in place; everything else replaces the cluster.
    `read` gives nested blocks the program declared only with their declared
    keys (AWS adds the VPC id and the cluster security group), so that they
    are not drift; create and update outputs carry them whole, as the
    provider's state does.
    """

    clients: Clients
    token = "aws:eks/cluster:Cluster"
    # pulumi-aws provider/autonaming.go: every input `name`, 255 characters, "-".
    autoname = AutoName("name", 255)
    replace_on = frozenset(
        {
            "name",
            "roleArn",
            "bootstrapSelfManagedAddons",
            "kubernetesNetworkConfig",
            "outpostConfig",
            "remoteNetworkConfig",
            "encryptionConfig",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        cluster = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {
            "name": cluster,
            "roleArn": inputs["roleArn"],
            "resourcesVpcConfig": _vpc_request(inputs.get("vpcConfig") or {}),
            "logging": _logging(inputs.get("enabledClusterLogTypes")),
            "bootstrapSelfManagedAddons": bool(inputs.get("bootstrapSelfManagedAddons", True)),
        }
        if inputs.get("version"):
            kwargs["version"] = str(inputs["version"])
        if inputs.get("tags"):
            kwargs["tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
        for key in ("kubernetesNetworkConfig", "accessConfig", "upgradePolicy"):
            if inputs.get(key):
                kwargs[key] = _ints(inputs[key])
        if inputs.get("encryptionConfig"):
            declared = inputs["encryptionConfig"]
            kwargs["encryptionConfig"] = [
                {
                    "provider": {"keyArn": declared["provider"]["keyArn"]},
                    "resources": list(declared["resources"]),
                }
            ]
        eks = self.clients("eks")
        with applying(self.token, name, "create"):
            eks.create_cluster(**kwargs)
            eks.get_waiter("cluster_active").wait(name=cluster)
        return cluster, present(
            self._outputs(cluster, {**inputs, "name": cluster}, whole=True), self.token, cluster
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        eks = self.clients("eks")
        old_vpc, new_vpc = olds.get("vpcConfig") or {}, news.get("vpcConfig") or {}
        with applying(self.token, id, "update"):
            if news.get("version") and news.get("version") != olds.get("version"):
                eks.update_cluster_version(name=id, version=str(news["version"]))
                self._settle(eks, id)
            if news.get("accessConfig") and news.get("accessConfig") != olds.get("accessConfig"):
                access = _ints(news["accessConfig"])
                access.pop("bootstrapClusterCreatorAdminPermissions", None)  # set at create only
                eks.update_cluster_config(name=id, accessConfig=access)
                self._settle(eks, id)
            if sorted(news.get("enabledClusterLogTypes") or []) != sorted(
                olds.get("enabledClusterLogTypes") or []
            ):
                eks.update_cluster_config(
                    name=id, logging=_logging(news.get("enabledClusterLogTypes"))
                )
                self._settle(eks, id)
            access_keys = ("endpointPrivateAccess", "endpointPublicAccess", "publicAccessCidrs")
            if any(old_vpc.get(k) != new_vpc.get(k) for k in access_keys):
                request = _vpc_request(new_vpc)
                eks.update_cluster_config(
                    name=id, resourcesVpcConfig={k: request[k] for k in access_keys if k in request}
                )
                self._settle(eks, id)
            for key in ("subnetIds", "securityGroupIds"):
                if sorted(new_vpc.get(key) or []) != sorted(old_vpc.get(key) or []):
                    eks.update_cluster_config(
                        name=id, resourcesVpcConfig={key: list(new_vpc.get(key) or [])}
                    )
                    self._settle(eks, id)
            _retag(eks, self._arn(eks, id), olds, news)
        return present(self._outputs(id, news, whole=True), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        return self._outputs(id, inputs, whole=False)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        eks = self.clients("eks")
        with applying(self.token, id, "delete"):
            with already_gone(_GONE):
                eks.delete_cluster(name=id)
            eks.get_waiter("cluster_deleted").wait(name=id)

    @staticmethod
    def _settle(eks: Any, id: str) -> None:
        eks.get_waiter("cluster_active").wait(name=id)

    @staticmethod
    def _arn(eks: Any, id: str) -> str:
        return str(eks.describe_cluster(name=id)["cluster"]["arn"])

    def _outputs(self, id: str, inputs: dict[str, Any], whole: bool) -> dict[str, Any] | None:
        """The cluster's outputs (flattened as the provider's resourceClusterRead); None when gone."""
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                cluster = self.clients("eks").describe_cluster(name=id)["cluster"]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
        live_vpc = cluster.get("resourcesVpcConfig") or {}
        declared_vpc = inputs.get("vpcConfig") or {}
        vpc = {
            "clusterSecurityGroupId": live_vpc.get("clusterSecurityGroupId", ""),
            "endpointPrivateAccess": bool(live_vpc.get("endpointPrivateAccess", False)),
            "endpointPublicAccess": bool(live_vpc.get("endpointPublicAccess", True)),
            "publicAccessCidrs": in_declared_order(
                list(live_vpc.get("publicAccessCidrs") or []), declared_vpc.get("publicAccessCidrs")
            ),
            "securityGroupIds": in_declared_order(
                list(live_vpc.get("securityGroupIds") or []), declared_vpc.get("securityGroupIds")
            ),
            "subnetIds": in_declared_order(
                list(live_vpc.get("subnetIds") or []), declared_vpc.get("subnetIds")
            ),
            "vpcId": live_vpc.get("vpcId") or self._vpc_of(live_vpc.get("subnetIds") or []),
        }
        network = dict(cluster.get("kubernetesNetworkConfig") or {})
        created = cluster.get("createdAt")
        outputs = {
            **inputs,
            "name": cluster["name"],
            "arn": cluster["arn"],
            "roleArn": cluster["roleArn"],
            "version": cluster.get("version", ""),
            "platformVersion": cluster.get("platformVersion", ""),
            "status": cluster.get("status", ""),
            "endpoint": cluster.get("endpoint", ""),
            "certificateAuthority": {
                "data": (cluster.get("certificateAuthority") or {}).get("data", "")
            },
            "identities": [
                {
                    "oidcs": [
                        {"issuer": cluster.get("identity", {}).get("oidc", {}).get("issuer", "")}
                    ]
                }
            ],
            "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else "",
            "enabledClusterLogTypes": in_declared_order(
                sorted(
                    t
                    for group in (cluster.get("logging") or {}).get("clusterLogging", [])
                    if group.get("enabled")
                    for t in group.get("types", [])
                ),
                inputs.get("enabledClusterLogTypes"),
            ),
            "bootstrapSelfManagedAddons": bool(inputs.get("bootstrapSelfManagedAddons", True)),
            "vpcConfig": vpc if whole else declared_keys(vpc, inputs.get("vpcConfig")),
            "kubernetesNetworkConfig": network
            if whole
            else declared_keys(network, inputs.get("kubernetesNetworkConfig")),
        }
        return with_tags(outputs, cluster.get("tags") or {})

    def _vpc_of(self, subnet_ids: list[str]) -> str:
        """The VPC of the cluster's subnets (AWS answers it in resourcesVpcConfig; moto does not)."""
        if not subnet_ids:
            return ""
        subnets = self.clients("ec2").describe_subnets(SubnetIds=subnet_ids[:1])["Subnets"]
        return str(subnets[0]["VpcId"]) if subnets else ""


def _node_group_name(inputs: dict[str, Any], logical: str) -> str:
    """`nodeGroupName` (pulumi-aws auto-names it), else the prefix plus a unique suffix.

    With `nodeGroupNamePrefix` the provider names the group with create.Name
    (terraform-plugin-sdk's id.PrefixedUniqueId: the prefix, a UTC timestamp
    and a counter; here random hex, so that two processes never collide).
    """
    prefix = inputs.get("nodeGroupNamePrefix")
    if inputs.get("nodeGroupName") or not prefix:
        return physical_name(inputs, "nodeGroupName", logical, 255)
    return f"{prefix}{time.strftime('%Y%m%d%H%M%S', time.gmtime())}{secrets.token_hex(4)}"


@dataclass(frozen=True)
class NodeGroup:
    """aws:eks/nodeGroup:NodeGroup; id is `<cluster name>:<node group name>`.

    Scaling, update config, labels, taints, version and tags change in place;
    the rest replaces the node group.
    """

    clients: Clients
    token = "aws:eks/nodeGroup:NodeGroup"
    # pulumi-aws provider/resources.go: AutoName("nodeGroupName", 255, "-").
    autoname = AutoName("nodeGroupName", 255)
    replace_on = frozenset(
        {
            "clusterName",
            "nodeGroupName",
            "nodeGroupNamePrefix",
            "nodeRoleArn",
            "subnetIds",
            "amiType",
            "capacityType",
            "diskSize",
            "instanceTypes",
            "remoteAccess",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        cluster, group = str(inputs["clusterName"]), _node_group_name(inputs, name)
        kwargs: dict[str, Any] = {
            "clusterName": cluster,
            "nodegroupName": group,
            "nodeRole": inputs["nodeRoleArn"],
            "subnets": list(inputs.get("subnetIds") or []),
            "scalingConfig": _ints(inputs.get("scalingConfig")),
        }
        for key, parameter in (
            ("amiType", "amiType"),
            ("capacityType", "capacityType"),
            ("releaseVersion", "releaseVersion"),
            ("version", "version"),
        ):
            if inputs.get(key):
                kwargs[parameter] = str(inputs[key])
        if inputs.get("diskSize"):
            kwargs["diskSize"] = int(inputs["diskSize"])
        if inputs.get("instanceTypes"):
            kwargs["instanceTypes"] = list(inputs["instanceTypes"])
        if inputs.get("labels"):
            kwargs["labels"] = {str(k): str(v) for k, v in inputs["labels"].items()}
        if inputs.get("taints"):
            kwargs["taints"] = [_ints(t) for t in inputs["taints"]]
        if inputs.get("updateConfig"):
            kwargs["updateConfig"] = _ints(inputs["updateConfig"])
        if inputs.get("launchTemplate"):
            kwargs["launchTemplate"] = _ints(inputs["launchTemplate"])
        if inputs.get("remoteAccess"):
            kwargs["remoteAccess"] = _ints(inputs["remoteAccess"])
        if inputs.get("tags"):
            kwargs["tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
        id = f"{cluster}:{group}"
        eks = self.clients("eks")
        with applying(self.token, name, "create"):
            eks.create_nodegroup(**kwargs)
            eks.get_waiter("nodegroup_active").wait(clusterName=cluster, nodegroupName=group)
        return id, present(self.read(id, {**inputs, "nodeGroupName": group}), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        cluster, group = id.split(":", 1)
        eks = self.clients("eks")
        config: dict[str, Any] = {}
        if _ints(news.get("scalingConfig")) != _ints(olds.get("scalingConfig")):
            config["scalingConfig"] = _ints(news.get("scalingConfig"))
        if news.get("updateConfig") and _ints(news["updateConfig"]) != _ints(
            olds.get("updateConfig")
        ):
            config["updateConfig"] = _ints(news["updateConfig"])
        old_labels, new_labels = olds.get("labels") or {}, news.get("labels") or {}
        if old_labels != new_labels:
            config["labels"] = {
                "addOrUpdateLabels": {
                    k: str(v) for k, v in new_labels.items() if old_labels.get(k) != v
                },
                "removeLabels": [k for k in old_labels if k not in new_labels],
            }
        old_taints = [_ints(t) for t in olds.get("taints") or []]
        new_taints = [_ints(t) for t in news.get("taints") or []]
        if old_taints != new_taints:
            config["taints"] = {
                "addOrUpdateTaints": [t for t in new_taints if t not in old_taints],
                "removeTaints": [t for t in old_taints if t not in new_taints],
            }
        with applying(self.token, id, "update"):
            if config:
                eks.update_nodegroup_config(clusterName=cluster, nodegroupName=group, **config)
                eks.get_waiter("nodegroup_active").wait(clusterName=cluster, nodegroupName=group)
            versions: dict[str, Any] = {
                parameter: str(news[key])
                for key, parameter in (("version", "version"), ("releaseVersion", "releaseVersion"))
                if news.get(key) and news.get(key) != olds.get(key)
            }
            if versions or news.get("launchTemplate") != olds.get("launchTemplate"):
                if news.get("launchTemplate"):
                    versions["launchTemplate"] = _ints(news["launchTemplate"])
                eks.update_nodegroup_version(
                    clusterName=cluster,
                    nodegroupName=group,
                    force=bool(news.get("forceUpdateVersion", False)),
                    **versions,
                )
                eks.get_waiter("nodegroup_active").wait(clusterName=cluster, nodegroupName=group)
            if tag_changes(olds, news) != ({}, []):
                arn = eks.describe_nodegroup(clusterName=cluster, nodegroupName=group)["nodegroup"][
                    "nodegroupArn"
                ]
                _retag(eks, arn, olds, news)
        return present(self.read(id, {**news, "nodeGroupName": group}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        cluster, group = id.split(":", 1)
        with applying(self.token, id, "read"):
            try:
                found = self.clients("eks").describe_nodegroup(
                    clusterName=cluster, nodegroupName=group
                )["nodegroup"]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
        resources = found.get("resources") or {}
        outputs: dict[str, Any] = {
            **inputs,
            "clusterName": found["clusterName"],
            "nodeGroupName": found["nodegroupName"],
            "arn": found["nodegroupArn"],
            "nodeRoleArn": found["nodeRole"],
            "subnetIds": in_declared_order(
                list(found.get("subnets") or []), inputs.get("subnetIds")
            ),
            "scalingConfig": declared_keys(
                _floats(dict(found.get("scalingConfig") or {})), inputs.get("scalingConfig")
            ),
            "amiType": found.get("amiType", ""),
            "capacityType": found.get("capacityType", ""),
            "diskSize": float(found.get("diskSize") or 0),
            "instanceTypes": in_declared_order(
                list(found.get("instanceTypes") or []), inputs.get("instanceTypes")
            ),
            "releaseVersion": found.get("releaseVersion", ""),
            "version": found.get("version", ""),
            "status": found.get("status", ""),
            "labels": dict(found.get("labels") or {}),
            "resources": [
                {
                    "autoscalingGroups": [
                        {"name": g["name"]} for g in resources.get("autoScalingGroups", [])
                    ],
                    "remoteAccessSecurityGroupId": resources.get("remoteAccessSecurityGroup", ""),
                }
            ],
        }
        if found.get("taints") or "taints" in inputs:
            outputs["taints"] = [_floats(dict(t)) for t in found.get("taints") or []]
        if found.get("updateConfig") or "updateConfig" in inputs:
            outputs["updateConfig"] = declared_keys(
                _floats(dict(found.get("updateConfig") or {})), inputs.get("updateConfig")
            )
        return with_tags(outputs, found.get("tags") or {})

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        cluster, group = id.split(":", 1)
        eks = self.clients("eks")
        with applying(self.token, id, "delete"):
            with already_gone(_GONE):
                eks.delete_nodegroup(clusterName=cluster, nodegroupName=group)
            eks.get_waiter("nodegroup_deleted").wait(clusterName=cluster, nodegroupName=group)


def appliers(clients: Clients) -> list[ResourceType]:
    """The EKS appliers."""
    return [Cluster(clients), NodeGroup(clients)]
