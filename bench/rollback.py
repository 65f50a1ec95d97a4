"""Benchmark: time to traffic restored of `rollback to last-stable`, against a bare boto3 swap.

    python bench/rollback.py [--fleet N]

1. Builds the demo's world in-process against a ThreadedMotoServer (v1.0.0 on
   blue, recorded and stable; v2.0.0 on green with a program change; green's
   health endpoint failing), with rollback.demo's own building blocks, then
   rolls back to last-stable through `rollback_to` and prints the RunResult's
   time to traffic restored and total time.
2. Times a bare boto3 traffic swap on the same listener (modify_listener to
   the target weights + describe_listeners; median of runs) and prints the
   ratio time-to-traffic-restored / bare swap, with where the time before
   traffic went (the steps that run before it).
3. Fleet: N small stacks (listener, target groups, Route53 weights, a health
   URL; plain boto3) rolled back with --parallel 1 and 8, and the speed-up.

The last line is exactly `rollback_traffic_ratio: <value>`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

V1, V2 = "1.0.0", "2.0.0"


def _env(url: str) -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,
        PULUMI_CONFIG_PASSPHRASE="test-passphrase",
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)


def demo_world(work: Path, url: str, health: dict[str, str]) -> Any:
    """The demo's v1/v2 world (rollback.demo's steps, in-process); returns the Workbench."""
    import git

    from rollback import demo, stacks
    from rollback.aws.rds import Rds
    from rollback.aws.session import Clients, make_session
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.orchestrate import Workbench
    from rollback.releases import Attachments, Registry
    from rollback.store import open_store

    clients = Clients(make_session("us-east-1"), endpoint_url=url)
    store = open_store(str(work / "store"))
    registry = Registry(store, demo.STACK)
    engine = EmbeddedEngine(store=store, clients=clients, project="webapp")
    repo_dir = work / "iac"
    shutil.copytree(
        demo.SOURCE / "stacks" / "webapp",
        repo_dir / "stacks" / "webapp",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(demo.SOURCE / "Pulumi.yaml", repo_dir / "Pulumi.yaml")
    salt, password = demo._dev_secrets()
    config = repo_dir / "Pulumi.dev.yaml"
    repo = git.Repo.init(repo_dir)
    author = git.Actor("bench", "bench@rollback.invalid")

    def release(version: str, live: str) -> None:
        versions = {"blue": V1, "green": version}
        config.write_text(
            demo._config_yaml(salt, password, live=live, versions=versions, health=health)
        )
        repo.index.add(["Pulumi.yaml", "Pulumi.dev.yaml", "stacks"])
        repo.index.commit(f"webapp {version}", author=author, committer=author)
        project = stacks.load_project(repo_dir)
        stacks.up(engine, project, "dev")
        artifact = work / f"webapp-{version}.tgz"
        artifact.write_bytes(f"webapp {version}\n".encode())
        attached = stacks.release_state(engine, project, "dev", version, Rds(clients("rds"))) or {}
        registry.record(version, artifact, repo_dir, attachments=Attachments(**attached))

    release(V1, "blue")
    registry.mark(V1, "stable", "bench")
    with (repo_dir / "stacks" / "webapp" / "__main__.py").open("a") as main:
        main.write(demo.V2_PROGRAM_CHANGE)
    release(V2, "green")
    return Workbench(clients=clients, store=store, registry=registry, engine=lambda: engine)


def bare_swap(elbv2: Any, listener: str, weights: dict[str, int], runs: int = 15) -> float:
    """Median seconds of modify_listener to `weights` (target group ARN -> weight) + describe."""
    action = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": a, "Weight": w} for a, w in weights.items()]
        },
    }
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        elbv2.modify_listener(ListenerArn=listener, DefaultActions=[action])
        elbv2.describe_listeners(ListenerArns=[listener])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fleet_world(work: Path, count: int, health_url: str) -> list[str]:
    """`count` small stacks (fleet/s00..): ALB listener, two target groups, Route53 weights."""
    import boto3
    import git

    from rollback.models import Topology
    from rollback.releases import Attachments, Registry
    from rollback.store import open_store

    ec2, elbv2, route53 = (boto3.client(s) for s in ("ec2", "elbv2", "route53"))
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "us-east-1a"), (2, "us-east-1b"))
    ]
    store = open_store(str(work / "store"))
    names = []
    for n in range(count):
        name = f"s{n:02d}"
        lb = elbv2.create_load_balancer(Name=f"fleet-{name}", Subnets=subnets)["LoadBalancers"][0]
        tgs = {
            c: elbv2.create_target_group(Name=f"{name}-{c}", Protocol="HTTP", Port=80, VpcId=vpc)[
                "TargetGroups"
            ][0]["TargetGroupArn"]
            for c in ("blue", "green")
        }
        instances = ec2.run_instances(
            ImageId="ami-0123456789abcdef0", MinCount=2, MaxCount=2, SubnetId=subnets[0]
        )["Instances"]
        for c, i in zip(("blue", "green"), instances, strict=True):
            elbv2.register_targets(TargetGroupArn=tgs[c], Targets=[{"Id": i["InstanceId"]}])
        listener = elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": tgs["blue"], "Weight": 0},
                            {"TargetGroupArn": tgs["green"], "Weight": 100},
                        ]
                    },
                }
            ],
        )["Listeners"][0]["ListenerArn"]
        zone = route53.create_hosted_zone(Name=f"{name}.example.com", CallerReference=name)[
            "HostedZone"
        ]["Id"]
        route53.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": f"app.{name}.example.com",
                            "Type": "CNAME",
                            "SetIdentifier": c,
                            "Weight": w,
                            "TTL": 60,
                            "ResourceRecords": [{"Value": f"{c}.example.com"}],
                        },
                    }
                    for c, w in (("blue", 0), ("green", 100))
                ]
            },
        )
        topology = Topology(
            listener_arn=listener,
            target_groups=tgs,
            zone_id=zone,
            record_name=f"app.{name}.example.com",
            record_type="CNAME",
            set_identifiers={"blue": "blue", "green": "green"},
            db_instance_id="",
            health_urls={"blue": [health_url], "green": [health_url]},
            alarms={},
            live_color="green",
            versions={"blue": V1, "green": V2},
            load_balancer_arn=lb["LoadBalancerArn"],
        )
        stack = f"fleet/{name}"
        registry = Registry(store, stack)
        repo_dir = work / "repos" / name
        repo = git.Repo.init(repo_dir)
        author = git.Actor("bench", "bench@rollback.invalid")
        artifact = work / "app.tgz"
        artifact.write_bytes(b"app")
        for version, colour in ((V1, "blue"), (V2, "green")):
            (repo_dir / "main.py").write_text(f"# {version}\n")
            repo.index.add(["main.py"])
            repo.index.commit(version, author=author, committer=author)
            blob = json.dumps(replace(topology, live_color=colour).to_dict()).encode()
            registry.record(
                version, artifact, repo_dir, attachments=Attachments(topology=blob, color=colour)
            )
            if version == V1:
                registry.mark(V1, "stable", "bench")
        names.append(stack)
    return names


def reset_fleet(store: Any, stacks: list[str]) -> None:
    """Put every fleet stack back on green with 2.0.0 current (the rollback moved them)."""
    import boto3

    from rollback.models import Topology
    from rollback.releases import Registry

    elbv2, route53 = boto3.client("elbv2"), boto3.client("route53")
    for stack in stacks:
        registry = Registry(store, stack)
        release = registry.show(V2).release
        assert release.topology is not None
        topo = Topology.from_dict(json.loads(store.get_blob(release.topology.sha256)))
        weights = {"blue": 0, "green": 100}
        bare_swap(
            elbv2, topo.listener_arn, {topo.target_groups[c]: w for c, w in weights.items()}, 1
        )
        route53.change_resource_record_sets(
            HostedZoneId=topo.zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": topo.record_name,
                            "Type": "CNAME",
                            "SetIdentifier": c,
                            "Weight": w,
                            "TTL": 60,
                            "ResourceRecords": [{"Value": f"{c}.example.com"}],
                        },
                    }
                    for c, w in weights.items()
                ]
            },
        )
        registry.mark(V2, "candidate", "bench reset")
        registry.set_current(V2, "bench reset")


def run_fleet_bench(work: Path, url: str, count: int, health_url: str) -> dict[str, float]:
    from rollback.aws.session import Clients, make_session
    from rollback.fleet import run_fleet
    from rollback.orchestrate import Workbench, rollback_to
    from rollback.planner import Options
    from rollback.releases import Registry
    from rollback.store import open_store

    stacks = fleet_world(work, count, health_url)
    store = open_store(str(work / "store"))

    def work_on(stack: str) -> Any:
        clients = Clients(make_session("us-east-1"), endpoint_url=url)
        bench = Workbench(
            clients=clients,
            store=open_store(str(work / "store")),
            registry=Registry(open_store(str(work / "store")), stack),
            engine=lambda: None,  # type: ignore[arg-type,return-value]  # no stack step
        )
        return rollback_to(bench, "last-stable", Options(reason="bench", actor="bench"))

    seconds = {}
    for parallel in (1, 8):
        result = run_fleet(stacks, work_on, parallel)
        if not result.ok:
            raise SystemExit(f"fleet --parallel {parallel} failed: {result.to_dict()['counts']}")
        seconds[f"parallel {parallel}"] = result.duration_s
        reset_fleet(store, stacks)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleet", type=int, default=20, help="stacks in the fleet (0: skip)")
    args = parser.parse_args()

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from rollback.healthserver import HealthServer
    from rollback.orchestrate import rollback_to
    from rollback.planner import Options

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    _env(url)
    work = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    try:
        with HealthServer() as blue, HealthServer() as green:
            started = time.perf_counter()
            bench = demo_world(work / "demo", url, {"blue": blue.url, "green": green.url})
            print(f"demo world built in {time.perf_counter() - started:.1f}s")
            green.status = 500
            outcome = rollback_to(
                bench, "last-stable", Options(reason="bench: green answers 500", actor="bench")
            )
            result = outcome.result
            if result is None or not result.ok:
                raise SystemExit(f"the rollback did not succeed: {result and result.message}")
            ttr = float(result.time_to_traffic_restored_s or 0.0)
            total = float(result.duration_s or 0.0)
            print(
                f"rollback to last-stable: time to traffic restored {ttr:.3f}s, total {total:.3f}s"
            )
            for step in result.steps:
                print(f"  {step.name:<12} {step.duration_s or 0.0:7.3f}s")

            topology = bench.registry.topology(bench.registry.show(V1).release)
            weights = {topology.target_groups["blue"]: 100, topology.target_groups["green"]: 0}
            swap = bare_swap(
                boto3.client("elbv2", endpoint_url=url), topology.listener_arn, weights
            )
            ratio = ttr / swap
            print(f"bare boto3 swap (modify_listener + describe_listeners, median): {swap:.4f}s")
            steps_before = [
                (s.name, s.duration_s or 0.0)
                for s in result.steps[: [s.name for s in result.steps].index("traffic") + 1]
            ]
            print(
                "before traffic was restored: "
                + ", ".join(f"{n} {d:.3f}s" for n, d in steps_before)
                + f"; the rest ({ttr - sum(d for _, d in steps_before):.3f}s) is the journal, "
                "lock and planning reads"
            )
            print(f"ratio time-to-traffic-restored / bare swap: {ratio:.1f} (target <= 2)")

            if not args.fleet:
                print("fleet: skipped (--fleet 0)")
            else:
                try:
                    import rollback.fleet  # noqa: F401
                except ImportError:
                    print("fleet: skipped, rollback.fleet has not landed")
                else:
                    fleet = run_fleet_bench(work / "fleet", url, args.fleet, blue.url)
                    one, eight = fleet["parallel 1"], fleet["parallel 8"]
                    print(
                        f"fleet of {args.fleet} stacks: --parallel 1 {one:.1f}s, --parallel 8 "
                        f"{eight:.1f}s, speed-up {one / eight:.1f}x"
                    )
            print(f"rollback_traffic_ratio: {ratio:.2f}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
