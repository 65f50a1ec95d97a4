"""Elastic Load Balancing v2: application load balancers, target groups, attachments, listeners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_keys, in_declared_order
from rollback.engine.embedded.resources.failures import (
    already_gone,
    applying,
    aws_code,
    delete_when_free,
    present,
)
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

# Pulumi input -> ALB attribute key, with how the value is written to AWS and read back.
_LB_ATTRIBUTES = {
    "idleTimeout": ("idle_timeout.timeout_seconds", float),
    "enableDeletionProtection": ("deletion_protection.enabled", bool),
    "enableHttp2": ("routing.http2.enabled", bool),
    "dropInvalidHeaderFields": ("routing.http.drop_invalid_header_fields.enabled", bool),
}


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _attribute_value(text: str, kind: type) -> Any:
    return text == "true" if kind is bool else kind(text)


def _live_tags(elbv2: Any, arn: str) -> dict[str, str]:
    descriptions = elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
    return pulumi_tags(descriptions[0].get("Tags") if descriptions else [])


def _retag(elbv2: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        elbv2.add_tags(ResourceArns=[arn], Tags=aws_tags(to_set))
    if to_remove:
        elbv2.remove_tags(ResourceArns=[arn], TagKeys=to_remove)


def _arn_suffix(arn: str, marker: str) -> str:
    """`arn:...:loadbalancer/app/x/123` -> `app/x/123` (what CloudWatch dimensions use)."""
    return arn.split(f":{marker}", 1)[1] if f":{marker}" in arn else arn


@dataclass(frozen=True)
class LoadBalancer:
    """aws:lb/loadBalancer:LoadBalancer (application); id is the ARN.

    Tags, security groups, subnets and the attributes in _LB_ATTRIBUTES change in place.
    """

    clients: Clients
    token = "aws:lb/loadBalancer:LoadBalancer"
    replace_on = frozenset({"name", "namePrefix", "internal", "loadBalancerType", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        elbv2 = self.clients("elbv2")
        lb_name = physical_name(inputs, "name", name, 32)
        kwargs: dict[str, Any] = {
            "Name": lb_name,
            "Subnets": list(inputs.get("subnets") or []),
            "Scheme": "internal" if inputs.get("internal") else "internet-facing",
            "Type": inputs.get("loadBalancerType", "application"),
            "IpAddressType": inputs.get("ipAddressType", "ipv4"),
        }
        if inputs.get("securityGroups"):
            kwargs["SecurityGroups"] = list(inputs["securityGroups"])
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            arn = elbv2.create_load_balancer(**kwargs)["LoadBalancers"][0]["LoadBalancerArn"]
            elbv2.get_waiter("load_balancer_available").wait(LoadBalancerArns=[arn])
            self._set_attributes(elbv2, arn, {}, inputs)
        return arn, present(self.read(arn, {**inputs, "name": lb_name}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "update"):
            _retag(elbv2, id, olds, news)
            if sorted(news.get("securityGroups") or []) != sorted(olds.get("securityGroups") or []):
                elbv2.set_security_groups(
                    LoadBalancerArn=id, SecurityGroups=list(news.get("securityGroups") or [])
                )
            if sorted(news.get("subnets") or []) != sorted(olds.get("subnets") or []):
                elbv2.set_subnets(LoadBalancerArn=id, Subnets=list(news.get("subnets") or []))
            self._set_attributes(elbv2, id, olds, news)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "read"):
            try:
                lb = elbv2.describe_load_balancers(LoadBalancerArns=[id])["LoadBalancers"][0]
            except ClientError as exc:
                if aws_code(exc) == "LoadBalancerNotFound":
                    return None
                raise
            attributes = {
                a["Key"]: a["Value"]
                for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=id)["Attributes"]
            }
            tags = _live_tags(elbv2, id)
        outputs = {
            **inputs,
            "name": lb["LoadBalancerName"],
            "arn": id,
            "arnSuffix": _arn_suffix(id, "loadbalancer/"),
            "dnsName": lb["DNSName"],
            "zoneId": lb["CanonicalHostedZoneId"],
            "vpcId": lb.get("VpcId", ""),
            "internal": lb["Scheme"] == "internal",
            "loadBalancerType": lb["Type"],
            "ipAddressType": lb.get("IpAddressType", "ipv4"),
            "subnets": in_declared_order(
                [z["SubnetId"] for z in lb.get("AvailabilityZones", [])], inputs.get("subnets")
            ),
            "securityGroups": in_declared_order(
                list(lb.get("SecurityGroups", [])), inputs.get("securityGroups")
            ),
        }
        for key, (attribute, kind) in _LB_ATTRIBUTES.items():
            if attribute in attributes:
                outputs[key] = _attribute_value(attributes[attribute], kind)
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "delete"):
            with already_gone("LoadBalancerNotFound"):
                elbv2.delete_load_balancer(LoadBalancerArn=id)
            elbv2.get_waiter("load_balancers_deleted").wait(LoadBalancerArns=[id])

    def _set_attributes(
        self, elbv2: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> None:
        changed = [
            {"Key": attribute, "Value": _attribute_text(news[key])}
            for key, (attribute, _) in _LB_ATTRIBUTES.items()
            if key in news and news[key] != olds.get(key)
        ]
        if changed:
            elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=changed)


# Pulumi healthCheck key -> (AWS create/modify parameter, describe key, type).
_HEALTH_CHECK = {
    "enabled": ("HealthCheckEnabled", bool),
    "path": ("HealthCheckPath", str),
    "port": ("HealthCheckPort", str),
    "protocol": ("HealthCheckProtocol", str),
    "interval": ("HealthCheckIntervalSeconds", float),
    "timeout": ("HealthCheckTimeoutSeconds", float),
    "healthyThreshold": ("HealthyThresholdCount", float),
    "unhealthyThreshold": ("UnhealthyThresholdCount", float),
}


# Pulumi targetGroup input -> create parameter and describe key, for the plain strings.
_TARGET_GROUP_SETTINGS = (
    ("protocol", "Protocol"),
    ("vpcId", "VpcId"),
    ("protocolVersion", "ProtocolVersion"),
)


def _health_check_parameters(health_check: dict[str, Any] | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for key, value in (health_check or {}).items():
        if key == "matcher" and value:
            parameters["Matcher"] = {"HttpCode": str(value)}
        elif key in _HEALTH_CHECK and value is not None:
            parameter, kind = _HEALTH_CHECK[key]
            parameters[parameter] = int(value) if kind is float else kind(value)
    return parameters


@dataclass(frozen=True)
class TargetGroup:
    """aws:lb/targetGroup:TargetGroup; id is the ARN.

    The health check, deregistration delay, stickiness and tags change in place.
    """

    clients: Clients
    token = "aws:lb/targetGroup:TargetGroup"
    replace_on = frozenset(
        {
            "name",
            "namePrefix",
            "port",
            "protocol",
            "protocolVersion",
            "vpcId",
            "targetType",
            "ipAddressType",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        elbv2 = self.clients("elbv2")
        tg_name = physical_name(inputs, "name", name, 32)
        kwargs: dict[str, Any] = {
            "Name": tg_name,
            "TargetType": inputs.get("targetType", "instance"),
            **_health_check_parameters(inputs.get("healthCheck")),
        }
        for key, parameter in _TARGET_GROUP_SETTINGS:
            if inputs.get(key):
                kwargs[parameter] = inputs[key]
        if inputs.get("port") is not None:
            kwargs["Port"] = int(inputs["port"])
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            arn = elbv2.create_target_group(**kwargs)["TargetGroups"][0]["TargetGroupArn"]
            self._set_attributes(elbv2, arn, {}, inputs)
        return arn, present(self.read(arn, {**inputs, "name": tg_name}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "update"):
            _retag(elbv2, id, olds, news)
            if news.get("healthCheck") != olds.get("healthCheck"):
                parameters = _health_check_parameters(news.get("healthCheck"))
                if parameters:
                    elbv2.modify_target_group(TargetGroupArn=id, **parameters)
            self._set_attributes(elbv2, id, olds, news)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "read"):
            try:
                tg = elbv2.describe_target_groups(TargetGroupArns=[id])["TargetGroups"][0]
            except ClientError as exc:
                if aws_code(exc) == "TargetGroupNotFound":
                    return None
                raise
            attributes = {
                a["Key"]: a["Value"]
                for a in elbv2.describe_target_group_attributes(TargetGroupArn=id)["Attributes"]
            }
            tags = _live_tags(elbv2, id)
        health_check: dict[str, Any] = {
            key: kind(tg[parameter])
            for key, (parameter, kind) in _HEALTH_CHECK.items()
            if parameter in tg
        }
        if tg.get("Matcher", {}).get("HttpCode"):
            health_check["matcher"] = tg["Matcher"]["HttpCode"]
        outputs = {
            **inputs,
            "name": tg["TargetGroupName"],
            "arn": id,
            "arnSuffix": id.split(":")[-1],
            "targetType": tg.get("TargetType", "instance"),
            "loadBalancerArns": sorted(tg.get("LoadBalancerArns", [])),
            "healthCheck": declared_keys(health_check, inputs.get("healthCheck")),
        }
        for key, parameter in _TARGET_GROUP_SETTINGS:
            if parameter in tg:
                outputs[key] = tg[parameter]
        if "Port" in tg:
            outputs["port"] = float(tg["Port"])
        if "deregistration_delay.timeout_seconds" in attributes:
            outputs["deregistrationDelay"] = float(
                attributes["deregistration_delay.timeout_seconds"]
            )
        if "stickiness" in inputs or attributes.get("stickiness.enabled") == "true":
            live_stickiness = {
                "enabled": attributes.get("stickiness.enabled") == "true",
                "type": attributes.get("stickiness.type", "lb_cookie"),
                "cookieDuration": float(
                    attributes.get("stickiness.lb_cookie.duration_seconds", 86400)
                ),
            }
            outputs["stickiness"] = declared_keys(live_stickiness, inputs.get("stickiness"))
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        elbv2 = self.clients("elbv2")
        delete_when_free(
            self.token,
            id,
            lambda: elbv2.delete_target_group(TargetGroupArn=id),
            {"TargetGroupNotFound"},
        )

    def _set_attributes(
        self, elbv2: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> None:
        changed: list[dict[str, str]] = []
        if "deregistrationDelay" in news and news["deregistrationDelay"] != olds.get(
            "deregistrationDelay"
        ):
            changed.append(
                {
                    "Key": "deregistration_delay.timeout_seconds",
                    "Value": _attribute_text(news["deregistrationDelay"]),
                }
            )
        stickiness = news.get("stickiness") or {}
        if stickiness and stickiness != olds.get("stickiness"):
            changed.append(
                {
                    "Key": "stickiness.enabled",
                    "Value": _attribute_text(bool(stickiness.get("enabled", True))),
                }
            )
            changed.append(
                {"Key": "stickiness.type", "Value": str(stickiness.get("type", "lb_cookie"))}
            )
            if stickiness.get("cookieDuration") is not None:
                changed.append(
                    {
                        "Key": "stickiness.lb_cookie.duration_seconds",
                        "Value": _attribute_text(stickiness["cookieDuration"]),
                    }
                )
        if changed:
            elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=changed)


def _target(inputs: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = {"Id": str(inputs["targetId"])}
    if inputs.get("port") is not None:
        target["Port"] = int(inputs["port"])
    if inputs.get("availabilityZone"):
        target["AvailabilityZone"] = inputs["availabilityZone"]
    return target


@dataclass(frozen=True)
class TargetGroupAttachment:
    """aws:lb/targetGroupAttachment:TargetGroupAttachment; id is `<tg arn>,<target id>[,<port>]`.

    Nothing changes in place: every input forces a new registration.
    """

    clients: Clients
    token = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
    replace_on = frozenset({"targetGroupArn", "targetId", "port", "availabilityZone", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        target = _target(inputs)
        with applying(self.token, name, "create"):
            self.clients("elbv2").register_targets(
                TargetGroupArn=inputs["targetGroupArn"], Targets=[target]
            )
        id = ",".join(
            [
                inputs["targetGroupArn"],
                target["Id"],
                *([str(target["Port"])] if "Port" in target else []),
            ]
        )
        return id, dict(inputs)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return dict(news)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The attachment while the target is registered (not draining or unregistered)."""
        from botocore.exceptions import ClientError

        target = _target(inputs)
        with applying(self.token, id, "read"):
            try:
                health = self.clients("elbv2").describe_target_health(
                    TargetGroupArn=inputs["targetGroupArn"]
                )
            except ClientError as exc:
                if aws_code(exc) == "TargetGroupNotFound":
                    return None
                raise
        for description in health["TargetHealthDescriptions"]:
            live = description["Target"]
            state = description.get("TargetHealth", {}).get("State")
            if (
                live["Id"] == target["Id"]
                and live.get("Port", target.get("Port")) == target.get("Port", live.get("Port"))
                and state not in ("draining", "unused")
            ):
                return dict(inputs)
        return None

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with (
            applying(self.token, id, "delete"),
            already_gone("TargetGroupNotFound", "InvalidTarget"),
        ):
            self.clients("elbv2").deregister_targets(
                TargetGroupArn=inputs["targetGroupArn"], Targets=[_target(inputs)]
            )


