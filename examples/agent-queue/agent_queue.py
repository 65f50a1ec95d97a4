"""A Pulumi component declaring the rollback agent's queue: what `rollback agent setup` creates.

    AgentQueue("rollback-agent", alarms=["webapp-prod-5xx-blue", "webapp-prod-5xx-green"])

Resources (children of the component): the dead-letter queue `<name>-dlq`
(14 days), the queue `<name>` (long polling, redrive to the DLQ after
`redrive_after` receipts), the EventBridge rule `<name>-alarms` ("CloudWatch
Alarm State Change" to ALARM for exactly `alarms`), its target (the queue),
and the queue policy letting only that rule send. Outputs: `queue_url`,
`dead_letter_queue_url`, `rule_arn`. The pattern and policy have the same
shape as `rollback.agent_setup.alarm_pattern` / `queue_policy` (a test keeps
them equal); this file imports only pulumi and pulumi_aws so a program can
vendor it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

DLQ_RETENTION_S = 14 * 24 * 3600


def alarm_pattern(alarms: Sequence[str]) -> dict[str, Any]:
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
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


class AgentQueue(pulumi.ComponentResource):
    """The agent's SQS queue and DLQ, and the EventBridge rule routing the alarms to it."""

    def __init__(
        self,
        name: str,
        alarms: Sequence[str],
        *,
        visibility_s: int = 60,
        redrive_after: int = 5,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("rollback:agent:AgentQueue", name, None, opts)
        if not alarms:
            raise ValueError("AgentQueue needs at least one alarm name")
        child = pulumi.ResourceOptions(parent=self)
        dlq = aws.sqs.Queue(
            f"{name}-dlq", name=f"{name}-dlq", message_retention_seconds=DLQ_RETENTION_S, opts=child
        )
        queue = aws.sqs.Queue(
            f"{name}-queue",
            name=name,
            visibility_timeout_seconds=visibility_s,
            receive_wait_time_seconds=20,
            redrive_policy=dlq.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": redrive_after}, sort_keys=True
                )
            ),
            opts=child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-alarms",
            name=f"{name}-alarms",
            description="CloudWatch alarms of rollback stacks -> rollback agent",
            event_pattern=json.dumps(alarm_pattern(alarms), sort_keys=True),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-queue-target",
            rule=rule.name,
            target_id="rollback-agent-queue",
            arn=queue.arn,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-policy",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, rule.arn).apply(
                lambda arns: json.dumps(queue_policy(arns[0], arns[1]), sort_keys=True)
            ),
            opts=child,
        )
        self.queue_url = queue.url
        self.dead_letter_queue_url = dlq.url
        self.rule_arn = rule.arn
        self.register_outputs(
            {"queue_url": queue.url, "dead_letter_queue_url": dlq.url, "rule_arn": rule.arn}
        )
