"""Benchmark: end-to-end time to traffic of `rollback to last-stable --yes`, as a process.

    python bench/e2e_traffic.py [--rounds N]

1. Starts the embedded cloud (`rollback.cloud.start`: moto's server in its own
   process) and two loopback health servers, and builds the demo's world with
   rollback.demo's pieces: v1.0.0 on blue, recorded and stable; v2.0.0 on green
   (a program change), recorded and live; green's health endpoint failing.
2. Each round runs, one after the other:
   - `rollback to last-stable --yes` as a new process (the installed console
     script running this checkout), and
   - a bare `python -c` script that builds a boto3 client and calls
     `modify_listener` with the target weights,
   while ANOTHER process polls `describe_listeners` every ~5 ms and reports the
   moment (CLOCK_MONOTONIC, shared by all processes) the listener's forward
   weights are blue 100 / green 0. The time is from spawning the command to that
   moment. Between commands the world is put back: the stack re-applied at
   2.0.0, traffic (listener and Route53) on green, 2.0.0 current.
3. Prints the median (and all times) of each, the CPU each command had used
   when the flip was seen (read from /proc by the poller: a figure a busy
   machine disturbs less than wall-clock time), and last
   `e2e_traffic_ratio: <median rollback / median bare>` (goal <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROLLBACK = Path(sys.executable).parent / "rollback"
V1, V2 = "1.0.0", "2.0.0"
STACK = "webapp/dev"
PASSPHRASE = "test-passphrase"  # the reference Pulumi.dev.yaml's (rollback.demo uses it too)

# The other process: waits until the listener forwards only to `want`, then prints when.
POLLER = """
import os, sys, time, boto3
listener, want, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
elbv2 = boto3.client("elbv2")
def weights():
    (l,) = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"]
    (a,) = [a for a in l["DefaultActions"] if a["Type"] == "forward"]
    return {t["TargetGroupArn"]: t.get("Weight", 1) for t in a["ForwardConfig"]["TargetGroups"]}
if weights().get(want) == 100:
    sys.exit("the listener already forwards to the target: the world was not reset")
print("ready", flush=True)
pid = int(sys.stdin.readline())  # the command's, to read the CPU it has used at the flip
while True:
    if weights().get(want) == 100:
        seen = time.monotonic()
        try:
            with open(f"/proc/{pid}/stat") as stat:  # a zombie until the bench reaps it
                fields = stat.read().rsplit(")", 1)[1].split()
            # utime, stime, and those of the children it waited for (git)
            cpu = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            cpu = -1.0
        print(seen, cpu, flush=True)
        break
    time.sleep(interval)
