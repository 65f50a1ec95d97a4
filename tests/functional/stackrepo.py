"""Scratch IaC repositories for the stack tests: a git copy of the reference project.

`make_stack_repo(path)` copies Pulumi.yaml, Pulumi.dev.yaml and stacks/webapp
from this checkout into `path`, runs `git init` and commits them, so that a
test can change the program, commit and record releases without touching the
real repository. `edit(repo, path, old, new)` replaces text that must be
there (a test whose edit silently missed would prove nothing).

`inventory(clients)` is what the cloud holds, read with plain boto3, for
before/after comparisons; `call_log_env(dir)` makes the installed command
record every AWS operation it calls, to count mutating ones.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
PROGRAMS = PROJECT_ROOT / "tests" / "programs"
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Head")

# Python writes __pycache__ beside the program it runs; `release record` refuses a dirty tree.
_GITIGNORE = "__pycache__/\n*.pyc\n"


def make_stack_repo(path: Path, message: str = "the reference webapp stack") -> git.Repo:
    """A git repository at `path` holding a committed copy of the reference project."""
    path.mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / "Pulumi.yaml", path / "Pulumi.yaml")
    shutil.copy2(PROJECT_ROOT / "Pulumi.dev.yaml", path / "Pulumi.dev.yaml")
    shutil.copytree(
        PROJECT_ROOT / "stacks" / "webapp",
        path / "stacks" / "webapp",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return init_repo(path, message)


def init_repo(path: Path, message: str) -> git.Repo:
    """`git init` the files at `path` (Python's byte code ignored) and commit them."""
    (path / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Stack Tests")
        config.set_value("user", "email", "stack-tests@example.invalid")
        config.set_value("commit", "gpgsign", "false")
        config.set_value("tag", "gpgsign", "false")
    repo.git.add("--all")
    repo.index.commit(message)
    return repo


def edit(repo: git.Repo, relative: str, old: str, new: str) -> None:
    """Replace `old` (which must occur exactly once) by `new` in a file of the repository."""
    path = Path(str(repo.working_dir)) / relative
    text = path.read_text(encoding="utf-8")
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"{relative} holds {count} copies of {old!r}; the edit needs one")
    path.write_text(text.replace(old, new), encoding="utf-8")


def commit_all(repo: git.Repo, message: str) -> str:
    """Commit every change in the work tree; return the commit's sha."""
    repo.git.add("--all")
    return str(repo.index.commit(message).hexsha)


def add_program(repo: git.Repo, name: str, *, extra: str = "") -> None:
    """Append the statements of tests/programs/<name>/__main__.py to the webapp program."""
    source = (PROGRAMS / name / "__main__.py").read_text(encoding="utf-8")
    path = Path(str(repo.working_dir)) / "stacks" / "webapp" / "__main__.py"
    body = "\n".join(line for line in source.splitlines() if not line.startswith('"""'))
    path.write_text(path.read_text(encoding="utf-8") + "\n" + body + "\n" + extra, "utf-8")


def inventory(client: Callable[[str], Any]) -> dict[str, Any]:
    """What the cloud holds, read back with boto3: names and the properties the tests change."""
    s3, elbv2, rds = client("s3"), client("elbv2"), client("rds")
    route53, cloudwatch, ec2 = client("route53"), client("cloudwatch"), client("ec2")
    buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    zones = route53.list_hosted_zones()["HostedZones"]
    records = {
        zone["Name"]: sorted(
            (r["Name"], r["Type"], r.get("SetIdentifier", ""), r.get("Weight", -1))
            for r in route53.list_resource_record_sets(HostedZoneId=zone["Id"])[
                "ResourceRecordSets"
            ]
        )
        for zone in zones
    }
    listeners = {}
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])[
            "Listeners"
        ]:
            listeners[listener["ListenerArn"]] = listener["DefaultActions"]
    instances = sorted(
        (
            i["InstanceId"],
            i["State"]["Name"],
            tuple(sorted((t["Key"], t["Value"]) for t in i.get("Tags", []))),
        )
        for reservation in ec2.describe_instances()["Reservations"]
        for i in reservation["Instances"]
    )
    return {
        "buckets": buckets,
        "versioning": {b: s3.get_bucket_versioning(Bucket=b).get("Status") for b in buckets},
        "load_balancers": sorted(
            lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]
        ),
        "listeners": listeners,
        "target_groups": sorted(
            tg["TargetGroupName"] for tg in elbv2.describe_target_groups()["TargetGroups"]
        ),
        "db_instances": sorted(
            (d["DBInstanceIdentifier"], d["DBInstanceStatus"])
            for d in rds.describe_db_instances()["DBInstances"]
        ),
        "zones": sorted(zone["Name"] for zone in zones),
        "records": records,
        "alarms": sorted(a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]),
        "instances": instances,
    }


_SITECUSTOMIZE = '''\
"""Test-only: append "service operation" for every AWS call to $ROLLBACK_TEST_CALL_LOG."""
import os

if os.environ.get("ROLLBACK_TEST_CALL_LOG"):
    import botocore.client

    _LOG = os.environ["ROLLBACK_TEST_CALL_LOG"]
    _original = botocore.client.BaseClient._make_api_call

    def _logged(self, operation_name, api_params):
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{self.meta.service_model.service_name} {operation_name}\\n")
        return _original(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = _logged
'''


def call_log_env(directory: Path) -> tuple[dict[str, str], Path]:
    """Environment for run_cli that logs each AWS operation the command calls, and the log's path.

    The command runs unchanged; a sitecustomize module only observes its calls.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    log = directory / "calls.log"
    # Keep the caller's PYTHONPATH after ours: a worktree's code stays the code under test.
    path = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "ROLLBACK_TEST_CALL_LOG": str(log)}, log


def mutating_calls(log: Path) -> list[str]:
    """The logged operations that are not reads (Describe*, List*, Get*, Head*)."""
    if not log.exists():
        return []
    calls = [line.split() for line in log.read_text(encoding="utf-8").splitlines() if line]
    return [f"{service} {op}" for service, op in calls if not op.startswith(READ_ONLY_PREFIXES)]
