"""Elastic Load Balancing v2: listener and rule forward weights, target health.

Weights are handled as `{target group ARN: weight}`; `forward_weights` reads
them out of a list of actions and `with_weights` writes them back, keeping
every other field (stickiness, order, non-forward actions) as it was.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from rollback.aws.failures import translated
from rollback.errors import UsageError

Actions = list[dict[str, Any]]

_NOT_FOUND = {"ListenerNotFound", "RuleNotFound", "TargetGroupNotFound", "LoadBalancerNotFound"}


@dataclass(frozen=True)
class TargetHealth:
    """One registered target as describe_target_health reports it."""

    target_id: str
    port: int | None
    state: str  # initial | healthy | unhealthy | unused | draining | unavailable | ...
    reason: str = ""
    description: str = ""

    @property
    def routable(self) -> bool:
        """Whether the load balancer sends requests to this target.

        'healthy' counts. So does 'unavailable' with reason
        Target.HealthCheckDisabled: a target group without health checks routes
        to every registered target, and AWS reports that state for them. Every
        other state (initial, unhealthy, unused, draining) does not count.
        """
        return self.state == "healthy" or (
            self.state == "unavailable" and self.reason == "Target.HealthCheckDisabled"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.target_id,
            "port": self.port,
            "state": self.state,
            "reason": self.reason,
            "description": self.description,
        }


def forward_weights(actions: Actions) -> dict[str, int]:
    """The target-group weights of the forward action in `actions`.

    A forward action given only as TargetGroupArn counts as weight 1 for it.
    Raises UsageError when there is no forward action.
    """
    action = _forward_action(actions)
    config = action.get("ForwardConfig")
    if config and config.get("TargetGroups"):
        return {tg["TargetGroupArn"]: int(tg.get("Weight", 1)) for tg in config["TargetGroups"]}
    return {action["TargetGroupArn"]: 1}


def with_weights(actions: Actions, weights: dict[str, int]) -> Actions:
    """A copy of `actions` whose forward action carries `weights`, all else kept.

    The TargetGroupStickinessConfig is kept; a plain TargetGroupArn is replaced
    by the equivalent ForwardConfig (the API rejects both with differing groups).
    """
    result = copy.deepcopy(actions)
    action = _forward_action(result)
    config = dict(action.get("ForwardConfig") or {})
    config["TargetGroups"] = [{"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()]
    action["ForwardConfig"] = config
    action.pop("TargetGroupArn", None)
    return result


def _forward_action(actions: Actions) -> dict[str, Any]:
    for action in actions:
        if action.get("Type") == "forward":
            return action
    raise UsageError(
        "the listener or rule has no forward action, so there are no target-group weights to set; "
        "check the stack's topology.",
    )


class LoadBalancing:
    """Typed access to the elbv2 calls the traffic step makes."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def listener_actions(self, listener_arn: str) -> Actions:
        """The listener's default actions; raises NotFound when it does not exist."""
        with translated(f"reading listener {listener_arn}", not_found=_NOT_FOUND):
            listeners = self.client.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
        return list(listeners[0]["DefaultActions"])

    def rule_actions(self, rule_arns: list[str]) -> dict[str, Actions]:
        """Each rule's actions, in one call; raises NotFound when one does not exist."""
        if not rule_arns:
            return {}
        with translated(f"reading rules {', '.join(rule_arns)}", not_found=_NOT_FOUND):
            rules = self.client.describe_rules(RuleArns=rule_arns)["Rules"]
        return {rule["RuleArn"]: list(rule["Actions"]) for rule in rules}

    def target_health(self, target_group_arn: str) -> list[TargetHealth]:
        """Every registered target of the group with its health state."""
        with translated(f"reading target health of {target_group_arn}", not_found=_NOT_FOUND):
            found = self.client.describe_target_health(TargetGroupArn=target_group_arn)
        return [
            TargetHealth(
                target_id=d["Target"]["Id"],
                port=d["Target"].get("Port"),
                state=d["TargetHealth"]["State"],
                reason=d["TargetHealth"].get("Reason", ""),
                description=d["TargetHealth"].get("Description", ""),
            )
            for d in found["TargetHealthDescriptions"]
        ]

    def target_group_tags(self, target_group_arn: str) -> dict[str, str]:
        """The target group's tags (key -> value)."""
        with translated(f"reading tags of {target_group_arn}", not_found=_NOT_FOUND):
            found = self.client.describe_tags(ResourceArns=[target_group_arn])
        return {
            t["Key"]: t["Value"]
            for d in found.get("TagDescriptions", [])
            for t in d.get("Tags", [])
        }

    def set_listener_actions(self, listener_arn: str, actions: Actions) -> None:
        with translated(f"modifying listener {listener_arn}", not_found=_NOT_FOUND):
            self.client.modify_listener(ListenerArn=listener_arn, DefaultActions=actions)

    def set_rule_actions(self, rule_arn: str, actions: Actions) -> None:
        with translated(f"modifying rule {rule_arn}", not_found=_NOT_FOUND):
            self.client.modify_rule(RuleArn=rule_arn, Actions=actions)
