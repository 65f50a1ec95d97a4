"""Fleet mode: naming several stacks, run_fleet's isolation, bound and exit code, the CLI's refusals.

`build_stacks` makes stacks of listeners and registries over one load balancer
(in-process moto here, the moto server in tests/functional/test_fleet_cli.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback import config
from rollback.aws.session import Clients
from rollback.cli import main as root
from rollback.errors import ConfigError, IntegrityError, LockHeld, NotFound, UsageError
from rollback.fleet import each_stack, run_fleet
from rollback.journal import list_runs
from rollback.models import Topology
from rollback.orchestrate import Outcome, Workbench, rollback_to
from rollback.planner import Options
from rollback.releases import Attachments, Registry
from rollback.store import Store, open_store
from rollback.waiting import Timing
from tests.unit.test_releases import commit, make_repo


def _forward(tgs: dict[str, str], blue: int, green: int) -> list[dict[str, Any]]:
    groups = [
        {"TargetGroupArn": tgs["blue"], "Weight": blue},
        {"TargetGroupArn": tgs["green"], "Weight": green},
    ]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


def build_stacks(
    aws: Clients, store: Store, root_dir: Path, count: int, project: str = "shop"
) -> dict[str, Topology]:
    """`count` stacks PROJECT/s0.. at 1.5.0 on blue, 1.4.0 (stable) still on green.

    Each has its own listener and target groups on one load balancer, one quiet
    alarm for the health step, and releases recorded without a checkpoint (so
    no stack step: fleets stay cheap).
    """
    ec2, elbv2, cloudwatch = aws("ec2"), aws("elbv2"), aws("cloudwatch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "us-east-1a"), (2, "us-east-1b"))
    ]
    lb = elbv2.create_load_balancer(Name=f"{project}-fleet", Subnets=subnets)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    # moto runs any well-formed AMI id; listing its catalogue would cost seconds.
    run = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", MinCount=2, MaxCount=2, SubnetId=subnets[0]
    )
    instances = dict(
        zip(("blue", "green"), (i["InstanceId"] for i in run["Instances"]), strict=True)
    )
    # What each colour runs, where the outcome check reads it: the instances' AppVersion tag.
    for colour, version in (("blue", "1.5.0"), ("green", "1.4.0")):
        ec2.create_tags(
            Resources=[instances[colour]], Tags=[{"Key": "AppVersion", "Value": version}]
        )
    artifact = root_dir / "app.tgz"
    artifact.write_bytes(b"app")
    topologies: dict[str, Topology] = {}
    for i in range(count):
        stack = f"{project}/s{i}"
        tgs = {
            c: elbv2.create_target_group(
                Name=f"{project}-s{i}-{c}", Protocol="HTTP", Port=80, VpcId=vpc
            )["TargetGroups"][0]["TargetGroupArn"]
            for c in ("blue", "green")
        }
        for colour, arn in tgs.items():
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": instances[colour]}])
        listener = elbv2.create_listener(
            LoadBalancerArn=lb, Protocol="HTTP", Port=8000 + i, DefaultActions=_forward(tgs, 100, 0)
        )["Listeners"][0]["ListenerArn"]
        alarm = f"{project}-s{i}-5xx"
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet")
        topology = Topology(
            listener_arn=listener,
            target_groups=tgs,
            zone_id="",
            record_name="",
            record_type="",
            set_identifiers={},
            db_instance_id="",
            health_urls={},
            alarms={"blue": [alarm], "green": [alarm]},
            live_color="blue",
            versions={"blue": "1.5.0", "green": "1.4.0"},
            load_balancer_arn=lb,
        )
        topologies[stack] = topology
        registry = Registry(store, stack)
        repo = make_repo(root_dir / "repos" / project / f"s{i}")
        for version, colour in (("1.4.0", "green"), ("1.5.0", "blue")):
            commit(repo, "main.py", version, f"chore: {version}")
            attachments = Attachments(
                topology=json.dumps(topology.to_dict()).encode(), color=colour
            )
            registry.record(version, artifact, Path(repo.working_dir), attachments=attachments)
        registry.mark("1.4.0", "stable", "baked")
    return topologies


def listener_weights(elbv2: Any, topology: Topology) -> dict[str, int]:
    """The listener's weights by colour, as the load balancer reports them."""
    listener = elbv2.describe_listeners(ListenerArns=[topology.listener_arn])
    groups = listener["Listeners"][0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    colour = {arn: c for c, arn in topology.target_groups.items()}
    return {colour[g["TargetGroupArn"]]: g["Weight"] for g in groups}


# -- naming several stacks ---------------------------------------------------------------


def test_stacks_from_repeated_flags_a_comma_list_and_a_file(tmp_path: Path) -> None:
    (tmp_path / "fleet.txt").write_text("# shop\nshop/a   # first\n\nshop/c\nshop/b\n")
    loaded = config.load(
        {"stack": ("shop/b", "shop/a,shop/z"), "stacks_file": "fleet.txt"}, env={}, cwd=tmp_path
    )
    assert loaded.stacks == ("shop/b", "shop/a", "shop/z", "shop/c")  # each once, first seen
    assert loaded.stack == "shop/b"
    from_env = config.load({}, env={"ROLLBACK_STACK": "web/x, web/y"}, cwd=tmp_path)
    assert (from_env.stack, from_env.stacks) == ("web/x", ("web/x", "web/y"))
    # A file of stacks alone names the fleet: the default stack does not join it.
    assert config.load({"stacks_file": "fleet.txt"}, env={}, cwd=tmp_path).stacks == (
        "shop/a",
        "shop/c",
        "shop/b",
    )
    assert config.load({}, env={}, cwd=tmp_path).stacks == ("webapp/dev",)
    one = loaded.for_stack("shop/c")
    assert (one.stack, one.stacks, one.store) == ("shop/c", ("shop/c",), loaded.store)


@pytest.mark.parametrize(
    ("text", "line"),
    [("shop/a\nshop/b extra\n", 2), ("# x\n\nno-slash  # y\n", 3), ("a/b/c\n", 1)],
)
def test_a_malformed_stacks_file_line_is_named(tmp_path: Path, text: str, line: int) -> None:
    (tmp_path / "fleet.txt").write_text(text)
    with pytest.raises(ConfigError, match=rf"fleet.txt line {line}: .* is not PROJECT/STACK"):
        config.load({"stacks_file": "fleet.txt"}, env={}, cwd=tmp_path)
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="names no stack"):
        config.load({"stacks_file": "empty.txt"}, env={}, cwd=tmp_path)


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        root.main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_refusals_are_exit_2_and_change_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    two = ("--store", str(store), "--stack", "shop/a", "--stack", "shop/b")
    code, out, err = run_main(capsys, *two, "plan", "1.4.0")
    assert code == 2 and out == ""
    assert "`rollback plan` works on one stack, and 2 were named (shop/a, shop/b)" in err
    code, _, err = run_main(capsys, *two, "to", "1.4.0", "--yes", "--parallel", "0")
    assert code == 2 and "--parallel" in err
    code, _, err = run_main(capsys, *two, "to", "1.4.0")  # no terminal here to confirm on
    assert code == 2 and "pass --yes to roll back from a pipeline" in err
    (tmp_path / "fleet.txt").write_text("shop/a\nshop b\n")
    code, out, err = run_main(
        capsys, "-o", "json", "--store", str(store), "--stacks-file", "fleet.txt", "to", "1.4.0"
    )
    assert code == 2
    assert "fleet.txt line 2: 'shop b' is not PROJECT/STACK" in json.loads(out)["message"]
    assert not store.exists()  # nothing planned, locked or journalled


