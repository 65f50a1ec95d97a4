"""Benchmark: TrafficStep apply+verify against the three bare boto3 calls it must make.

Run as `python bench/traffic.py [--rounds N]`. Starts a moto server on
127.0.0.1 (a free port), builds a load balancer with blue and green target
groups (one running instance each) and a sticky weighted listener, then
alternates (a) a bare script of describe_target_health, modify_listener and
describe_listeners and (b) TrafficStep.apply() + verify(), each shifting all
traffic to the other colour, so every run really changes the listener. Prints
the best time of each, the API calls the step made against the minimum of 3,
and last `traffic_step_ratio: <step / bare>` (target <= 1.5).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollback.aws.elbv2 import LoadBalancing  # noqa: E402
from rollback.models import Topology  # noqa: E402
from rollback.steps.traffic import TrafficStep  # noqa: E402

REGION = "us-east-1"


def build(endpoint: str) -> tuple[Any, Topology]:
    """An ALB with blue and green target groups, one instance each, blue live."""
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    elb = boto3.client("elbv2", region_name=REGION, endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")[
            "Subnet"
        ]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    lb = elb.create_load_balancer(Name="bench", Subnets=subnets)["LoadBalancers"][0]
    tgs = {
        c: elb.create_target_group(Name=c, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0][
            "TargetGroupArn"
        ]
        for c in ("blue", "green")
    }
    run = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", MinCount=2, MaxCount=2, SubnetId=subnets[0]
    )
    for colour, instance in zip(tgs, run["Instances"], strict=True):
        elb.register_targets(TargetGroupArn=tgs[colour], Targets=[{"Id": instance["InstanceId"]}])
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[forward(tgs, "blue")],
    )["Listeners"][0]["ListenerArn"]
    topology = Topology(
        listener_arn=listener,
        target_groups=tgs,
        zone_id="",
        record_name="",
        record_type="CNAME",
        set_identifiers={},
        db_instance_id="",
        health_urls={},
        alarms={},
        live_color="blue",
        versions={},
        load_balancer_arn=lb["LoadBalancerArn"],
    )
    return elb, topology


def forward(tgs: dict[str, str], to: str) -> dict[str, Any]:
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": arn, "Weight": 100 if c == to else 0} for c, arn in tgs.items()
            ],
            "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300},
        },
    }


def bare(elb: Any, topology: Topology, to: str) -> None:
    """What a hand-written script does: check health, write, read back."""
    health = elb.describe_target_health(TargetGroupArn=topology.target_groups[to])
    assert any(d["TargetHealth"]["State"] == "healthy" for d in health["TargetHealthDescriptions"])
    elb.modify_listener(
        ListenerArn=topology.listener_arn, DefaultActions=[forward(topology.target_groups, to)]
    )
    actions = elb.describe_listeners(ListenerArns=[topology.listener_arn])["Listeners"][0][
        "DefaultActions"
    ]
    weights = {
        g["TargetGroupArn"]: g["Weight"] for g in actions[0]["ForwardConfig"]["TargetGroups"]
    }
    assert weights[topology.target_groups[to]] == 100


def step(elb: Any, topology: Topology, to: str) -> None:
    traffic = TrafficStep(LoadBalancing(elb), topology, {to: 100})
    assert traffic.apply().changed
    assert all(e.ok for e in traffic.verify())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        elb, topology = build(f"http://{host}:{port}")
        calls: Counter[str] = Counter()
        counting = {"on": False}

        def count(model: Any, **_: Any) -> None:
            if counting["on"]:
                calls[model.name] += 1

        elb.meta.events.register("before-call.elastic-load-balancing-v2", count)
        colours = ("green", "blue")
        times: dict[str, list[float]] = {"bare": [], "step": []}
        for i in range(args.rounds * 2):
            to = colours[i % 2]
            kind = "bare" if i % 2 == 0 else "step"
            counting["on"] = kind == "step" and i == 1
            start = time.perf_counter()
            (bare if kind == "bare" else step)(elb, topology, to)
            times[kind].append(time.perf_counter() - start)
            counting["on"] = False
        best_bare, best_step = min(times["bare"]), min(times["step"])
        ratio = best_step / best_bare
        made = sum(calls.values())
        print(f"rounds: {args.rounds} each, alternating blue<->green, moto server {host}:{port}")
        print(f"bare boto3 (3 calls): best {best_bare * 1000:.2f} ms")
        print(f"TrafficStep apply+verify: best {best_step * 1000:.2f} ms")
        print(
            f"step API calls: {made} vs minimum 3 ({', '.join(f'{k} x{v}' for k, v in sorted(calls.items()))})"
        )
        print(f"traffic_step_ratio: {ratio:.3f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
