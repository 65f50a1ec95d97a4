"""TrafficStep against an in-process moto ALB: two target groups, a weighted listener, a rule."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from rollback.aws.elbv2 import LoadBalancing, TargetHealth
from rollback.errors import CheckFailed, UsageError
from rollback.models import Topology
from rollback.steps.traffic import TrafficStep


@dataclass
class Alb:
    client: Any
    ec2: Any
    topology: Topology
    instances: dict[str, str]  # colour -> instance id
    mutating: list[str]

    def weights(self, arn: str | None = None) -> dict[str, int]:
        """Weights by colour as the cloud reports them (listener, or the rule `arn`)."""
        if arn is None:
            listener = self.client.describe_listeners(ListenerArns=[self.topology.listener_arn])
            actions = listener["Listeners"][0]["DefaultActions"]
        else:
            actions = self.client.describe_rules(RuleArns=[arn])["Rules"][0]["Actions"]
        colour = {v: k for k, v in self.topology.target_groups.items()}
        groups = actions[0]["ForwardConfig"]["TargetGroups"]
        return {colour.get(g["TargetGroupArn"], g["TargetGroupArn"]): g["Weight"] for g in groups}

    def stickiness(self) -> dict[str, Any]:
        listener = self.client.describe_listeners(ListenerArns=[self.topology.listener_arn])
        return dict(
            listener["Listeners"][0]["DefaultActions"][0]["ForwardConfig"][
                "TargetGroupStickinessConfig"
            ]
        )


def _forward(tgs: dict[str, str], blue: int, green: int, sticky: bool) -> list[dict[str, Any]]:
    config: dict[str, Any] = {
        "TargetGroups": [
            {"TargetGroupArn": tgs["blue"], "Weight": blue},
            {"TargetGroupArn": tgs["green"], "Weight": green},
        ]
    }
    if sticky:
        config["TargetGroupStickinessConfig"] = {"Enabled": True, "DurationSeconds": 600}
    return [{"Type": "forward", "ForwardConfig": config}]


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[str, list[str]]]:
    """One mocked account per module with a VPC and two subnets: EC2 set-up costs seconds."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"][
                "SubnetId"
            ]
            for i, az in ((1, "us-east-1a"), (2, "us-east-1b"))
        ]
        yield vpc, subnets


@pytest.fixture
def alb(network: tuple[str, list[str]]) -> Iterator[Alb]:
    """A fresh load balancer, blue and green target groups with one instance each, a listener and a rule."""
    vpc, subnets = network
    suffix = uuid.uuid4().hex[:8]
    ec2 = boto3.client("ec2", region_name="us-east-1")
    elb = boto3.client("elbv2", region_name="us-east-1")
    lb = elb.create_load_balancer(Name=f"web-{suffix}", Subnets=subnets)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    tgs = {
        c: elb.create_target_group(Name=f"{c}-{suffix}", Protocol="HTTP", Port=80, VpcId=vpc)[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for c in ("blue", "green")
    }
    # moto runs any well-formed AMI id; listing its catalogue would cost seconds per test.
    run = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        MinCount=2,
        MaxCount=2,
        InstanceType="t3.micro",
        SubnetId=subnets[0],
    )
    instances = dict(
        zip(("blue", "green"), (i["InstanceId"] for i in run["Instances"]), strict=True)
    )
    for colour, instance in instances.items():
        elb.register_targets(TargetGroupArn=tgs[colour], Targets=[{"Id": instance}])
    listener = elb.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=_forward(tgs, 100, 0, sticky=True),
    )["Listeners"][0]["ListenerArn"]
    rule = elb.create_rule(
        ListenerArn=listener,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}],
        Actions=_forward(tgs, 100, 0, sticky=False),
    )["Rules"][0]["RuleArn"]
    topology = Topology(
        listener_arn=listener,
        target_groups=tgs,
        zone_id="Z1",
        record_name="app.example.com",
        record_type="CNAME",
        set_identifiers={"blue": "blue", "green": "green"},
        db_instance_id="db",
        health_urls={},
        alarms={},
        live_color="blue",
        versions={"blue": "1.5.0", "green": "1.4.0"},
        load_balancer_arn=lb,
        rule_arns=(rule,),
    )
    mutating: list[str] = []

    def count(model: Any, **_: Any) -> None:
        if not model.name.startswith(("Describe", "List", "Get", "Head")):
            mutating.append(model.name)

    elb.meta.events.register("before-call.elastic-load-balancing-v2", count)
    yield Alb(elb, ec2, topology, instances, mutating)


