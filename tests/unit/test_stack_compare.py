"""`compare_checkpoints`: a re-applied stack against its release, by inputs.

A replaced resource (an ECS task definition gets a new revision on every
re-apply) has a new ARN, and every input referencing it follows; that is the
same stack. An input that names another resource, or a changed value, is a
difference.
"""

from __future__ import annotations

from typing import Any

from rollback.models import Checkpoint
from rollback.stacks import compare_checkpoints

TASK = "urn:pulumi:dev::fargate::aws:ecs/taskDefinition:TaskDefinition::task-green"
SERVICE = "urn:pulumi:dev::fargate::aws:ecs/service:Service::service-green"
OTHER = "urn:pulumi:dev::fargate::aws:ecs/taskDefinition:TaskDefinition::task-blue"
ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/fargate-dev-{}"


def checkpoint(task_arn: str, service_inputs: dict[str, Any]) -> Checkpoint:
    def resource(urn: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        kind = urn.split("::")[2]
        return {"urn": urn, "type": kind, "custom": True, "inputs": inputs, "outputs": outputs}

    return Checkpoint(
        {
            "resources": [
                resource(TASK, {"family": "fargate-dev-green"}, {"arn": task_arn}),
                resource(OTHER, {"family": "fargate-dev-blue"}, {"arn": ARN.format("blue:1")}),
                resource(SERVICE, service_inputs, {"id": "svc"}),
            ]
        }
    )


def test_an_input_following_its_replaced_resource_is_no_difference() -> None:
    release = checkpoint(ARN.format("green:1"), {"taskDefinition": ARN.format("green:1")})
    reapplied = checkpoint(ARN.format("green:3"), {"taskDefinition": ARN.format("green:3")})

    assert compare_checkpoints(release, reapplied) == []


def test_an_input_naming_another_resource_or_value_is_a_difference() -> None:
    release = checkpoint(
        ARN.format("green:1"), {"taskDefinition": ARN.format("green:1"), "desiredCount": 1}
    )
    elsewhere = checkpoint(
        ARN.format("green:3"), {"taskDefinition": ARN.format("blue:1"), "desiredCount": 2}
    )

    found = {(d.urn, d.property) for d in compare_checkpoints(release, elsewhere)}

    assert found == {(SERVICE, "taskDefinition"), (SERVICE, "desiredCount")}
