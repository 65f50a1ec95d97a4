"""`rollback agent setup`: the queue, its dead-letter queue and the EventBridge rule.

Plan, then apply (as the rest of the toolkit): `plan_setup` reads what
exists and says, per resource, create | update | unchanged; `apply_setup`
makes it so. Both are idempotent; a dry run prints the plan.

    <name>-dlq   SQS queue, 14 days retention: messages the agents gave up on
    <name>       SQS queue, long polling, redrive to the DLQ after
                 `redrive_after` receipts (the agents dead-letter with a reason
                 before that; the policy catches a message no agent can settle)
    <name>-alarms  EventBridge rule on the default bus: "CloudWatch Alarm State
                 Change" to ALARM for the alarms the stacks' topologies name,
                 targeting the queue
    queue policy  lets events.amazonaws.com send to the queue, only from that rule

The same resources as a Pulumi program: examples/agent-queue/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollback.agent_messages import ALARM_DETAIL_TYPE, ALARM_SOURCE
from rollback.aws.failures import translated
from rollback.aws.sqs import queue_url
from rollback.errors import UsageError

if TYPE_CHECKING:
    from rollback.aws.session import Clients

DLQ_RETENTION_S = 14 * 24 * 3600
TARGET_ID = "rollback-agent-queue"


@dataclass(frozen=True)
class Resource:
    """One resource of the setup: what it should be, and what applying would do."""

    kind: str  # sqs-queue | sqs-dead-letter-queue | eventbridge-rule | eventbridge-target | sqs-queue-policy
    name: str
    action: str  # create | update | unchanged
    desired: dict[str, Any]
    id: str = ""  # URL or ARN, once known

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "id": self.id,
            "desired": self.desired,
        }


@dataclass(frozen=True)
class SetupPlan:
    name: str
    alarms: tuple[str, ...]
    resources: tuple[Resource, ...]
    applied: bool = False
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alarms": list(self.alarms),
            "applied": self.applied,
            "resources": [r.to_dict() for r in self.resources],
            "outputs": self.outputs,
        }


def alarm_pattern(alarms: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The EventBridge pattern: these alarms' transitions to ALARM."""
    return {
        "source": [ALARM_SOURCE],
        "detail-type": [ALARM_DETAIL_TYPE],
        "detail": {"alarmName": sorted(alarms), "state": {"value": ["ALARM"]}},
    }


def queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "rollback-agent-alarms",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


def _arns(clients: Clients, name: str) -> tuple[str, str, str]:
    """(queue ARN, DLQ ARN, rule ARN) from the caller's account and region."""
    with translated("reading the caller's account"):
        account = clients("sts").get_caller_identity()["Account"]
    region = clients("sqs").meta.region_name
    return (
        f"arn:aws:sqs:{region}:{account}:{name}",
        f"arn:aws:sqs:{region}:{account}:{name}-dlq",
        f"arn:aws:events:{region}:{account}:rule/{name}-alarms",
    )


