"""Benchmark: how fast a cutover's triggers put traffic back after a breach.

Run as `python bench/cutover.py [--trials N] [--interval S]`. Starts the moto
server on loopback, builds a load balancer with blue and green target groups,
records a release in a temporary store and starts a real `Cutover` to green
(one step, a long bake, polling every `--interval` seconds, the default health
failure threshold of 3) against a real loopback health server. Once the bake
is running, at a random phase of the polling cycle, the health server starts
answering 500: from that moment to the journal's `traffic-restored` event
(written after the revert was verified by reading the listener back) is the
detection-plus-revert time. The baseline, measured in the same run, is the
polling interval plus a bare boto3 swap (modify_listener, then
describe_listeners), the best a poller could do. The last line is
`cutover_revert_ratio: <median of detection-plus-revert / baseline>` (target <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

# bench/rollback.py would shadow the package when a script here runs: the checkout comes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET = 1.5


def build_alb(endpoint: str) -> tuple[Any, dict[str, Any]]:
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=endpoint)
    elbv2 = boto3.client("elbv2", endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "us-east-1a"), (2, "us-east-1b"))
    ]
    lb = elbv2.create_load_balancer(Name="bench", Subnets=subnets)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    tgs = {
        c: elbv2.create_target_group(Name=c, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][
            0
        ]["TargetGroupArn"]
        for c in ("blue", "green")
    }
    run = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", MinCount=2, MaxCount=2, InstanceType="t3.micro"
    )
    for colour, instance in zip(("blue", "green"), run["Instances"], strict=True):
        elbv2.register_targets(TargetGroupArn=tgs[colour], Targets=[{"Id": instance["InstanceId"]}])
    listener = elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[forward(tgs, blue=100, green=0)],
    )["Listeners"][0]["ListenerArn"]
    return elbv2, {"lb": lb, "tgs": tgs, "listener": listener}


def forward(tgs: dict[str, str], *, blue: int, green: int) -> dict[str, Any]:
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": tgs["blue"], "Weight": blue},
                {"TargetGroupArn": tgs["green"], "Weight": green},
            ]
        },
    }


def green_weight(elbv2: Any, listener: str, tgs: dict[str, str]) -> int:
    actions = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"]
    groups = actions[0]["ForwardConfig"]["TargetGroups"]
    return next(int(g["Weight"]) for g in groups if g["TargetGroupArn"] == tgs["green"])


def bare_swap(elbv2: Any, listener: str, tgs: dict[str, str]) -> float:
    """Seconds for one boto3 swap to blue and its read-back (green is put back untimed)."""
    elbv2.modify_listener(ListenerArn=listener, DefaultActions=[forward(tgs, blue=0, green=100)])
    start = time.perf_counter()
    elbv2.modify_listener(ListenerArn=listener, DefaultActions=[forward(tgs, blue=100, green=0)])
    assert green_weight(elbv2, listener, tgs) == 0
    return time.perf_counter() - start


def record_release(store_dir: Path, topology: dict[str, Any], work: Path) -> None:
    import git

    from rollback.releases import Attachments, Registry
    from rollback.store import open_store

    repo = git.Repo.init(work / "iac")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Bench")
        cw.set_value("user", "email", "bench@example.invalid")
    (work / "iac" / "main.py").write_text("v1\n")
    repo.index.add(["main.py"])
    repo.index.commit("feat: bench stack")
    artifact = work / "app.tgz"
    artifact.write_bytes(b"app")
    registry = Registry(open_store(str(store_dir)), "webapp/bench")
    registry.record(
        "1.0.0",
        artifact,
        work / "iac",
        attachments=Attachments(topology=json.dumps(topology).encode(), color="green"),
    )


def trial(endpoint: str, interval: float, work: Path, n: int) -> tuple[float, float]:
    """One cutover with a breach: (detection-plus-revert seconds, bare swap seconds)."""
    import boto3

    from rollback.aws.cloudwatch import Alarms, Metrics
    from rollback.aws.elbv2 import LoadBalancing
    from rollback.cutover import Cutover, CutoverSpec
    from rollback.healthserver import HealthServer
    from rollback.models import Topology
    from rollback.store import open_store
    from rollback.triggers import CloudApis, SignalSpec

    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset).close()  # each trial starts from an empty cloud
    elbv2, alb = build_alb(endpoint)
    swap = statistics.median(bare_swap(elbv2, alb["listener"], alb["tgs"]) for _ in range(5))
    with HealthServer() as green:
        topology = Topology(
            listener_arn=alb["listener"],
            target_groups=alb["tgs"],
            zone_id="",
            record_name="",
            record_type="CNAME",
            set_identifiers={},
            db_instance_id="",
            health_urls={"green": [green.url]},
            alarms={},
            live_color="green",
            versions={"blue": "0.9.0", "green": "1.0.0"},
            load_balancer_arn=alb["lb"],
        )
        store_dir = work / f"store-{n}"
        (work / f"t{n}").mkdir()
        record_release(store_dir, topology.to_dict(), work / f"t{n}")
        cw = boto3.client("cloudwatch", endpoint_url=endpoint)
        apis = CloudApis(LoadBalancing(elbv2), None, Alarms(cw), Metrics(cw))
        restored = threading.Event()
        restored_at: list[float] = []
        baking = threading.Event()

        def on_event(event: Any) -> None:
            if event.type == "traffic-restored":
                restored_at.append(time.perf_counter())
                restored.set()
            if event.step == "watch-100" and event.state == "applying":
                baking.set()

        cutover = Cutover(
            open_store(str(store_dir)), "webapp/bench", apis, on_event=on_event, actor="bench"
        )
        spec = CutoverSpec(
            "green", steps=(100,), bake_s=600, signals=SignalSpec(interval_s=interval)
        )
        result: list[Any] = []
        worker = threading.Thread(target=lambda: result.append(cutover.run(spec)), daemon=True)
        worker.start()
        baking.wait(30)
        time.sleep(interval * 1.5 + random.random() * interval)  # a random phase of the polling
        breach_at = time.perf_counter()
        green.status = 500
        restored.wait(60)
        worker.join(30)
        assert result and result[0].result == "reverted", result
        assert green_weight(elbv2, alb["listener"], alb["tgs"]) == 0
        return restored_at[0] - breach_at, swap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    import logging

    logging.disable(logging.WARNING)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    ratios = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(args.trials):
                revert, swap = trial(endpoint, args.interval, Path(tmp), n)
                baseline = args.interval + swap
                ratios.append(revert / baseline)
                print(
                    f"trial {n + 1}: detection+revert {revert * 1000:7.1f} ms, bare swap "
                    f"{swap * 1000:5.1f} ms, interval {args.interval:g} s, ratio {revert / baseline:.2f}"
                )
    finally:
        server.stop()
    median = statistics.median(ratios)
    print(f"worst ratio {max(ratios):.2f}, best {min(ratios):.2f} (health failures to breach: 3)")
    if median > TARGET:
        print(f"above target: detection plus revert is {median:.2f} times interval plus swap")
    print(f"cutover_revert_ratio: {median:.2f}")


if __name__ == "__main__":
    main()