# Pulumi action key -> ELBv2 config key, for fixed responses and redirects.
_FIXED_RESPONSE = (
    ("contentType", "ContentType"),
    ("messageBody", "MessageBody"),
    ("statusCode", "StatusCode"),
)
_REDIRECT = (
    ("host", "Host"),
    ("path", "Path"),
    ("port", "Port"),
    ("protocol", "Protocol"),
    ("query", "Query"),
    ("statusCode", "StatusCode"),
)


def _aws_action(action: dict[str, Any]) -> dict[str, Any]:
    """A Pulumi listener default action -> an ELBv2 Action."""
    aws: dict[str, Any] = {"Type": action["type"]}
    if action.get("order") is not None:
        aws["Order"] = int(action["order"])
    if action.get("targetGroupArn"):
        aws["TargetGroupArn"] = action["targetGroupArn"]
    forward = action.get("forward")
    if forward:
        config: dict[str, Any] = {
            "TargetGroups": [
                {
                    "TargetGroupArn": g["arn"],
                    **({"Weight": int(g["weight"])} if g.get("weight") is not None else {}),
                }
                for g in forward.get("targetGroups") or []
            ]
        }
        stickiness = forward.get("stickiness")
        if stickiness:
            config["TargetGroupStickinessConfig"] = {
                "Enabled": bool(stickiness.get("enabled", False)),
                **(
                    {"DurationSeconds": int(stickiness["duration"])}
                    if stickiness.get("duration")
                    else {}
                ),
            }
        aws["ForwardConfig"] = config
    fixed = action.get("fixedResponse")
    if fixed:
        aws["FixedResponseConfig"] = {
            k: str(fixed[p]) for p, k in _FIXED_RESPONSE if fixed.get(p) is not None
        }
    redirect = action.get("redirect")
    if redirect:
        aws["RedirectConfig"] = {
            k: str(redirect[p]) for p, k in _REDIRECT if redirect.get(p) is not None
        }
    return aws


