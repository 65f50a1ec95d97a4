"""Benchmark: the rollback agent, from an alarm to a flipped listener, and a fleet through the queue.

    python bench/agent.py [--stacks 50] [--trials 5]

Everything runs against a moto server in its own process; the agents are
`rollback agent run` subprocesses on one queue made by `rollback agent setup`.

(a) Alarm to traffic: an alarm's state change is published to EventBridge
    (`put_events`, the shape CloudWatch sends); moto delivers it to the
    queue; a waiting agent receives it and runs the emergency path. Timed:
    publish -> the listener reads green (polled every 5 ms). Baseline, in
    the same run: the least any queue-driven consumer does -- a bare boto3
    long-poll `receive_message` already waiting, then `modify_listener` +
    `describe_listeners`, timed the same way (publish -> this process sees
    the listener on green). Ratio = agent / baseline (goal <= 1.5). Medians
    of `--trials`, one fresh stack per trial.
(b) Fleet: `--stacks` small stacks rolled back through the queue (one job
    each, as `rollback to --via-queue` sends them) with 1 and with 4 agent
    processes (separate stack sets, same shape); timed from enqueue to the
    last result in the store. Checks every stack has exactly one run and
    every result succeeded. Speed-up = time with 1 / time with 4 (goal >= 3).

Each rollback's plan ends with the health step (three passes two seconds
apart: about 4 s of waiting), so a stack takes about 5 s however fast the
cloud answers; 1 agent runs them one after another.

The last line is exactly `agent_fleet_speedup: <value>`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ROLLBACK = Path(sys.executable).parent / "rollback"


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ROLLBACK_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        ROLLBACK_ENGINE="embedded",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the moto server did not start")


def alarm_entry(alarm: str) -> dict[str, str]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    detail = {
        "alarmName": alarm,
        "state": {"value": "ALARM", "reason": "bench", "timestamp": stamp},
        "previousState": {"value": "OK", "reason": "quiet", "timestamp": stamp},
    }
    return {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Detail": json.dumps(detail),
    }


class Agents:
    """`rollback agent run` subprocesses on one queue."""

    def __init__(self, store: Path, queue: str, env: dict[str, str], count: int, log: Path) -> None:
        self.logs = [log.with_suffix(f".{i}.log") for i in range(count)]
        self.procs = [
            subprocess.Popen(
                [
                    str(ROLLBACK),
                    "--store",
                    str(store),
                    "-o",
                    "json",
                    "agent",
                    "run",
                    "--queue",
                    queue,
                    "--wait",
                    "20",
                    "--visibility",
                    "60",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(path, "w"),  # noqa: SIM115 - closed at exit
            )
            for path in self.logs
        ]

    def wait_ready(self, timeout: float = 120) -> None:
        """Until every agent logged that it is receiving (start-up is not what we time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all("alarms of" in p.read_text() for p in self.logs):
                return
            time.sleep(0.1)
        raise SystemExit("the agents did not start")

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc.wait(timeout=120) != 0:
                raise SystemExit(f"agent {proc.pid} exited {proc.returncode} on SIGTERM")


def weights(elbv2: Any, topology: Any) -> dict[str, int]:
    from tests.unit.test_fleet import listener_weights

    return dict(listener_weights(elbv2, topology))


def alarm_to_traffic(
    aws: Any, store: Path, queue: str, env: dict[str, str], topologies: dict[str, Any], work: Path
) -> tuple[float, float]:
    """(median seconds publish -> listener on green through the agent, the bare baseline)."""
    from rollback.journal import list_runs
    from rollback.store import open_store

    events, elbv2, sqs = aws("events"), aws("elbv2"), aws("sqs")
    stacks = list(topologies)
    half = len(stacks) // 2
    agent_times = []
    agents = Agents(store, queue, env, 1, work / "alarm")
    agents.wait_ready()
    time.sleep(0.5)  # its first receive is waiting
    try:
        for stack in stacks[:half]:
            alarm = topologies[stack].alarms["green"][0]
            start = time.perf_counter()
            events.put_events(Entries=[alarm_entry(alarm)])
            while weights(elbv2, topologies[stack]) != {"blue": 0, "green": 100}:
                time.sleep(0.005)
            agent_times.append(time.perf_counter() - start)
            # The agent is free again only when the run (its health step) has finished.
            while not [
                r for r in list_runs(open_store(str(store)), stack) if r.result != "unfinished"
            ]:
                time.sleep(0.05)
            time.sleep(0.5)  # and its next receive is waiting
    finally:
        agents.stop()
    # The baseline: a bare consumer already long-polling the same queue, then the swap. It
    # is timed as the agent is, by this process seeing the listener on green: a consumer
    # timing itself would skip the poll's latency and the load the polling puts on the
    # one moto process, both of which the agent's time includes.
    bare_times = []
    for stack in stacks[half:]:
        topology = topologies[stack]

        def consume(topology: Any = topology) -> None:
            answer = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=20)
            message = answer["Messages"][0]
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            groups = [
                {"TargetGroupArn": topology.target_groups["blue"], "Weight": 0},
                {"TargetGroupArn": topology.target_groups["green"], "Weight": 100},
            ]
            elbv2.modify_listener(
                ListenerArn=topology.listener_arn,
                DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
            )
            elbv2.describe_listeners(ListenerArns=[topology.listener_arn])

        consumer = threading.Thread(target=consume)
        consumer.start()
        time.sleep(0.5)  # the receive is waiting
        start = time.perf_counter()
        events.put_events(Entries=[alarm_entry(topology.alarms["green"][0])])
        while weights(elbv2, topology) != {"blue": 0, "green": 100}:
            time.sleep(0.005)
        bare_times.append(time.perf_counter() - start)
        consumer.join(timeout=30)
    return statistics.median(agent_times), statistics.median(bare_times)


