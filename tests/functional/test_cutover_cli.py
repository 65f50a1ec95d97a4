"""`rollback cutover` and `rollback watch` as users run them: the installed command against
the moto server, with real loopback health servers for the colours and a local store that
holds the releases (recorded in-process with the registry) and the journal."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from rollback.aws.cloudwatch import Alarms, Metrics
from rollback.aws.elbv2 import LoadBalancing
from rollback.aws.route53 import Dns
from rollback.cutover import Cutover
from rollback.journal import Journal, latest_run
from rollback.models import Topology
from rollback.releases import Attachments, Registry
from rollback.store import open_store
from rollback.store.lock import acquire_lock
from rollback.triggers import CloudApis
from rollback.waiting import Timing
from tests.functional.conftest import (
    RunCli,
    describe,
    parse_json,
    signal_when,
)
from tests.unit.healthserver import HealthServer
from tests.unit.test_releases import commit, make_repo

STACK = "webapp/prod"


@dataclass
class Site:
    """Blue (stable 1.4.0, all traffic) and green (current 1.5.0) behind a moto ALB and Route53."""

    elbv2: Any
    route53: Any
    cloudwatch: Any
    topology: Topology
    store_dir: Path
    blue: HealthServer
    green: HealthServer

    def args(self, *more: str) -> list[str]:
        return ["--stack", STACK, "--store", str(self.store_dir), "--output", "json", *more]

    def weights(self) -> dict[str, int]:
        listener = self.elbv2.describe_listeners(ListenerArns=[self.topology.listener_arn])
        groups = listener["Listeners"][0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        colour = {arn: c for c, arn in self.topology.target_groups.items()}
        return {colour[g["TargetGroupArn"]]: g["Weight"] for g in groups}

    def dns_weights(self) -> dict[str, int]:
        listed = self.route53.list_resource_record_sets(HostedZoneId=self.topology.zone_id)
        return {
            r["SetIdentifier"]: r["Weight"]
            for r in listed["ResourceRecordSets"]
            if "SetIdentifier" in r
        }

    def registry(self) -> Registry:
        return Registry(open_store(str(self.store_dir)), STACK)

    def apis(self) -> CloudApis:
        cw = self.cloudwatch
        return CloudApis(LoadBalancing(self.elbv2), Dns(self.route53), Alarms(cw), Metrics(cw))

    def when_green_has(self, weight: int, action: Callable[[], None]) -> threading.Thread:
        """Run `action` (in a thread) as soon as the cloud shows green at `weight`."""

        def wait() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.weights().get("green") == weight:
                    action()
                    return
                time.sleep(0.05)

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        return thread


def _build(tmp_path: Path, blue: HealthServer, green: HealthServer) -> Site:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    route53 = boto3.client("route53", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "us-east-1a"), (2, "us-east-1b"))
    ]
    lb = elbv2.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    tgs = {
        c: elbv2.create_target_group(Name=c, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][
            0
        ]["TargetGroupArn"]
        for c in ("blue", "green")
    }
    run = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        MinCount=2,
        MaxCount=2,
        InstanceType="t3.micro",
        SubnetId=subnets[0],
    )
    for colour, instance in zip(("blue", "green"), run["Instances"], strict=True):
        elbv2.register_targets(TargetGroupArn=tgs[colour], Targets=[{"Id": instance["InstanceId"]}])
        # What each colour runs, where the outcome check reads it (never from a release record).
        ec2.create_tags(
            Resources=[instance["InstanceId"]],
            Tags=[{"Key": "AppVersion", "Value": {"blue": "1.4.0", "green": "1.5.0"}[colour]}],
        )
    listener = elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": tgs["blue"], "Weight": 100},
                        {"TargetGroupArn": tgs["green"], "Weight": 0},
                    ]
                },
            }
        ],
    )["Listeners"][0]["ListenerArn"]
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="cutover")["HostedZone"][
        "Id"
    ]
    route53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "app.example.com",
                        "Type": "CNAME",
                        "SetIdentifier": colour,
                        "Weight": weight,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": f"{colour}.example.com"}],
                    },
                }
                for colour, weight in (("blue", 100), ("green", 0))
            ]
        },
    )
    topology = Topology(
        listener_arn=listener,
        target_groups=tgs,
        zone_id=zone,
        record_name="app.example.com",
        record_type="CNAME",
        set_identifiers={"blue": "blue", "green": "green"},
        db_instance_id="db",
        health_urls={"blue": [blue.url], "green": [green.url]},
        alarms={},
        live_color="green",
        versions={"blue": "1.4.0", "green": "1.5.0"},
        load_balancer_arn=lb,
    )
    store_dir = tmp_path / "store"
    registry = Registry(open_store(str(store_dir)), STACK)
    repo = make_repo(tmp_path / "iac")
    artifact = tmp_path / "app.tgz"
    artifact.write_bytes(b"app")
    for version, colour in (("1.4.0", "blue"), ("1.5.0", "green")):
        commit(repo, "main.py", version, f"chore: {version}")
        blob = json.dumps(replace(topology, live_color=colour).to_dict()).encode()
        registry.record(
            version,
            artifact,
            Path(repo.working_dir),
            attachments=Attachments(topology=blob, color=colour),
        )
    registry.mark("1.4.0", "stable", "baked")
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    return Site(elbv2, route53, cloudwatch, topology, store_dir, blue, green)


@pytest.fixture
def site(moto_endpoint: str, tmp_path: Path) -> Iterator[Site]:
    with HealthServer() as blue, HealthServer() as green:
        yield _build(tmp_path, blue, green)


FAST = ("--interval", "0.2s", "--health-failures", "2")


def test_clean_cutover_with_bake_and_promotion(site: Site, run_cli: RunCli) -> None:
    args = site.args(
        "cutover", "green", "--steps", "50,100", "--pause", "1s", "--bake", "2s", *FAST, "--promote"
    )
    result = run_cli(*args)
    assert result.returncode == 0, describe(result, args)
    doc = parse_json(result)
    assert doc["result"] == "succeeded" and doc["ok"] and doc["promoted"]
    assert site.weights() == {"blue": 0, "green": 100}
    assert site.dns_weights() == {"blue": 0, "green": 100}
    assert site.registry().show("1.5.0").status == "stable"
    assert [s["state"] for s in doc["steps"]] == ["verified"] * 6
    assert len(site.green.requests) >= 10  # the bake really probed green
    assert "waiting for" not in result.stderr  # progress stays quiet off a terminal


def test_green_failing_in_the_second_step_goes_back_to_blue(site: Site, run_cli: RunCli) -> None:
    site.when_green_has(100, lambda: setattr(site.green, "status", 503))
    args = site.args(
        "cutover", "green", "--steps", "50,100", "--pause", "1s", "--bake", "5s", *FAST
    )
    result = run_cli(*args)
    assert result.returncode == 1, describe(result, args)
    doc = parse_json(result)
    assert doc["result"] == "reverted"
    assert doc["breach"]["signal"] == "health" and doc["breach"]["target"] == site.green.url
    assert site.weights() == {"blue": 100, "green": 0}
    assert site.dns_weights() == {"blue": 100, "green": 0}
    run = Journal.load(open_store(str(site.store_dir)), STACK, doc["run_id"])
    assert run.result == "failed" and run.traffic_restored_at is not None
    assert run.step("watch-100").state == "failed" and "503" in run.step("watch-100").error
    assert site.registry().show("1.5.0").status == "candidate"


def test_an_alarm_in_alarm_during_the_bake_reverts(site: Site, run_cli: RunCli) -> None:
    site.cloudwatch.put_metric_alarm(
        AlarmName="green-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )

    def alarm() -> None:
        time.sleep(0.5)  # into the bake
        site.cloudwatch.set_alarm_state(
            AlarmName="green-5xx", StateValue="ALARM", StateReason="5xx above 10"
        )

    site.when_green_has(100, alarm)
    args = site.args("cutover", "green", "--bake", "20s", "--alarm", "green-5xx", *FAST)
    started = time.monotonic()
    result = run_cli(*args)
    assert result.returncode == 1, describe(result, args)
    assert time.monotonic() - started < 15  # the breach ended the 20 s bake early
    doc = parse_json(result)
    assert (doc["breach"]["signal"], doc["breach"]["value"]) == ("alarm", "ALARM")
    assert site.weights() == {"blue": 100, "green": 0}


def test_a_5xx_rate_above_the_threshold_reverts(site: Site, run_cli: RunCli) -> None:
    from rollback.triggers import alb_dimensions

    dims = alb_dimensions(site.topology, "green")
    site.cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {"MetricName": "RequestCount", "Dimensions": dims, "Value": 100.0},
            {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims, "Value": 12.0},
        ],
    )
    args = site.args("cutover", "green", "--bake", "5s", "--max-5xx-rate", "5%", *FAST)
    result = run_cli(*args)
    assert result.returncode == 1, describe(result, args)
    doc = parse_json(result)
    assert doc["breach"]["signal"] == "5xx-rate" and doc["breach"]["value"]["rate"] == 0.12
    assert site.weights() == {"blue": 100, "green": 0}


@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_sigterm_during_the_bake_leaves_a_verified_state_and_resume_finishes(
    site: Site, moto_endpoint: str, sent: signal.Signals, code: int
) -> None:
    args = site.args(
        "cutover", "green", "--steps", "50,100", "--pause", "0", "--bake", "60s", *FAST, "--promote"
    )
    env = {"AWS_ENDPOINT_URL": moto_endpoint}
    into_the_bake = signal_when(args, env, lambda: site.weights().get("green") == 100, sent)
    stdout, stderr = into_the_bake.stdout, into_the_bake.stderr
    # 128 + the signal, as a shell reports it: Ctrl-C is 130 everywhere.
    assert into_the_bake.returncode == code, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    doc = json.loads(stdout)
    assert doc["result"] == "interrupted" and sent.name in doc["message"]
    assert site.weights() == {"blue": 0, "green": 100}  # where the verified step left it
    store = open_store(str(site.store_dir))
    run = latest_run(store, STACK)
    assert run is not None and run.run_id == doc["run_id"] and not run.finished
    assert run.in_flight is not None and run.in_flight.name == "watch-100"
    stopped = run.last("stopped")
    assert stopped is not None and stopped.data["weights"] == {"blue": 0, "green": 100}
    assert not store.has_doc("locks/webapp/prod.lock")

    # `rollback resume RUN` interrupted the same way during its own bake exits the same way.
    seen = len(run.events)
    resumed_cli = signal_when(
        site.args("resume", doc["run_id"]),
        env,
        lambda: len(latest_run(store, STACK).events) > seen,
        sent,
    )
    stdout, stderr = resumed_cli.stdout, resumed_cli.stderr
    assert resumed_cli.returncode == code, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    assert json.loads(stdout)["result"] == "interrupted"
    assert site.weights() == {"blue": 0, "green": 100}

    # Resume in a new "process": the bake starts over (on a fake clock here) and the run finishes.
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    resumed = Cutover(
        store, STACK, site.apis(), timing=Timing(sleep=sleep, clock=lambda: now[0]), actor="ci"
    ).resume(doc["run_id"])
    assert resumed.ok, resumed.message
    assert now[0] >= 60
    assert site.weights() == {"blue": 0, "green": 100}
    assert site.registry().show("1.5.0").status == "stable"
    assert Journal.load(store, STACK, doc["run_id"]).result == "succeeded"


def test_watch_passes_a_good_release_and_promotes_it(site: Site, run_cli: RunCli) -> None:
    args = site.args("watch", "--window", "1s", "--health", site.green.url, *FAST, "--promote")
    result = run_cli(*args)
    assert result.returncode == 0, describe(result, args)
    doc = parse_json(result)
    assert doc["result"] == "passed" and doc["promoted"] and doc["target_version"] == "1.4.0"
    assert site.registry().show("1.5.0").status == "stable"
    assert site.green.requests


def test_watch_exits_3_when_the_lock_is_held(site: Site, run_cli: RunCli) -> None:
    acquire_lock(open_store(str(site.store_dir)), STACK, "someone-else")
    args = site.args("watch", "--window", "1s")
    result = run_cli(*args)
    assert result.returncode == 3, describe(result, args)
    assert "someone-else" in parse_json(result)["message"]
    assert site.green.requests == []


@pytest.mark.parametrize("flag", ["--bake", "--pause", "--interval"])
def test_a_bad_duration_exits_2_with_one_sentence(site: Site, run_cli: RunCli, flag: str) -> None:
    args = site.args("cutover", "green", flag, "ten minutes")
    result = run_cli(*args)
    assert result.returncode == 2, describe(result, args)
    assert "is not a duration; write 90s, 10m, 1h" in result.stderr
    assert site.weights() == {"blue": 100, "green": 0}
