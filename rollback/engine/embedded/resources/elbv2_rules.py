"""Elastic Load Balancing v2 listener rules and extra listener certificates.

A listener rule's forward weights are what a blue/green cutover moves, so its
actions are read back in the declared shape, like the listener's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_keys
from rollback.engine.embedded.resources.elbv2 import (
    _aws_action,
    _live_tags,
    _pulumi_action,
    _retag,
)
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.tagging import aws_tags, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

# Pulumi condition key -> (ELBv2 Field, config key, value-list key in the Pulumi block).
_CONDITIONS = {
    "pathPattern": ("path-pattern", "PathPatternConfig"),
    "hostHeader": ("host-header", "HostHeaderConfig"),
    "httpRequestMethod": ("http-request-method", "HttpRequestMethodConfig"),
    "sourceIp": ("source-ip", "SourceIpConfig"),
}


def _aws_conditions(conditions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    aws: list[dict[str, Any]] = []
    for condition in conditions or []:
        for key, (field, config) in _CONDITIONS.items():
            if condition.get(key):
                aws.append({"Field": field, config: {"Values": list(condition[key]["values"])}})
        header = condition.get("httpHeader")
        if header:
            aws.append(
                {
                    "Field": "http-header",
                    "HttpHeaderConfig": {
                        "HttpHeaderName": header["httpHeaderName"],
                        "Values": list(header["values"]),
                    },
                }
            )
        if condition.get("queryStrings"):
            aws.append(
                {
                    "Field": "query-string",
                    "QueryStringConfig": {
                        "Values": [
                            {k.capitalize(): v for k, v in pair.items() if v is not None}
                            for pair in condition["queryStrings"]
                        ]
                    },
                }
            )
    return aws


def _pulumi_condition(aws: dict[str, Any]) -> dict[str, Any]:
    field = aws.get("Field")
    for key, (name, config) in _CONDITIONS.items():
        if field == name:
            return {key: {"values": list(aws.get(config, {}).get("Values", aws.get("Values", [])))}}
    if field == "http-header":
        header = aws.get("HttpHeaderConfig", {})
        return {
            "httpHeader": {
                "httpHeaderName": header.get("HttpHeaderName", ""),
                "values": list(header.get("Values", [])),
            }
        }
    if field == "query-string":
        return {
            "queryStrings": [
                {k.lower(): v for k, v in pair.items()}
                for pair in aws.get("QueryStringConfig", {}).get("Values", [])
            ]
        }
    return {}


@dataclass(frozen=True)
class ListenerRule:
    """aws:lb/listenerRule:ListenerRule; id is the ARN. Priority, actions, conditions and tags change in place."""

    clients: Clients
    token = "aws:lb/listenerRule:ListenerRule"
    replace_on = frozenset({"listenerArn", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        elbv2 = self.clients("elbv2")
        kwargs: dict[str, Any] = {
            "ListenerArn": inputs["listenerArn"],
            "Priority": int(inputs["priority"])
            if inputs.get("priority")
            else self._next_priority(inputs["listenerArn"]),
            "Actions": [_aws_action(a) for a in inputs.get("actions") or []],
            "Conditions": _aws_conditions(inputs.get("conditions")),
        }
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            arn = elbv2.create_rule(**kwargs)["Rules"][0]["RuleArn"]
        return arn, present(self.read(arn, inputs), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "update"):
            if news.get("priority") and news.get("priority") != olds.get("priority"):
                elbv2.set_rule_priorities(
                    RulePriorities=[{"RuleArn": id, "Priority": int(news["priority"])}]
                )
            if news.get("actions") != olds.get("actions") or news.get("conditions") != olds.get(
                "conditions"
            ):
                elbv2.modify_rule(
                    RuleArn=id,
                    Actions=[_aws_action(a) for a in news.get("actions") or []],
                    Conditions=_aws_conditions(news.get("conditions")),
                )
            _retag(elbv2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        elbv2 = self.clients("elbv2")
        with applying(self.token, id, "read"):
            try:
                rule = elbv2.describe_rules(RuleArns=[id])["Rules"][0]
            except ClientError as exc:
                if aws_code(exc) in {"RuleNotFound", "ListenerNotFound"}:
                    return None
                raise
            tags = _live_tags(elbv2, id)
        declared = list(inputs.get("actions") or [])
        actions = sorted(rule.get("Actions", []), key=lambda a: a.get("Order", 0))
        declared_conditions = list(inputs.get("conditions") or [])
        conditions = [_pulumi_condition(c) for c in rule.get("Conditions", [])]
        # One Pulumi condition block may hold several fields: compare field by field.
        flat_declared = [{k: v} for c in declared_conditions for k, v in c.items() if v is not None]
        if sorted(map(repr, flat_declared)) == sorted(map(repr, conditions)):
            conditions = declared_conditions
        outputs = {
            **inputs,
            "arn": id,
            "priority": float(rule["Priority"]) if str(rule.get("Priority", "")).isdigit() else 0.0,
            "actions": [
                _pulumi_action(a, declared[i] if i < len(declared) else {})
                for i, a in enumerate(actions)
            ],
            "conditions": conditions,
        }
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("RuleNotFound", "ListenerNotFound"):
            self.clients("elbv2").delete_rule(RuleArn=id)

    def _next_priority(self, listener: str) -> int:
        rules = self.clients("elbv2").describe_rules(ListenerArn=listener)["Rules"]
        taken = [int(r["Priority"]) for r in rules if str(r.get("Priority", "")).isdigit()]
        return max(taken, default=0) + 1


@dataclass(frozen=True)
class ListenerCertificate:
    """aws:lb/listenerCertificate:ListenerCertificate; id is `<listener arn>_<certificate arn>`."""

    clients: Clients
    token = "aws:lb/listenerCertificate:ListenerCertificate"
    replace_on = frozenset({"listenerArn", "certificateArn", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        with applying(self.token, name, "create"):
            self.clients("elbv2").add_listener_certificates(
                ListenerArn=inputs["listenerArn"],
                Certificates=[{"CertificateArn": inputs["certificateArn"]}],
            )
        id = f"{inputs['listenerArn']}_{inputs['certificateArn']}"
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                certificates = self.clients("elbv2").describe_listener_certificates(
                    ListenerArn=inputs["listenerArn"]
                )["Certificates"]
            except ClientError as exc:
                if aws_code(exc) == "ListenerNotFound":
                    return None
                raise
        arns = {c["CertificateArn"] for c in certificates if not c.get("IsDefault")}
        return declared_keys(dict(inputs), None) if inputs["certificateArn"] in arns else None

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with (
            applying(self.token, id, "delete"),
            already_gone("ListenerNotFound", "CertificateNotFound"),
        ):
            self.clients("elbv2").remove_listener_certificates(
                ListenerArn=inputs["listenerArn"],
                Certificates=[{"CertificateArn": inputs["certificateArn"]}],
            )


def appliers(clients: Clients) -> list[ResourceType]:
    """The listener rule and listener certificate appliers."""
    return [ListenerRule(clients), ListenerCertificate(clients)]