def fleet_through_queue(
    store: Path,
    queue_url: str,
    env: dict[str, str],
    stacks: list[str],
    agents: int,
    work: Path,
    aws: Any,
) -> float:
    """Seconds from enqueueing one job per stack to the last result; checks one run per stack."""
    from rollback.agent_fleet import enqueue, wait_for
    from rollback.aws.sqs import Queue
    from rollback.journal import list_runs
    from rollback.store import open_store

    running = Agents(store, queue_url, env, agents, work / f"fleet{agents}")
    running.wait_ready()
    try:
        start = time.perf_counter()
        jobs = enqueue(Queue(aws("sqs"), queue_url), stacks, "1.4.0", reason="bench", by="bench")
        result = wait_for(open_store(str(store)), jobs, timeout_s=900)
        seconds = time.perf_counter() - start
    finally:
        running.stop()
    if not result.ok:
        raise SystemExit(f"{agents} agents: not every stack succeeded: {result.counts}")
    local = open_store(str(store))
    twice = [s for s in stacks if len(list_runs(local, s)) != 1]
    if twice:
        raise SystemExit(f"{agents} agents: stacks without exactly one run: {twice}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=50, help="stacks per fleet run (0: skip b)")
    parser.add_argument("--trials", type=int, default=5, help="alarm-to-traffic trials")
    args = parser.parse_args()

    import boto3

    from rollback.aws.session import Clients
    from rollback.store import open_store
    from tests.unit.test_fleet import build_stacks

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(url)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    moto = start_moto(port)
    work = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    store = work / "store"
    try:
        aws = Clients(boto3.Session(region_name="us-east-1"), endpoint_url=url)
        started = time.perf_counter()
        local = open_store(str(store))
        alarm_stacks = build_stacks(aws, local, work, 2 * args.trials, project="alarm")
        one = (
            list(build_stacks(aws, local, work, args.stacks, project="one")) if args.stacks else []
        )
        four = (
            list(build_stacks(aws, local, work, args.stacks, project="four")) if args.stacks else []
        )
        print(
            f"{2 * args.trials + 2 * args.stacks} stacks built in {time.perf_counter() - started:.1f}s"
        )
        setup = subprocess.run(
            [str(ROLLBACK), "--store", str(store), "-o", "json", "agent", "setup"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        queue = json.loads(setup.stdout)["outputs"]["queue_url"]

        agent_s, bare_s = alarm_to_traffic(aws, store, queue, env, alarm_stacks, work)
        ratio = agent_s / bare_s
        print(
            f"(a) alarm published -> listener on green: agent {agent_s:.3f}s, bare receive + swap "
            f"{bare_s:.3f}s (medians of {args.trials}); ratio {ratio:.1f} (goal <= 1.5)"
        )
        if not args.stacks:
            print("(b) skipped (--stacks 0)")
            print(f"agent_alarm_ratio: {ratio:.2f}")
            return
        one_s = fleet_through_queue(store, queue, env, one, 1, work, aws)
        print(
            f"(b) {args.stacks} stacks through the queue, 1 agent: {one_s:.1f}s "
            f"({args.stacks / one_s:.2f} stacks/s)"
        )
        four_s = fleet_through_queue(store, queue, env, four, 4, work, aws)
        print(
            f"(b) {args.stacks} stacks through the queue, 4 agents: {four_s:.1f}s "
            f"({args.stacks / four_s:.2f} stacks/s); each stack rolled back exactly once"
        )
        print(f"os.cpu_count() = {os.cpu_count()}; the moto server is one more process")
        print(f"agent_alarm_ratio: {ratio:.2f}")
        print(f"agent_fleet_speedup: {one_s / four_s:.2f}")
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
