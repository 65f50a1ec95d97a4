"""`rollback stack ...` and `rollback release record` end to end (issue 3): the installed
command, the embedded engine (chosen by `auto` because AWS_ENDPOINT_URL is the moto
server) and the cloud read back with plain boto3.

A scratch git repository holds a copy of the reference project (see stackrepo.py).
v1 is brought up and recorded; v2 adds a bucket, flips the weights, changes a tag
and removes the green alarm and the bucket's versioning, and is recorded; then
`stack reapply 1.0.0` must put back exactly v1, `stack verify` must pass, and
drift made behind the toolkit's back must be reported by name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import git
import pytest

from tests.functional.conftest import RunCli, describe, parse_json
from tests.functional.stackrepo import (
    add_program,
    call_log_env,
    commit_all,
    edit,
    inventory,
    make_stack_repo,
    mutating_calls,
)

STACK = "dev"
PREFIX = f"webapp-{STACK}"
EXTRA_BUCKET = f"{PREFIX}-extra"
ARTIFACT_BUCKET = f"{PREFIX}-artifacts"
DB = f"{PREFIX}-db"
DEV_DB_PASSWORD = "dev-only-Passw0rd"  # Pulumi.dev.yaml's dbPassword, passphrase test-passphrase
ZONE = "example.internal."
RECORD = f"app.{ZONE}"


@pytest.fixture
def aws(moto_endpoint: str) -> Callable[[str], Any]:
    """Plain boto3 clients against the moto server (not the toolkit's wrappers)."""
    session = boto3.Session(region_name="us-east-1")
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = session.client(service, endpoint_url=moto_endpoint)
        return made[service]

    return client


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "app.tgz"
    path.write_bytes(b"application build\n" * 100)
    return path


class Cli:
    """run_cli with the store and stack fixed, and the assertion messages filled in."""

    def __init__(self, run_cli: RunCli, store: Path) -> None:
        self.run_cli = run_cli
        self.base = ("--store", str(store), "--stack", f"webapp/{STACK}")

    def __call__(self, *args: str, expect: int = 0, **kwargs: Any) -> Any:
        result = self.run_cli(*self.base, *args, **kwargs)
        assert result.returncode == expect, describe(result, args)
        return result

    def json(self, *args: str, expect: int = 0, **kwargs: Any) -> Any:
        return parse_json(self("--output", "json", *args, expect=expect, **kwargs))


def weights(aws: Callable[[str], Any]) -> dict[str, Any]:
    """Listener forward weights and Route53 record weights, by colour, as the cloud says."""
    elbv2, route53 = aws("elbv2"), aws("route53")
    groups = {
        tg["TargetGroupArn"]: tg["TargetGroupName"].rsplit("-", 1)[-1]
        for tg in elbv2.describe_target_groups()["TargetGroups"]
    }
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    (action,) = listener["DefaultActions"]
    alb = {
        groups[tg["TargetGroupArn"]]: tg["Weight"] for tg in action["ForwardConfig"]["TargetGroups"]
    }
    (zone,) = route53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"]
    sets = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    dns = {r["SetIdentifier"]: r["Weight"] for r in sets if r["Name"] == RECORD}
    return {"alb": alb, "dns": dns}


def instance_tags(aws: Callable[[str], Any], color: str) -> dict[str, str]:
    reservations = aws("ec2").describe_instances(
        Filters=[
            {"Name": "tag:Color", "Values": [color]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    (instance,) = [i for r in reservations for i in r["Instances"]]
    return {t["Key"]: t["Value"] for t in instance["Tags"]}


def alarms(aws: Callable[[str], Any]) -> list[str]:
    return sorted(a["AlarmName"] for a in aws("cloudwatch").describe_alarms()["MetricAlarms"])


def buckets(aws: Callable[[str], Any]) -> list[str]:
    return sorted(b["Name"] for b in aws("s3").list_buckets()["Buckets"])


def versioning(aws: Callable[[str], Any]) -> str | None:
    status: str | None = aws("s3").get_bucket_versioning(Bucket=ARTIFACT_BUCKET).get("Status")
    return status


def make_v2(repo: git.Repo) -> None:
    """Add a bucket, flip the weights (an old habit: they no longer move users) and the live
    colour, change a tag, remove two resources."""
    program = "stacks/webapp/__main__.py"
    edit(repo, "Pulumi.dev.yaml", "webapp:liveColor: blue", "webapp:liveColor: green")
    edit(repo, "Pulumi.dev.yaml", 'webapp:blueWeight: "100"', 'webapp:blueWeight: "0"')
    edit(repo, "Pulumi.dev.yaml", 'webapp:greenWeight: "0"', 'webapp:greenWeight: "100"')
    # The AppVersion tag of the green instance.
    edit(repo, "Pulumi.dev.yaml", "webapp:greenVersion: 1.5.0", "webapp:greenVersion: 1.6.0")
    edit(
        repo,
        program,
        '    aws.s3.BucketVersioning(\n        "artifacts-versioning",',
        f'    aws.s3.Bucket("extra", bucket="{EXTRA_BUCKET}", tags=tags)\n'
        "    if False:  # v2 no longer versions the artifact bucket\n"
        '     aws.s3.BucketVersioning(\n        "artifacts-versioning",',
    )
    edit(
        repo,
        program,
        "    for color in COLORS:\n        alarms[color] = aws.cloudwatch.MetricAlarm(",
        '    for color in ("blue",):  # v2 drops the green alarm\n'
        "        alarms[color] = aws.cloudwatch.MetricAlarm(",
    )
    edit(
        repo,
        program,
        '"alarms": {color: [alarms[color].name] for color in COLORS},',
        '"alarms": {color: [alarms[c].name for c in alarms if c == color] for color in COLORS},',
    )
    commit_all(repo, "v2: extra bucket, green live, no green alarm, no versioning")


def test_up_record_change_reapply_verify_drift_and_tamper(
    run_cli: RunCli, aws: Callable[[str], Any], artifact: Path, tmp_path: Path
) -> None:
    repo = make_stack_repo(tmp_path / "iac")
    root = str(repo.working_dir)
    store = tmp_path / "store"
    cli = Cli(run_cli, store)

    # v1 from an empty cloud.
    up = cli.json("stack", "up", "--program", root)
    assert up["engine"] == "embedded" and up["counts"].get("create") == up["resources"], up
    v1_cloud = inventory(aws)
    assert weights(aws) == {"alb": {"blue": 100, "green": 0}, "dns": {"blue": 100, "green": 0}}
    assert instance_tags(aws, "green")["AppVersion"] == "1.5.0"
    assert alarms(aws) == [f"{PREFIX}-blue-5xx", f"{PREFIX}-green-5xx"]
    assert versioning(aws) == "Enabled" and EXTRA_BUCKET not in buckets(aws)

    # The same program again: nothing to do, and not one mutating AWS call.
    env, log = call_log_env(tmp_path / "calls")
    again = cli("stack", "up", "--program", root, env=env)
    assert again.stdout.strip() == (
        f"stack {STACK} applied with the embedded engine: {up['resources']} resources (no changes)"
    ), describe(again)
    assert log.exists() and mutating_calls(log) == [], mutating_calls(log)
    assert inventory(aws) == v1_cloud

    cli("release", "record", "1.0.0", "--artifact", str(artifact), "--repo", root)
    v1 = cli.json("release", "show", "1.0.0")
    for blob in ("checkpoint", "config", "topology"):
        assert len(v1[blob]["sha256"]) == 64, v1
    assert v1["color"] == "blue" and v1["db_snapshot_id"], v1
    snapshots = aws("rds").describe_db_snapshots(DBSnapshotIdentifier=v1["db_snapshot_id"])
    assert snapshots["DBSnapshots"][0]["DBInstanceIdentifier"] == DB
    assert snapshots["DBSnapshots"][0]["Status"] == "available"
    # The checkpoint recorded with 1.0.0, and not one plaintext config secret in the store.
    exported = parse_json(cli("stack", "export", "--version", "1.0.0"))
    assert exported["version"] == 3 and exported["deployment"]["resources"], exported.keys()
    leaks = [
        p for p in store.rglob("*") if p.is_file() and DEV_DB_PASSWORD.encode() in p.read_bytes()
    ]
    assert leaks == [], leaks

    # v2: the program and its config change, committed, applied, recorded.
    make_v2(repo)
    up2 = cli.json("stack", "up", "--program", root)
    ops = {(c["urn"].rsplit("::", 1)[-1], c["op"]) for c in up2["changes"]}
    assert {
        ("extra", "create"),
        ("web-green-0", "update"),
        ("alarm-green-5xx", "delete"),
        ("artifacts-versioning", "delete"),
    } <= ops, up2["changes"]
    # The weights are the toolkit's after the first deploy: the program ignores their
    # changes (ignore_changes), so the config's flip moves nobody and nothing warns.
    assert not {("http", "update"), ("app-blue", "update"), ("app-green", "update")} & ops, ops
    assert up2["warnings"] == [] and not up2["traffic"]["restored"], up2["traffic"]
    assert weights(aws) == {"alb": {"blue": 100, "green": 0}, "dns": {"blue": 100, "green": 0}}
    assert instance_tags(aws, "green")["AppVersion"] == "1.6.0"
    assert alarms(aws) == [f"{PREFIX}-blue-5xx"]
    assert EXTRA_BUCKET in buckets(aws) and versioning(aws) != "Enabled"
    cli("release", "record", "2.0.0", "--artifact", str(artifact), "--repo", root)
    v2 = cli.json("release", "show", "2.0.0")
    assert v2["color"] == "green" and v2["db_snapshot_id"] != v1["db_snapshot_id"], v2

    # Back to v1: exactly v1's resource set and properties, read from the cloud.
    reapplied = cli.json("stack", "reapply", "1.0.0")
    assert reapplied["ok"] and reapplied["differences"] == [], reapplied
    assert weights(aws) == {"alb": {"blue": 100, "green": 0}, "dns": {"blue": 100, "green": 0}}
    assert instance_tags(aws, "green")["AppVersion"] == "1.5.0"
    assert alarms(aws) == [f"{PREFIX}-blue-5xx", f"{PREFIX}-green-5xx"]
    assert versioning(aws) == "Enabled" and EXTRA_BUCKET not in buckets(aws)
    assert aws("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"]
    assert repo.git.worktree("list").count("\n") == 0, "the reapply worktree was left behind"
    checked = cli.json("stack", "verify", "1.0.0")
    assert checked["ok"] and checked["drift"] == [] and checked["checked"] >= 20, checked

    # Drift behind the toolkit's back: the listener sends everything to green, a tag changes.
    before_drift = weights(aws)
    elbv2 = aws("elbv2")
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    elbv2.modify_listener(
        ListenerArn=listener["ListenerArn"],
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": g["TargetGroupArn"], "Weight": 100 - g["Weight"]}
                        for g in groups
                    ]
                },
            }
        ],
    )
    assert weights(aws)["alb"] != before_drift["alb"]
    aws("s3").put_bucket_tagging(
        Bucket=ARTIFACT_BUCKET,
        Tagging={
            "TagSet": [
                {"Key": "Project", "Value": "webapp"},
                {"Key": "Stack", "Value": STACK},
                {"Key": "ManagedBy", "Value": "someone-else"},
            ]
        },
    )
    text = cli("stack", "verify", expect=1)
    assert "drifted properties" in text.stdout, describe(text)
    assert "http defaultActions" in text.stdout and "artifacts tags" in text.stdout, text.stdout
    assert "someone-else" in text.stdout
    drift = cli.json("stack", "verify", "1.0.0", expect=1)
    found = {(d["urn"].rsplit("::", 1)[-1], d["property"]) for d in drift["drift"]}
    assert found == {("http", "defaultActions"), ("artifacts", "tags")}, drift
    assert not drift["ok"]

    # A tampered checkpoint blob: reapply and verify refuse (exit 4) and change nothing.
    blob = store / "blobs" / "sha256" / v1["checkpoint"]["sha256"][:2] / v1["checkpoint"]["sha256"]
    os.chmod(blob, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    cloud = inventory(aws)
    state = (store / "stacks" / "webapp" / STACK / "checkpoint.json").read_bytes()
    for args in (("stack", "reapply", "1.0.0"), ("stack", "verify", "1.0.0")):
        refused = cli(*args, expect=4)
        assert refused.stdout == "" and refused.stderr.count("\n") == 1, describe(refused)
        assert v1["checkpoint"]["sha256"] in refused.stderr, describe(refused)
    assert inventory(aws) == cloud
    assert (store / "stacks" / "webapp" / STACK / "checkpoint.json").read_bytes() == state


def one_sentence(result: Any) -> str:
    """The error the command printed: one line on stderr, nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    assert result.stdout == "" and len(lines) == 1, describe(result)
    assert lines[0].startswith("error: "), describe(result)
    return str(lines[0])


def test_bad_programs_and_config_change_nothing(
    run_cli: RunCli, aws: Callable[[str], Any], tmp_path: Path
) -> None:
    repo = make_stack_repo(tmp_path / "iac")
    root = str(repo.working_dir)
    store = tmp_path / "store"
    cli = Cli(run_cli, store)
    cli("stack", "up", "--program", root)
    cloud = inventory(aws)
    state_file = store / "stacks" / "webapp" / STACK / "checkpoint.json"
    state = state_file.read_bytes()
    program = Path(root) / "stacks" / "webapp" / "__main__.py"
    original = program.read_text(encoding="utf-8")

    # A type the embedded engine cannot apply: refused before the bucket beside it is made.
    add_program(repo, "queue")
    message = one_sentence(cli("stack", "up", "--program", root, expect=1))
    assert "aws:sfn/activity:Activity" in message and "nothing was changed" in message, message

    # A program that raises half-way through declaring its resources.
    program.write_text(original, encoding="utf-8")
    add_program(repo, "failing")
    message = one_sentence(cli("stack", "up", "--program", root, expect=1))
    assert "the blue weight must be between 0 and 100" in message, message

    # The secret passphrase is missing: the config's dbPassword cannot be decrypted.
    program.write_text(original, encoding="utf-8")
    unset = {"PULUMI_CONFIG_PASSPHRASE": None}
    message = one_sentence(cli("stack", "up", "--program", root, expect=2, env=unset))
    assert "PULUMI_CONFIG_PASSPHRASE" in message, message
    message = one_sentence(cli("stack", "verify", expect=2, env=unset))
    assert "PULUMI_CONFIG_PASSPHRASE" in message, message

    # A directory that is not a Pulumi project, a release never recorded.
    message = one_sentence(cli("stack", "up", "--program", str(tmp_path), expect=2))
    assert "Pulumi.yaml" in message, message
    for args in (("stack", "reapply", "9.9.9"), ("stack", "verify", "9.9.9")):
        message = one_sentence(cli(*args, expect=2))
        assert "9.9.9" in message, message

    assert inventory(aws) == cloud
    assert state_file.read_bytes() == state
    assert "failing-program-bucket" not in cloud["buckets"]
    assert not any("queue" in b for b in cloud["buckets"])
    # The stack itself still matches what it recorded.
    assert cli.json("stack", "verify")["ok"]