# -- run_fleet ----------------------------------------------------------------------------


def test_at_most_parallel_stacks_run_at_once() -> None:
    running, peak, guard = 0, 0, threading.Lock()

    def work(stack: str) -> str:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with guard:
            running -= 1
        return stack

    done = each_stack([f"p/s{i}" for i in range(7)], work, parallel=3)
    assert peak == 3
    assert [value for value, _ in done.values()] == [f"p/s{i}" for i in range(7)]
    assert each_stack(["p/a"], work, parallel=1)["p/a"][0] == "p/a"
    with pytest.raises(UsageError, match="not a positive number"):
        each_stack(["p/a"], work, parallel=0)
    with pytest.raises(UsageError, match="p/a is named twice"):
        each_stack(["p/a", "p/b", "p/a"], work, parallel=2)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        ({}, 0),
        ({"p/b": LockHeld("held")}, 3),
        ({"p/b": LockHeld("held"), "p/c": NotFound("gone")}, 3),
        ({"p/b": LockHeld("held"), "p/c": IntegrityError("tampered")}, 4),
        ({"p/a": NotFound("gone"), "p/c": ZeroDivisionError("bug")}, 70),
        ({"p/a": NotFound("gone")}, 2),
    ],
)
def test_each_failure_is_its_stacks_entry_and_the_worst_is_the_exit_code(
    raised: dict[str, Exception], expected: int, tmp_path: Path
) -> None:
    from rollback.plan import Plan

    def work(stack: str) -> Outcome:
        if stack in raised:
            raise raised[stack]
        plan = Plan(
            run_id="r",
            stack=stack,
            from_version="1.0.0",
            to_version="1.0.0",
            created_at="2026-11-29T12:00:00+00:00",
            created_by="t",
            reason="",
            steps=(),
            warnings=(f"{stack} is already at 1.0.0; nothing to do.",),
        )
        return Outcome(plan, None)

    fleet = run_fleet(["p/a", "p/b", "p/c"], work, parallel=2)
    assert [r.stack for r in fleet.runs] == ["p/a", "p/b", "p/c"]
    assert fleet.exit_code == expected and fleet.ok is (expected == 0)
    for run in fleet.runs:
        if run.stack in raised:
            exc = raised[run.stack]
            assert (run.ok, run.error) == (False, type(exc).__name__)
            assert run.exit_code == getattr(exc, "exit_code", 70)
            assert str(exc) in run.message
        else:
            assert (run.ok, run.result, run.exit_code) == (True, "nothing to do", 0)
            assert run.message == f"{run.stack} is already at 1.0.0; nothing to do."
    assert fleet.counts["total"] == 3 and fleet.counts["not_ok"] == len(raised)


