"""The second reference stack (stacks/fargate) on the embedded engine, read back from the cloud."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.engine.embedded.stack_config import load_stack_config
from rollback.models import Topology
from rollback.store.local import LocalStore

PROGRAM = Path(__file__).parent.parent.parent / "stacks" / "fargate"
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Head")


@dataclass
class MutationCounter:
    operations: list[str] = field(default_factory=list)

    def __call__(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_ONLY_PREFIXES):
            self.operations.append(model.name)


@pytest.fixture
def cloud() -> Iterator[tuple[Clients, MutationCounter]]:
    import boto3

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        session = boto3.Session(region_name="us-east-1")
        counter = MutationCounter()
        session.events.register("before-call.*.*", counter)
        yield Clients(session), counter


def _rule_weights(clients: Clients, rule_arn: str, topology: Topology) -> dict[str, int]:
    rule = clients("elbv2").describe_rules(RuleArns=[rule_arn])["Rules"][0]
    groups = rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
    colour = {arn: color for color, arn in topology.target_groups.items()}
    return {colour[g["TargetGroupArn"]]: g["Weight"] for g in groups}


def test_fargate_stack_comes_up_exports_its_topology_and_moves_weights_on_the_rule(
    cloud: tuple[Clients, MutationCounter], tmp_path: Path
) -> None:
    clients, mutations = cloud
    engine = EmbeddedEngine(LocalStore(tmp_path / "store"), clients, "fargate")
    config = load_stack_config(PROGRAM, "dev", "fargate")

    checkpoint = engine.up(PROGRAM, "dev", config)

    topology = Topology.from_dict(checkpoint.outputs()["rollback"])
    (lb,) = clients("elbv2").describe_load_balancers(LoadBalancerArns=[topology.load_balancer_arn])[
        "LoadBalancers"
    ]
    assert lb["Scheme"] == "internet-facing"
    listener = clients("elbv2").describe_listeners(ListenerArns=[topology.listener_arn])[
        "Listeners"
    ][0]
    default = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    assert {g["TargetGroupArn"]: g["Weight"] for g in default} == {
        topology.target_groups["blue"]: 100,
        topology.target_groups["green"]: 0,
    }
    (rule_arn,) = topology.rule_arns
    assert _rule_weights(clients, rule_arn, topology) == {"blue": 100, "green": 0}
    # The subnets route to the internet through the gateway.
    tables = clients("ec2").describe_route_tables(
        Filters=[
            {"Name": "association.subnet-id", "Values": [lb["AvailabilityZones"][0]["SubnetId"]]}
        ]
    )["RouteTables"]
    assert any(r.get("GatewayId", "").startswith("igw-") for r in tables[0]["Routes"])
    # One Fargate service per colour, each behind its own target group, running its version.
    (cluster_arn,) = clients("ecs").list_clusters()["clusterArns"]
    services = clients("ecs").describe_services(
        cluster=cluster_arn,
        services=clients("ecs").list_services(cluster=cluster_arn)["serviceArns"],
    )["services"]
    assert len(services) == 2
    for service in services:
        color = service["serviceName"].rsplit("-", 1)[-1]
        assert service["loadBalancers"][0]["targetGroupArn"] == topology.target_groups[color]
        definition = clients("ecs").describe_task_definition(
            taskDefinition=service["taskDefinition"]
        )["taskDefinition"]
        assert definition["containerDefinitions"][0]["image"].endswith(
            f":{topology.versions[color]}"
        )
    # Aurora PostgreSQL: the topology names the cluster, which has its instance.
    (db,) = clients("rds").describe_db_clusters(DBClusterIdentifier=topology.db_instance_id)[
        "DBClusters"
    ]
    assert db["Engine"] == "aurora-postgresql"
    assert [m["DBInstanceIdentifier"] for m in db["DBClusterMembers"]] == ["fargate-dev-db-1"]
    records = clients("route53").list_resource_record_sets(HostedZoneId=topology.zone_id)[
        "ResourceRecordSets"
    ]
    weighted = {r["SetIdentifier"]: r["Weight"] for r in records if "SetIdentifier" in r}
    assert weighted == {"blue": 100, "green": 0}
    assert (
        "fargate-dev-password"
        not in (tmp_path / "store" / checkpoint_key("fargate", "dev")).read_text()
    )

    mutations.operations.clear()
    engine.up(PROGRAM, "dev", config)

    assert mutations.operations == []
    assert {c.op for c in engine.last_changes} == {"same"}

    # Green takes the traffic: the rule's weights move in place, the rule stays.
    shifted = dataclasses.replace(
        config,
        values={**config.values, "fargate:blueWeight": "0", "fargate:greenWeight": "100"},
    )
    engine.up(PROGRAM, "dev", shifted)

    assert _rule_weights(clients, rule_arn, topology) == {"blue": 0, "green": 100}
    updated = {c.urn.rsplit("::", 1)[-1] for c in engine.last_changes if c.op == "update"}
    assert {"http", "app", "app-blue", "app-green"} <= updated
    assert not [c for c in engine.last_changes if c.op in ("replace", "create", "delete")]