def plan_setup(
    clients: Clients,
    name: str,
    alarms: list[str],
    *,
    visibility_s: int = 60,
    redrive_after: int = 5,
) -> SetupPlan:
    """What `apply_setup` would create or update; reads only.

    Raises UsageError when no alarm is named (record a release whose
    topology names its alarms first).
    """
    if not alarms:
        raise UsageError(
            "no stack in the store names an alarm in its topology; record a release whose "
            "`rollback` output lists alarms, then run setup again."
        )
    sqs, events = clients("sqs"), clients("events")
    queue_arn, dlq_arn, rule_arn = _arns(clients, name)
    dlq_attrs = {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}
    queue_attrs = {
        "VisibilityTimeout": str(visibility_s),
        "ReceiveMessageWaitTimeSeconds": "20",
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": redrive_after},
            sort_keys=True,
        ),
    }
    policy = json.dumps(queue_policy(queue_arn, rule_arn), sort_keys=True)
    pattern = json.dumps(alarm_pattern(alarms), sort_keys=True)
    rule = {
        "EventPattern": pattern,
        "State": "ENABLED",
        "Description": "CloudWatch alarms of rollback stacks -> rollback agent",
    }
    target = {"Id": TARGET_ID, "Arn": queue_arn}

    def queue_action(queue: str, want: dict[str, str]) -> tuple[str, str]:
        url = queue_url(sqs, queue)
        if url is None:
            return "create", ""
        with translated(f"reading queue {queue}"):
            have = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        same = all(_same(have.get(k), v) for k, v in want.items())
        return ("unchanged" if same else "update"), url

    dlq_action, dlq_url = queue_action(f"{name}-dlq", dlq_attrs)
    q_action, q_url = queue_action(name, {**queue_attrs, "Policy": policy})
    # The policy is an attribute of the queue, shown on its own for people.
    policy_action = "create" if q_action == "create" else "unchanged"
    if q_action == "update":
        with translated(f"reading queue {name}"):
            have = sqs.get_queue_attributes(QueueUrl=q_url, AttributeNames=["Policy"])
        policy_action = (
            "unchanged" if _same(have.get("Attributes", {}).get("Policy"), policy) else "update"
        )
    rule_action, target_action = _rule_actions(events, f"{name}-alarms", rule, target)
    return SetupPlan(
        name=name,
        alarms=tuple(sorted(alarms)),
        resources=(
            Resource(
                "sqs-dead-letter-queue", f"{name}-dlq", dlq_action, dlq_attrs, dlq_url or dlq_arn
            ),
            Resource("sqs-queue", name, q_action, queue_attrs, q_url or queue_arn),
            Resource("eventbridge-rule", f"{name}-alarms", rule_action, rule, rule_arn),
            Resource("eventbridge-target", TARGET_ID, target_action, target, rule_arn),
            Resource("sqs-queue-policy", name, policy_action, json.loads(policy), queue_arn),
        ),
    )


def _rule_actions(
    events: Any, rule_name: str, rule: dict[str, str], target: dict[str, str]
) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    try:
        have = events.describe_rule(Name=rule_name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return "create", "create"
        with translated(f"reading rule {rule_name}"):
            raise
    same = all(_same(have.get(k), v) for k, v in rule.items())
    with translated(f"reading the targets of rule {rule_name}"):
        targets = events.list_targets_by_rule(Rule=rule_name).get("Targets", [])
    has_target = any(t.get("Id") == target["Id"] and t.get("Arn") == target["Arn"] for t in targets)
    return ("unchanged" if same else "update"), ("unchanged" if has_target else "create")


def _same(have: Any, want: str) -> bool:
    """Attribute equality; JSON documents compare by content, not spelling."""
    if have == want:
        return True
    try:
        return bool(json.loads(str(have)) == json.loads(want))
    except (TypeError, ValueError):
        return False


def apply_setup(clients: Clients, plan: SetupPlan) -> SetupPlan:
    """Create or update what the plan says (in dependency order); returns the plan applied.

    `outputs` holds `queue_url`, `dead_letter_queue_url` and `rule_arn`.
    """
    sqs, events = clients("sqs"), clients("events")
    by_kind = {r.kind: r for r in plan.resources}
    dlq, queue, rule = (
        by_kind["sqs-dead-letter-queue"],
        by_kind["sqs-queue"],
        by_kind["eventbridge-rule"],
    )
    policy = json.dumps(by_kind["sqs-queue-policy"].desired, sort_keys=True)
    with translated(f"creating queue {dlq.name}"):
        dlq_url = sqs.create_queue(QueueName=dlq.name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes=dlq.desired)
    with translated(f"creating queue {queue.name}"):
        url = sqs.create_queue(QueueName=queue.name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={**queue.desired, "Policy": policy})
    with translated(f"writing rule {rule.name}"):
        rule_arn = events.put_rule(Name=rule.name, **rule.desired)["RuleArn"]
        target = by_kind["eventbridge-target"].desired
        events.put_targets(Rule=rule.name, Targets=[target])
    return SetupPlan(
        name=plan.name,
        alarms=plan.alarms,
        resources=plan.resources,
        applied=True,
        outputs={"queue_url": url, "dead_letter_queue_url": dlq_url, "rule_arn": rule_arn},
    )
