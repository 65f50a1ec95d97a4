"""ECS: clusters, task definitions and services (Fargate or EC2, with load balancers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import covers, in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = ("ClusterNotFoundException", "ServiceNotFoundException", "ClientException")


def _retag(ecs: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        ecs.tag_resource(resourceArn=arn, tags=aws_tags(to_set, "key", "value"))
    if to_remove:
        ecs.untag_resource(resourceArn=arn, tagKeys=to_remove)


def _settings(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"name": str(s["name"]), "value": str(s["value"])} for s in inputs.get("settings") or []
    ]


@dataclass(frozen=True)
class Cluster:
    """aws:ecs/cluster:Cluster; id is the ARN. Settings and tags change in place."""

    clients: Clients
    token = "aws:ecs/cluster:Cluster"
    replace_on = frozenset({"name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        cluster = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {"clusterName": cluster}
        if inputs.get("settings"):
            kwargs["settings"] = _settings(inputs)
        if inputs.get("tags"):
            kwargs["tags"] = aws_tags(inputs["tags"], "key", "value")
        with applying(self.token, name, "create"):
            arn = self.clients("ecs").create_cluster(**kwargs)["cluster"]["clusterArn"]
        return arn, present(self.read(arn, {**inputs, "name": cluster}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ecs = self.clients("ecs")
        with applying(self.token, id, "update"):
            if news.get("settings") != olds.get("settings") and news.get("settings"):
                ecs.update_cluster_settings(cluster=id, settings=_settings(news))
            _retag(ecs, id, olds, news)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            clusters = self.clients("ecs").describe_clusters(
                clusters=[id], include=["SETTINGS", "TAGS"]
            )["clusters"]
        if not clusters or clusters[0].get("status") == "INACTIVE":
            return None
        cluster = clusters[0]
        outputs = {**inputs, "name": cluster["clusterName"], "arn": cluster["clusterArn"]}
        if "settings" in inputs:
            outputs["settings"] = [
                {"name": s["name"], "value": s["value"]} for s in cluster.get("settings", [])
            ]
        return with_tags(outputs, pulumi_tags(cluster.get("tags"), "key", "value"))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("ecs").delete_cluster(cluster=id)


# Pulumi task definition input -> RegisterTaskDefinition parameter, for plain values.
_TASK_SETTINGS = {
    "family": "family",
    "cpu": "cpu",
    "memory": "memory",
    "networkMode": "networkMode",
    "executionRoleArn": "executionRoleArn",
    "taskRoleArn": "taskRoleArn",
    "pidMode": "pidMode",
    "ipcMode": "ipcMode",
}


def _volumes(volumes: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    aws = []
    for volume in volumes or []:
        entry: dict[str, Any] = {"name": volume["name"]}
        if volume.get("hostPath"):
            entry["host"] = {"sourcePath": volume["hostPath"]}
        aws.append(entry)
    return aws


@dataclass(frozen=True)
class TaskDefinition:
    """aws:ecs/taskDefinition:TaskDefinition; id is the revision's ARN.

    A task definition revision is immutable: every change but tags registers a
    new one (replacement); delete deregisters the revision, as the provider does.
    """

    clients: Clients
    token = "aws:ecs/taskDefinition:TaskDefinition"
    replace_on = frozenset(
        {
            "family",
            "containerDefinitions",
            "cpu",
            "memory",
            "networkMode",
            "executionRoleArn",
            "taskRoleArn",
            "requiresCompatibilities",
            "volumes",
            "runtimePlatform",
            "pidMode",
            "ipcMode",
            "ephemeralStorage",
            "placementConstraints",
            "proxyConfiguration",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            parameter: str(inputs[key])
            for key, parameter in _TASK_SETTINGS.items()
            if inputs.get(key)
        }
        kwargs["containerDefinitions"] = json.loads(inputs["containerDefinitions"])
        if inputs.get("requiresCompatibilities"):
            kwargs["requiresCompatibilities"] = list(inputs["requiresCompatibilities"])
        if inputs.get("volumes"):
            kwargs["volumes"] = _volumes(inputs["volumes"])
        platform = inputs.get("runtimePlatform")
        if platform:
            kwargs["runtimePlatform"] = {
                k: platform[p]
                for p, k in (
                    ("cpuArchitecture", "cpuArchitecture"),
                    ("operatingSystemFamily", "operatingSystemFamily"),
                )
                if platform.get(p)
            }
        if inputs.get("ephemeralStorage"):
            kwargs["ephemeralStorage"] = {"sizeInGiB": int(inputs["ephemeralStorage"]["sizeInGib"])}
        if inputs.get("tags"):
            kwargs["tags"] = aws_tags(inputs["tags"], "key", "value")
        with applying(self.token, name, "create"):
            definition = self.clients("ecs").register_task_definition(**kwargs)["taskDefinition"]
        arn = definition["taskDefinitionArn"]
        return arn, present(self.read(arn, inputs), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ecs = self.clients("ecs")
        with applying(self.token, id, "update"):
            _retag(ecs, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                answer = self.clients("ecs").describe_task_definition(
                    taskDefinition=id, include=["TAGS"]
                )
            except ClientError:
                return None  # ECS answers ClientException for an unknown revision
        definition = answer["taskDefinition"]
        if definition.get("status") == "INACTIVE":
            return None
        live_containers = definition.get("containerDefinitions", [])
        declared = inputs.get("containerDefinitions")
        try:
            declared_containers = json.loads(declared) if isinstance(declared, str) else None
        except ValueError:
            declared_containers = None
        containers = (
            declared
            if declared_containers is not None and covers(live_containers, declared_containers)
            else json.dumps(live_containers, sort_keys=True)
        )
        arn = definition["taskDefinitionArn"]
        outputs = {
            **inputs,
            **{
                key: definition[parameter]
                for key, parameter in _TASK_SETTINGS.items()
                if parameter in definition
            },
            "containerDefinitions": containers,
            "arn": arn,
            "arnWithoutRevision": arn.rsplit(":", 1)[0],
            "revision": float(definition["revision"]),
        }
        if "requiresCompatibilities" in definition:
            outputs["requiresCompatibilities"] = in_declared_order(
                list(definition["requiresCompatibilities"]), inputs.get("requiresCompatibilities")
            )
        return with_tags(outputs, pulumi_tags(answer.get("tags"), "key", "value"))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        if inputs.get("skipDestroy"):
            return
        with applying(self.token, id, "delete"), already_gone("ClientException"):
            self.clients("ecs").deregister_task_definition(taskDefinition=id)


def _network(inputs: dict[str, Any]) -> dict[str, Any] | None:
    network = inputs.get("networkConfiguration")
    if not network:
        return None
    # An empty list means the VPC's default group, as leaving it out does.
    config: dict[str, Any] = {
        "subnets": list(network.get("subnets") or []),
        "securityGroups": list(network.get("securityGroups") or []),
    }
    config["assignPublicIp"] = "ENABLED" if network.get("assignPublicIp") else "DISABLED"
    return {"awsvpcConfiguration": config}


def _load_balancers(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    balancers = []
    for lb in inputs.get("loadBalancers") or []:
        entry: dict[str, Any] = {
            "containerName": lb["containerName"],
            "containerPort": int(lb["containerPort"]),
        }
        if lb.get("targetGroupArn"):
            entry["targetGroupArn"] = lb["targetGroupArn"]
        if lb.get("elbName"):
            entry["loadBalancerName"] = lb["elbName"]
        balancers.append(entry)
    return balancers


def _deployment_configuration(inputs: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if inputs.get("deploymentMaximumPercent") is not None:
        config["maximumPercent"] = int(inputs["deploymentMaximumPercent"])
    if inputs.get("deploymentMinimumHealthyPercent") is not None:
        config["minimumHealthyPercent"] = int(inputs["deploymentMinimumHealthyPercent"])
    return config


@dataclass(frozen=True)
class Service:
    """aws:ecs/service:Service; id is the ARN.

    Desired count, task definition, network configuration, load balancers,
    deployment percentages, grace period and tags change in place; delete
    scales to zero and deletes with force, as the provider does.
    """

    clients: Clients
    token = "aws:ecs/service:Service"
    replace_on = frozenset(
        {"name", "cluster", "launchType", "schedulingStrategy", "deploymentController", "region"}
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        service = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {
            "serviceName": service,
            "taskDefinition": inputs["taskDefinition"],
        }
        if inputs.get("cluster"):
            kwargs["cluster"] = inputs["cluster"]
        if inputs.get("schedulingStrategy") != "DAEMON":
            kwargs["desiredCount"] = int(inputs.get("desiredCount") or 0)
        for key, parameter in (
            ("launchType", "launchType"),
            ("platformVersion", "platformVersion"),
            ("schedulingStrategy", "schedulingStrategy"),
            ("propagateTags", "propagateTags"),
        ):
            if inputs.get(key):
                kwargs[parameter] = inputs[key]
        if inputs.get("healthCheckGracePeriodSeconds") is not None:
            kwargs["healthCheckGracePeriodSeconds"] = int(inputs["healthCheckGracePeriodSeconds"])
        if inputs.get("enableExecuteCommand") is not None:
            kwargs["enableExecuteCommand"] = bool(inputs["enableExecuteCommand"])
        network = _network(inputs)
        if network:
            kwargs["networkConfiguration"] = network
        if inputs.get("loadBalancers"):
            kwargs["loadBalancers"] = _load_balancers(inputs)
        deployment = _deployment_configuration(inputs)
        if deployment:
            kwargs["deploymentConfiguration"] = deployment
        if inputs.get("deploymentController"):
            kwargs["deploymentController"] = {"type": inputs["deploymentController"]["type"]}
        if inputs.get("tags"):
            kwargs["tags"] = aws_tags(inputs["tags"], "key", "value")
        with applying(self.token, name, "create"):
            arn = self.clients("ecs").create_service(**kwargs)["service"]["serviceArn"]
        return arn, present(self.read(arn, {**inputs, "name": service}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ecs = self.clients("ecs")
        kwargs: dict[str, Any] = {"cluster": self._cluster(id, news), "service": id}
        if news.get("schedulingStrategy") != "DAEMON":
            kwargs["desiredCount"] = int(news.get("desiredCount") or 0)
        if news.get("taskDefinition") != olds.get("taskDefinition"):
            kwargs["taskDefinition"] = news["taskDefinition"]
        network = _network(news)
        if network and news.get("networkConfiguration") != olds.get("networkConfiguration"):
            kwargs["networkConfiguration"] = network
        if news.get("loadBalancers") != olds.get("loadBalancers"):
            kwargs["loadBalancers"] = _load_balancers(news)
        deployment = _deployment_configuration(news)
        if deployment:
            kwargs["deploymentConfiguration"] = deployment
        if news.get("healthCheckGracePeriodSeconds") is not None:
            kwargs["healthCheckGracePeriodSeconds"] = int(news["healthCheckGracePeriodSeconds"])
        if news.get("forceNewDeployment"):
            kwargs["forceNewDeployment"] = True
        with applying(self.token, id, "update"):
            ecs.update_service(**kwargs)
            _retag(ecs, id, olds, news)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        ecs = self.clients("ecs")
        with applying(self.token, id, "read"):
            try:
                services = ecs.describe_services(
                    cluster=self._cluster(id, inputs), services=[id], include=["TAGS"]
                )["services"]
            except ClientError:
                return None
        if not services or services[0].get("status") in ("INACTIVE", "DRAINING"):
            return None
        service = services[0]
        outputs = {
            **inputs,
            "name": service["serviceName"],
            "cluster": inputs.get("cluster") or service.get("clusterArn", ""),
            "taskDefinition": service.get("taskDefinition", ""),
        }
        if service.get("schedulingStrategy") != "DAEMON":
            outputs["desiredCount"] = float(service.get("desiredCount", 0))
        if service.get("launchType"):
            outputs["launchType"] = service["launchType"]
        if "loadBalancers" in inputs or service.get("loadBalancers"):
            declared = {
                (lb.get("targetGroupArn"), lb.get("containerName")): lb
                for lb in inputs.get("loadBalancers") or []
            }
            outputs["loadBalancers"] = in_declared_order(
                [
                    {
                        **declared.get((lb.get("targetGroupArn"), lb.get("containerName")), {}),
                        "targetGroupArn": lb.get("targetGroupArn", ""),
                        "containerName": lb["containerName"],
                        "containerPort": float(lb["containerPort"]),
                    }
                    for lb in service.get("loadBalancers", [])
                ],
                inputs.get("loadBalancers"),
            )
        network = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        if network is not None:
            declared_network = inputs.get("networkConfiguration") or {}
            live_network: dict[str, Any] = {
                **declared_network,
                "subnets": in_declared_order(
                    list(network.get("subnets", [])), declared_network.get("subnets")
                ),
                "assignPublicIp": network.get("assignPublicIp") == "ENABLED",
            }
            if "securityGroups" in declared_network or network.get("securityGroups"):
                live_network["securityGroups"] = in_declared_order(
                    list(network.get("securityGroups", [])), declared_network.get("securityGroups")
                )
            outputs["networkConfiguration"] = live_network
        return with_tags(outputs, pulumi_tags(service.get("tags"), "key", "value"))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ecs = self.clients("ecs")
        cluster = self._cluster(id, inputs)
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            if inputs.get("schedulingStrategy") != "DAEMON":
                ecs.update_service(cluster=cluster, service=id, desiredCount=0)
            ecs.delete_service(cluster=cluster, service=id, force=True)

    @staticmethod
    def _cluster(id: str, inputs: dict[str, Any]) -> str:
        """The service's cluster: declared, else read from its ARN (`service/<cluster>/<name>`)."""
        if inputs.get("cluster"):
            return str(inputs["cluster"])
        parts = id.split(":", 5)[-1].split("/")
        return parts[1] if len(parts) == 3 else "default"


def appliers(clients: Clients) -> list[ResourceType]:
    """The ECS appliers."""
    return [Cluster(clients), TaskDefinition(clients), Service(clients)]