@pytest.fixture
def aws() -> Iterator[Clients]:
    with mock_aws():
        yield Clients(boto3.Session(region_name="us-east-1"))


def test_a_fleet_over_the_cloud_rolls_back_each_stack_on_its_own(
    aws: Clients, tmp_path: Path
) -> None:
    store = open_store(str(tmp_path / "store"))
    topologies = build_stacks(aws, store, tmp_path, 3)
    no_timing = Timing(sleep=lambda _: None)

    def work(stack: str) -> Outcome:
        # Its own clients and registry per stack, as the CLI's Factory.for_stack builds them.
        bench = Workbench(
            clients=Clients(boto3.Session(region_name="us-east-1")),
            store=open_store(str(tmp_path / "store")),
            registry=Registry(open_store(str(tmp_path / "store")), stack),
            engine=lambda: pytest.fail("no stack step is planned"),
            timing=no_timing,
        )
        return rollback_to(bench, "1.4.0", Options(actor="test"))

    fleet = run_fleet([*topologies, "shop/unknown"], work, parallel=2)
    assert fleet.exit_code == 2  # the unknown stack is refused; the others are ok
    assert [(r.stack, r.result) for r in fleet.runs] == [
        ("shop/s0", "succeeded"),
        ("shop/s1", "succeeded"),
        ("shop/s2", "succeeded"),
        ("shop/unknown", "refused"),
    ]
    assert "shop/unknown has no releases" in fleet.runs[-1].message
    for stack, topology in topologies.items():
        assert listener_weights(aws("elbv2"), topology) == {"blue": 0, "green": 100}
        assert Registry(store, stack).current() == "1.4.0"
    for run in fleet.runs[:3]:  # one journal per stack, under its own name
        assert [r.run_id for r in list_runs(store, run.stack)] == [run.run_id]
