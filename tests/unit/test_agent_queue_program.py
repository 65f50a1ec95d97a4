"""examples/agent-queue (the agent's queue as a Pulumi component), under Pulumi's mock runtime:
the same resources, pattern and policy as `rollback agent setup` makes."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from rollback.agent_setup import alarm_pattern, queue_policy
from tests.unit.test_webapp_program import ACCOUNT, RecordingMocks, resolve

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "agent-queue"
ALARMS = ["webapp-dev-5xx-green", "webapp-dev-5xx-blue"]


class QueueMocks(RecordingMocks):
    """Also computes what AWS decides for queues and rules: URL and ARN."""

    outputs: dict[str, Any] = {}  # noqa: RUF012 - the stack's exports, set once resolved

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        name = args.inputs.get("name") or args.name
        extra: dict[str, Any] = {}
        if args.typ == "aws:sqs/queue:Queue":
            extra = {
                "arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}",
                "url": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{name}",
            }
        elif args.typ == "aws:cloudwatch/eventRule:EventRule":
            extra = {"arn": f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{name}"}
        physical, outputs = super().new_resource(args)
        self.computed[args.name] = {**self.computed[args.name], **extra}
        return physical, {**outputs, **extra}


@pytest.fixture
def program() -> Iterator[QueueMocks]:
    mocks = QueueMocks()
    pulumi.runtime.set_mocks(mocks, project="rollback-agent-queue", stack="prod", preview=False)
    pulumi.runtime.set_all_config(
        {"rollback-agent-queue:alarms": json.dumps(ALARMS), "aws:region": "us-east-1"}
    )
    runpy.run_path(str(PROGRAM), run_name="__main__")
    stack = pulumi.runtime.get_root_resource()
    assert stack is not None
    mocks.outputs = resolve(stack.outputs)  # type: ignore[attr-defined]  # waits for every registration
    yield mocks
    pulumi.runtime.set_all_config({}, secret_keys=[])
    sys.modules.pop("agent_queue", None)


def test_the_component_declares_what_agent_setup_makes(program: QueueMocks) -> None:
    types = sorted(r.typ for r in program.registered)
    assert types == [
        "aws:cloudwatch/eventRule:EventRule",
        "aws:cloudwatch/eventTarget:EventTarget",
        "aws:sqs/queue:Queue",
        "aws:sqs/queue:Queue",
        "aws:sqs/queuePolicy:QueuePolicy",
        "rollback:agent:AgentQueue",
    ]
    queue, dlq = program.named("rollback-agent-queue"), program.named("rollback-agent-dlq")
    assert dlq.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": program.computed["rollback-agent-dlq"]["arn"],
        "maxReceiveCount": 5,
    }
    assert (queue.inputs["visibilityTimeoutSeconds"], queue.inputs["receiveWaitTimeSeconds"]) == (
        60,
        20,
    )

    rule = program.named("rollback-agent-alarms")
    assert json.loads(rule.inputs["eventPattern"]) == alarm_pattern(ALARMS)
    target = program.named("rollback-agent-queue-target")
    assert target.inputs["arn"] == program.computed["rollback-agent-queue"]["arn"]
    assert target.inputs["rule"] == "rollback-agent-alarms"

    policy = program.named("rollback-agent-policy")
    assert policy.inputs["queueUrl"] == program.computed["rollback-agent-queue"]["url"]
    assert json.loads(policy.inputs["policy"]) == queue_policy(
        program.computed["rollback-agent-queue"]["arn"],
        program.computed["rollback-agent-alarms"]["arn"],
    )
    for resource in program.registered:
        if resource.typ != "rollback:agent:AgentQueue":
            assert resource.custom  # children of the component, real resources

    assert program.outputs["queue_url"].endswith(f"/{ACCOUNT}/rollback-agent")
    assert program.outputs["rule_arn"].endswith(":rule/rollback-agent-alarms")