"""

# The baseline: what a person with boto3 and the ARNs at hand would run.
BARE = """
import boto3
boto3.client("elbv2").modify_listener(
    ListenerArn={listener!r},
    DefaultActions=[{{"Type": "forward", "ForwardConfig": {{"TargetGroups": [
        {{"TargetGroupArn": {blue!r}, "Weight": 100}},
        {{"TargetGroupArn": {green!r}, "Weight": 0}}]}}}}],
)
"""


def build_world(work: Path, url: str, health: dict[str, str]) -> Any:
    """The demo's v1/v2 world with rollback.demo's pieces; returns (engine, registry, repo)."""
    import git

    from rollback import demo, stacks
    from rollback.aws.rds import Rds
    from rollback.aws.session import Clients, make_session
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.releases import Attachments, Registry
    from rollback.store import open_store

    clients = Clients(make_session("us-east-1"), endpoint_url=url)
    store = open_store(str(work / "store"))
    registry = Registry(store, STACK)
    engine = EmbeddedEngine(store=store, clients=clients, project="webapp")
    repo_dir = work / "iac"
    shutil.copytree(
        demo.SOURCE / "stacks" / "webapp",
        repo_dir / "stacks" / "webapp",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(demo.SOURCE / "Pulumi.yaml", repo_dir / "Pulumi.yaml")
    (repo_dir / ".gitignore").write_text("__pycache__/\n")
    salt, password = demo._dev_secrets()
    config = repo_dir / "Pulumi.dev.yaml"
    repo = git.Repo.init(repo_dir)
    author = git.Actor("bench", "bench@rollback.invalid")

    def release(version: str, live: str) -> None:
        versions = {"blue": V1, "green": version}
        config.write_text(
            demo._config_yaml(salt, password, live=live, versions=versions, health=health)
        )
        repo.index.add(["Pulumi.yaml", "Pulumi.dev.yaml", "stacks", ".gitignore"])
        repo.index.commit(f"webapp {version}", author=author, committer=author)
        project = stacks.load_project(repo_dir)
        stacks.up(engine, project, "dev")
        artifact = work / f"webapp-{version}.tgz"
        artifact.write_bytes(f"webapp {version}\n".encode() * 1024)
        attached = stacks.release_state(engine, project, "dev", version, Rds(clients("rds"))) or {}
        registry.record(version, artifact, repo_dir, attachments=Attachments(**attached))

    release(V1, "blue")
    registry.mark(V1, "stable", "bench")
    with (repo_dir / "stacks" / "webapp" / "__main__.py").open("a") as main:
        main.write(demo.V2_PROGRAM_CHANGE)
    release(V2, "green")
    return engine, registry


def topology(registry: Any) -> Any:
    return registry.topology(registry.show(V2).release)


def reset(engine: Any, registry: Any, clients: dict[str, Any]) -> None:
    """Back to the deploy: the stack at 2.0.0, traffic on green, 2.0.0 current and a candidate."""
    from rollback import stacks

    release = registry.show(V2).release
    stacks.reapply(engine, registry.store, release, "dev")
    topo = registry.topology(release)
    weights = {"blue": 0, "green": 100}
    clients["elbv2"].modify_listener(
        ListenerArn=topo.listener_arn,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": topo.target_groups[c], "Weight": w}
                        for c, w in weights.items()
                    ]
                },
            }
        ],
    )
    route53 = clients["route53"]
    records = route53.list_resource_record_sets(HostedZoneId=topo.zone_id)["ResourceRecordSets"]
    changes = []
    for record in records:
        colour = {sid: c for c, sid in topo.set_identifiers.items()}.get(
            record.get("SetIdentifier")
        )
        if colour is not None:
            changes.append(
                {"Action": "UPSERT", "ResourceRecordSet": {**record, "Weight": weights[colour]}}
            )
    if changes:
        route53.change_resource_record_sets(
            HostedZoneId=topo.zone_id, ChangeBatch={"Changes": changes}
        )
    if registry.show(V2).status != "candidate":
        registry.mark(V2, "candidate", "bench reset")
    registry.set_current(V2, "bench reset")


def timed(
    argv: list[str], env: dict[str, str], cwd: Path, listener: str, want: str
) -> tuple[float, float]:
    """Seconds from spawning `argv` until the poller sees the listener forward only to `want`,
    and the CPU seconds the command had used by then (less sensitive to a busy machine)."""
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, listener, want, "0.005"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert poller.stdout is not None and poller.stdin is not None
    line = poller.stdout.readline().strip()
    if line != "ready":
        poller.wait()
        raise SystemExit(f"the poller did not start: {line!r}")
    started = time.monotonic()
    command = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    poller.stdin.write(f"{command.pid}\n")
    poller.stdin.flush()
    seen, cpu = (float(x) for x in poller.stdout.readline().split())
    poller.wait()
    out, err = command.communicate(timeout=600)
    if command.returncode != 0:
        raise SystemExit(f"{argv[:3]} exited {command.returncode}:\n{out}\n{err}")
    return seen - started, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="repetitions of each (>= 5)")
    parser.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="the checkout whose `rollback` runs (default: this one; another for before/after)",
    )
    args = parser.parse_args()

    import boto3

    from rollback import cloud
    from rollback.healthserver import HealthServer

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-traffic-"))
    state = cloud.start(work / "cloud")
    try:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "ROLLBACK_", "PULUMI_"))
            # Both commands run from cached bytecode, as an installed tool does.
            and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(
            cloud.fake_environment(state.url),
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PYTHONPATH=str(args.code.resolve()),
        )
        os.environ.update({k: env[k] for k in env if k.startswith(("AWS_", "PULUMI_"))})
        clients = {s: boto3.client(s) for s in ("elbv2", "route53")}
        with HealthServer() as blue, HealthServer() as green:
            started = time.perf_counter()
            engine, registry = build_world(work, state.url, {"blue": blue.url, "green": green.url})
            print(f"world built in {time.perf_counter() - started:.1f}s", flush=True)
            green.status = 500  # 2.0.0 misbehaves
            topo = topology(registry)
            listener, tgs = topo.listener_arn, topo.target_groups
            rollback_argv = [
                str(ROLLBACK),
                "--store",
                str(work / "store"),
                "--stack",
                STACK,
                "to",
                "last-stable",
                "--yes",
                "--reason",
                "bench: green answers 500",
            ]
            bare_argv = [
                sys.executable,
                "-c",
                BARE.format(listener=listener, blue=tgs["blue"], green=tgs["green"]),
            ]
            times: dict[str, list[float]] = {"rollback": [], "bare": []}
            cpus: dict[str, list[float]] = {"rollback": [], "bare": []}
            for n in range(args.rounds):
                for name, argv in (("rollback", rollback_argv), ("bare", bare_argv)):
                    reset(engine, registry, clients)
                    seconds, cpu = timed(argv, env, work, listener, tgs["blue"])
                    times[name].append(seconds)
                    cpus[name].append(cpu)
                    print(
                        f"round {n + 1} {name:<8} {seconds * 1000:7.0f} ms  (cpu {cpu * 1000:4.0f} ms)",
                        flush=True,
                    )
    finally:
        cloud.stop(work / "cloud")
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        shown = ", ".join(f"{v * 1000:.0f}" for v in values)
        print(f"{name:<8} median {medians[name] * 1000:.0f} ms  ({shown} ms)")
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    print(
        f"cpu to traffic: rollback {cpu['rollback'] * 1000:.0f} ms, bare {cpu['bare'] * 1000:.0f} ms"
        f" (ratio {cpu['rollback'] / cpu['bare']:.2f}; the wall-clock ratio below is what counts)"
    )
    print(json.dumps({k: round(v, 4) for k, v in medians.items()}))
    print(f"e2e_traffic_ratio: {medians['rollback'] / medians['bare']:.2f}")


if __name__ == "__main__":
    main()