def _pulumi_action(aws: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
    """An ELBv2 Action -> the Pulumi shape, following the declared action's shape.

    AWS reports a single-target forward both as TargetGroupArn and as a
    ForwardConfig; each is reported back only where the program used it (or,
    with no declaration to follow, the forward config when it has several groups).
    """
    action: dict[str, Any] = {"type": aws["Type"]}
    if "order" in declared and "Order" in aws:
        action["order"] = float(aws["Order"])
    config = aws.get("ForwardConfig")
    groups = (config or {}).get("TargetGroups", [])
    uses_forward = "forward" in declared if declared else len(groups) > 1
    if aws.get("TargetGroupArn") and ("targetGroupArn" in declared or not uses_forward):
        action["targetGroupArn"] = aws["TargetGroupArn"]
    if config and uses_forward:
        declared_forward = declared.get("forward") or {}
        declared_groups = {g.get("arn"): g for g in declared_forward.get("targetGroups") or []}
        order = list(declared_groups)
        live_groups = sorted(
            groups,
            key=lambda g: (
                order.index(g["TargetGroupArn"]) if g["TargetGroupArn"] in order else len(order)
            ),
        )
        forward: dict[str, Any] = {
            "targetGroups": [
                declared_keys(
                    {"arn": g["TargetGroupArn"], "weight": float(g.get("Weight", 1))},
                    declared_groups.get(g["TargetGroupArn"]),
                )
                for g in live_groups
            ]
        }
        declared_stickiness = declared_forward.get("stickiness")
        live_stickiness = config.get("TargetGroupStickinessConfig") or {}
        if declared_stickiness is not None or live_stickiness.get("Enabled"):
            stickiness: dict[str, Any] = {"enabled": bool(live_stickiness.get("Enabled", False))}
            if "DurationSeconds" in live_stickiness:
                stickiness["duration"] = float(live_stickiness["DurationSeconds"])
            elif declared_stickiness and "duration" in declared_stickiness:
                stickiness["duration"] = declared_stickiness["duration"]
            forward["stickiness"] = declared_keys(stickiness, declared_stickiness)
        action["forward"] = forward
    if aws.get("FixedResponseConfig"):
        fixed = aws["FixedResponseConfig"]
        action["fixedResponse"] = {p: fixed[k] for p, k in _FIXED_RESPONSE if k in fixed}
    if aws.get("RedirectConfig"):
        redirect = aws["RedirectConfig"]
        action["redirect"] = {p: redirect[k] for p, k in _REDIRECT if k in redirect}
    return action


@dataclass(frozen=True)
class Listener:
    """aws:lb/listener:Listener; id is the ARN.

    Port, protocol, default actions (weighted forwards with stickiness, fixed
    responses, redirects), certificate, SSL policy and tags change in place.
    """

    clients: Clients
    token = "aws:lb/listener:Listener"
    replace_on = frozenset({"loadBalancerArn", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        elbv2 = self.clients("elbv2")
        kwargs: dict[str, Any] = {
            "LoadBalancerArn": inputs["loadBalancerArn"],
            **self._parameters(inputs),
        }
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            if "Protocol" not in kwargs:
                # The provider's default: HTTP for an application load balancer, TCP otherwise.
                kind = elbv2.describe_load_balancers(LoadBalancerArns=[inputs["loadBalancerArn"]])[
                    "LoadBalancers"
                ][0].get("Type", "application")
                kwargs["Protocol"] = "HTTP" if kind == "application" else "TCP"
            arn = elbv2.create_listener(**kwargs)["Listeners"][0]["ListenerArn"]
        return arn, present(self.read(arn, inputs), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "update"):
            _retag(elbv2, id, olds, news)
            elbv2.modify_listener(ListenerArn=id, **self._parameters(news))
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "read"):
            try:
                listener = elbv2.describe_listeners(ListenerArns=[id])["Listeners"][0]
            except ClientError as exc:
                if aws_code(exc) in {"ListenerNotFound", "LoadBalancerNotFound"}:
                    return None
                raise
            tags = _live_tags(elbv2, id)
        declared = list(inputs.get("defaultActions") or [])
        actions = sorted(listener.get("DefaultActions", []), key=lambda a: a.get("Order", 0))
        outputs = {
            **inputs,
            "arn": id,
            "loadBalancerArn": listener["LoadBalancerArn"],
            "port": float(listener["Port"]),
            "protocol": listener["Protocol"],
            "defaultActions": [
                _pulumi_action(a, declared[i] if i < len(declared) else {})
                for i, a in enumerate(actions)
            ],
        }
        if listener.get("SslPolicy"):
            outputs["sslPolicy"] = listener["SslPolicy"]
        if listener.get("Certificates"):
            outputs["certificateArn"] = listener["Certificates"][0]["CertificateArn"]
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ListenerNotFound"):
            self.clients("elbv2").delete_listener(ListenerArn=id)

    def _parameters(self, inputs: dict[str, Any]) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "DefaultActions": [_aws_action(a) for a in inputs.get("defaultActions") or []],
        }
        if inputs.get("port") is not None:
            parameters["Port"] = int(inputs["port"])
        if inputs.get("protocol"):
            parameters["Protocol"] = inputs["protocol"]
        if inputs.get("sslPolicy"):
            parameters["SslPolicy"] = inputs["sslPolicy"]
        if inputs.get("certificateArn"):
            parameters["Certificates"] = [{"CertificateArn": inputs["certificateArn"]}]
        if inputs.get("alpnPolicy"):
            parameters["AlpnPolicy"] = [inputs["alpnPolicy"]]
        return parameters


def appliers(clients: Clients) -> list[ResourceType]:
    """The ELBv2 appliers."""
    return [
        LoadBalancer(clients),
        TargetGroup(clients),
        TargetGroupAttachment(clients),
        Listener(clients),
    ]