def _step(alb: Alb, **weights: int) -> TrafficStep:
    return TrafficStep(LoadBalancing(alb.client), alb.topology, weights)


def test_apply_shifts_listener_and_rule_and_keeps_stickiness(alb: Alb) -> None:
    step = _step(alb, green=100)
    applied = step.apply()
    assert applied.changed
    rule = alb.topology.rule_arns[0]
    assert alb.weights() == {"blue": 0, "green": 100}
    assert alb.weights(rule) == {"blue": 0, "green": 100}
    assert alb.stickiness() == {"Enabled": True, "DurationSeconds": 600}
    assert sorted(alb.mutating) == ["ModifyListener", "ModifyRule"]
    found = step.verify()
    assert [e.ok for e in found] == [True, True]
    assert found[0].observed["weights"] == {"blue": 0, "green": 100}


def test_second_apply_makes_no_mutating_call(alb: Alb) -> None:
    step = _step(alb, blue=20, green=80)
    assert step.apply().changed
    alb.mutating.clear()
    again = step.apply()
    assert not again.changed
    assert alb.mutating == []
    assert alb.weights() == {"blue": 20, "green": 80}


def test_apply_takes_the_reads_prepare_started_only_while_they_are_fresh(
    alb: Alb, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rollback.steps.traffic as traffic

    reads: list[str] = []
    alb.client.meta.events.register(
        "before-call.elastic-load-balancing-v2",
        lambda model, **_: reads.append(model.name) if model.name.startswith("Describe") else None,
    )
    step = _step(alb, green=100)
    step.prepare()  # the executor's call, under the lock, before the journal write
    assert step.apply().changed
    assert sorted(reads) == ["DescribeListeners", "DescribeRules", "DescribeTargetHealth"]
    assert alb.weights() == {"blue": 0, "green": 100}
    # Too old (PREPARED_FRESH_S): apply reads again, and finds nothing to change.
    monkeypatch.setattr(traffic, "PREPARED_FRESH_S", -1.0)
    step.prepare()
    assert step._prepared is not None  # wait for its reads, then count apply's own
    step._prepared[1].result()
    [f.result() for f in step._prepared[2].values()]
    reads.clear()
    alb.mutating.clear()
    assert not step.apply().changed
    # Read again (nothing to change: apply does not wait for the health it started).
    assert {"DescribeListeners", "DescribeRules"} <= set(reads)
    assert alb.mutating == []


def test_apply_acts_on_the_plans_read_under_the_lock_only_while_it_is_fresh(
    alb: Alb, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import rollback.steps.traffic as traffic

    reads: list[str] = []
    alb.client.meta.events.register(
        "before-call.elastic-load-balancing-v2",
        lambda model, **_: reads.append(model.name) if model.name.startswith("Describe") else None,
    )
    elbv2 = LoadBalancing(alb.client)
    topology = replace(alb.topology, rule_arns=())
    listener = elbv2.listener_actions(topology.listener_arn)
    health = {c: elbv2.target_health(arn) for c, arn in topology.target_groups.items()}
    # A read that lacks what apply reads (the topology's rules) is not taken.
    assert not _step(alb, green=100).take_reads(listener, health, time.monotonic())
    step = TrafficStep(elbv2, topology, {"green": 100})
    assert step.take_reads(listener, health, time.monotonic())
    step.prepare()  # the executor's call: fresh reads given are kept
    reads.clear()
    assert step.apply().changed
    assert reads == [] and alb.mutating == ["ModifyListener"]
    assert alb.weights() == {"blue": 0, "green": 100}
    assert alb.stickiness() == {"Enabled": True, "DurationSeconds": 600}
    # Too old (PREPARED_FRESH_S): apply reads again, and finds nothing to change.
    monkeypatch.setattr(traffic, "PREPARED_FRESH_S", -1.0)
    assert step.take_reads(listener, health, time.monotonic())
    alb.mutating.clear()
    assert not step.apply().changed
    assert "DescribeListeners" in reads and alb.mutating == []


def test_verify_catches_a_change_behind_its_back(alb: Alb) -> None:
    step = _step(alb, green=100)
    step.apply()
    tgs = alb.topology.target_groups
    alb.client.modify_listener(
        ListenerArn=alb.topology.listener_arn, DefaultActions=_forward(tgs, 50, 50, sticky=True)
    )
    listener, rule = step.verify()
    assert not listener.ok
    assert listener.observed["weights"] == {"blue": 50, "green": 50}
    assert "expected" in listener.note
    assert rule.ok


def test_compensate_restores_the_exact_prior_weights(alb: Alb) -> None:
    rule = alb.topology.rule_arns[0]
    tgs = alb.topology.target_groups
    alb.client.modify_rule(RuleArn=rule, Actions=_forward(tgs, 90, 10, sticky=False))
    step = _step(alb, green=100)
    applied = step.apply()
    step.compensate(applied.prior)
    assert alb.weights() == {"blue": 100, "green": 0}
    assert alb.weights(rule) == {"blue": 90, "green": 10}
    assert alb.stickiness() == {"Enabled": True, "DurationSeconds": 600}
    alb.mutating.clear()
    step.compensate(applied.prior)
    assert alb.mutating == []


def test_refuses_a_colour_without_healthy_targets(alb: Alb) -> None:
    alb.ec2.stop_instances(InstanceIds=[alb.instances["green"]])
    with pytest.raises(CheckFailed, match="no healthy target") as raised:
        _step(alb, green=100).apply()
    assert raised.value.fields["targets"][0]["state"] == "unused"
    assert alb.weights() == {"blue": 100, "green": 0}
    assert alb.mutating == []


def test_refuses_an_empty_target_group(alb: Alb) -> None:
    alb.client.deregister_targets(
        TargetGroupArn=alb.topology.target_groups["green"], Targets=[{"Id": alb.instances["green"]}]
    )
    with pytest.raises(CheckFailed, match="no targets"):
        _step(alb, green=100).apply()
    assert alb.weights() == {"blue": 100, "green": 0}


def test_topology_group_missing_from_listener_changes_nothing(alb: Alb) -> None:
    vpc = alb.ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.0.0.0/16"]}])["Vpcs"][0][
        "VpcId"
    ]
    stray = alb.client.create_target_group(
        Name=f"stray-{uuid.uuid4().hex[:8]}", Protocol="HTTP", Port=80, VpcId=vpc
    )
    alb.mutating.clear()
    topology = replace(
        alb.topology,
        target_groups={
            **alb.topology.target_groups,
            "green": stray["TargetGroups"][0]["TargetGroupArn"],
        },
    )
    with pytest.raises(
        UsageError, match="green target group of the topology is not in the forward config"
    ):
        TrafficStep(LoadBalancing(alb.client), topology, {"green": 100}).apply()
    assert alb.weights() == {"blue": 100, "green": 0}
    assert alb.mutating == []


def test_unknown_colour_is_a_usage_error(alb: Alb) -> None:
    with pytest.raises(UsageError, match="purple"):
        _step(alb, purple=100)


def test_failure_after_the_listener_leaves_a_described_state(alb: Alb) -> None:
    def throttle(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name != "ModifyRule":
            return None
        error = {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}
        return AWSResponse("https://elb", 400, {}, None), {
            **error,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    alb.client.meta.events.register_first(
        "before-call.elastic-load-balancing-v2.ModifyRule", throttle
    )
    step = _step(alb, green=100)
    with pytest.raises(CheckFailed, match="already changed") as raised:
        step.apply()
    assert alb.weights() == {"blue": 0, "green": 100}
    assert alb.weights(alb.topology.rule_arns[0]) == {"blue": 100, "green": 0}
    step.compensate(raised.value.fields["prior"])
    assert alb.weights() == {"blue": 100, "green": 0}


def test_describe_says_from_and_to(alb: Alb) -> None:
    described = _step(alb, green=100).describe()
    assert described.changes["from"] == {"blue": 100, "green": 0}
    assert described.changes["to"] == {"blue": 0, "green": 100}
    assert alb.mutating == []


@pytest.mark.parametrize(
    ("state", "reason", "routable"),
    [
        ("healthy", "", True),
        ("unavailable", "Target.HealthCheckDisabled", True),
        ("unavailable", "Elb.InternalError", False),
        ("initial", "Elb.RegistrationInProgress", False),
        ("unhealthy", "Target.ResponseCodeMismatch", False),
        ("unused", "Target.NotInUse", False),
        ("draining", "Target.DeregistrationInProgress", False),
    ],
)
def test_which_target_states_count_as_routable(state: str, reason: str, routable: bool) -> None:
    assert TargetHealth("i-1", 80, state, reason).routable is routable
