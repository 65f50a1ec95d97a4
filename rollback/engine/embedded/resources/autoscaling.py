"""EC2 Auto Scaling groups (launch template or launch configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import applying, present
from rollback.engine.embedded.resources.naming import physical_name

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_INTS = (
    ("minSize", "MinSize"),
    ("maxSize", "MaxSize"),
    ("desiredCapacity", "DesiredCapacity"),
    ("healthCheckGracePeriod", "HealthCheckGracePeriod"),
    ("defaultCooldown", "DefaultCooldown"),
)


def _launch_template(inputs: dict[str, Any]) -> dict[str, Any] | None:
    template = inputs.get("launchTemplate")
    if not template:
        return None
    spec: dict[str, Any] = {}
    if template.get("id"):
        spec["LaunchTemplateId"] = template["id"]
    elif template.get("name"):
        spec["LaunchTemplateName"] = template["name"]
    spec["Version"] = str(template.get("version") or "$Default")
    return spec


def _tags(name: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "ResourceId": name,
            "ResourceType": "auto-scaling-group",
            "Key": str(tag["key"]),
            "Value": str(tag.get("value", "")),
            "PropagateAtLaunch": bool(tag.get("propagateAtLaunch", False)),
        }
        for tag in inputs.get("tags") or []
    ]


@dataclass(frozen=True)
class Group:
    """aws:autoscaling/group:Group; id is the group name.

    Sizes, launch template, subnets, target groups, health check settings and
    tags change in place; delete force-deletes (instances included), as the
    provider's forceDelete does.
    """

    clients: Clients
    token = "aws:autoscaling/group:Group"
    replace_on = frozenset({"name", "namePrefix", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {"AutoScalingGroupName": group, **self._settings(inputs)}
        if inputs.get("launchConfiguration"):
            kwargs["LaunchConfigurationName"] = inputs["launchConfiguration"]
        if inputs.get("tags"):
            kwargs["Tags"] = _tags(group, inputs)
        with applying(self.token, name, "create"):
            self.clients("autoscaling").create_auto_scaling_group(**kwargs)
        return group, present(self.read(group, {**inputs, "name": group}), self.token, group)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        autoscaling = self.clients("autoscaling")
        with applying(self.token, id, "update"):
            settings = self._settings(news)
            settings.pop("TargetGroupARNs", None)
            if news.get("launchConfiguration"):
                settings["LaunchConfigurationName"] = news["launchConfiguration"]
            autoscaling.update_auto_scaling_group(AutoScalingGroupName=id, **settings)
            old_groups = set(olds.get("targetGroupArns") or [])
            new_groups = set(news.get("targetGroupArns") or [])
            if old_groups - new_groups:
                autoscaling.detach_load_balancer_target_groups(
                    AutoScalingGroupName=id, TargetGroupARNs=sorted(old_groups - new_groups)
                )
            if new_groups - old_groups:
                autoscaling.attach_load_balancer_target_groups(
                    AutoScalingGroupName=id, TargetGroupARNs=sorted(new_groups - old_groups)
                )
            if news.get("tags") != olds.get("tags"):
                removed = {str(t["key"]) for t in olds.get("tags") or []} - {
                    str(t["key"]) for t in news.get("tags") or []
                }
                if removed:
                    autoscaling.delete_tags(
                        Tags=[
                            {"ResourceId": id, "ResourceType": "auto-scaling-group", "Key": k}
                            for k in sorted(removed)
                        ]
                    )
                if news.get("tags"):
                    autoscaling.create_or_update_tags(Tags=_tags(id, news))
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            groups = self.clients("autoscaling").describe_auto_scaling_groups(
                AutoScalingGroupNames=[id]
            )["AutoScalingGroups"]
        if not groups or groups[0].get("Status") == "Delete in progress":
            return None
        group = groups[0]
        outputs: dict[str, Any] = {
            **inputs,
            "name": id,
            "arn": group.get("AutoScalingGroupARN", ""),
            **{
                key: float(group[parameter])
                for key, parameter in _INTS
                if parameter in group
                and (key in inputs or key in ("minSize", "maxSize", "desiredCapacity"))
            },
            "healthCheckType": group.get("HealthCheckType", "EC2"),
        }
        if "protectFromScaleIn" in inputs:
            outputs["protectFromScaleIn"] = bool(group.get("NewInstancesProtectedFromScaleIn"))
        if "vpcZoneIdentifiers" in inputs or group.get("VPCZoneIdentifier"):
            subnets = [s for s in str(group.get("VPCZoneIdentifier", "")).split(",") if s]
            outputs["vpcZoneIdentifiers"] = in_declared_order(
                subnets, inputs.get("vpcZoneIdentifiers")
            )
        if "availabilityZones" in inputs:
            outputs["availabilityZones"] = in_declared_order(
                list(group.get("AvailabilityZones", [])), inputs.get("availabilityZones")
            )
        if "targetGroupArns" in inputs or group.get("TargetGroupARNs"):
            outputs["targetGroupArns"] = in_declared_order(
                list(group.get("TargetGroupARNs", [])), inputs.get("targetGroupArns")
            )
        template = group.get("LaunchTemplate")
        if template and "launchTemplate" in inputs:
            declared = inputs["launchTemplate"] or {}
            outputs["launchTemplate"] = {
                **declared,
                **({"id": template["LaunchTemplateId"]} if "id" in declared else {}),
                **({"name": template["LaunchTemplateName"]} if "name" in declared else {}),
            }
        if group.get("LaunchConfigurationName") or "launchConfiguration" in inputs:
            outputs["launchConfiguration"] = group.get("LaunchConfigurationName", "")
        if "tags" in inputs:
            declared_tags = {str(t["key"]): t for t in inputs.get("tags") or []}
            outputs["tags"] = [
                {
                    **declared_tags.get(t["Key"], {}),
                    "key": t["Key"],
                    "value": t.get("Value", ""),
                    "propagateAtLaunch": bool(t.get("PropagateAtLaunch", False)),
                }
                for t in group.get("Tags", [])
            ]
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "delete"):
            try:
                self.clients("autoscaling").delete_auto_scaling_group(
                    AutoScalingGroupName=id, ForceDelete=True
                )
            except ClientError as exc:
                if "not found" not in str(exc).lower():
                    raise

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {
            parameter: int(inputs[key]) for key, parameter in _INTS if inputs.get(key) is not None
        }
        template = _launch_template(inputs)
        if template:
            settings["LaunchTemplate"] = template
        if inputs.get("vpcZoneIdentifiers"):
            settings["VPCZoneIdentifier"] = ",".join(inputs["vpcZoneIdentifiers"])
        if inputs.get("availabilityZones"):
            settings["AvailabilityZones"] = list(inputs["availabilityZones"])
        if inputs.get("targetGroupArns"):
            settings["TargetGroupARNs"] = list(inputs["targetGroupArns"])
        if inputs.get("healthCheckType"):
            settings["HealthCheckType"] = inputs["healthCheckType"]
        if inputs.get("protectFromScaleIn") is not None:
            settings["NewInstancesProtectedFromScaleIn"] = bool(inputs["protectFromScaleIn"])
        return settings


def appliers(clients: Clients) -> list[ResourceType]:
    """The Auto Scaling appliers."""
    return [Group(clients)]
