"""The demo's world for the rollback CLI tests: v1.0.0 on blue, v2.0.0 on green, built once.

`World` runs the installed `rollback` against the session's moto server with
an environment of its own (a module-scoped fixture cannot use the
function-scoped credentials fixture), keeps the two colours' health servers,
and reads the cloud back with plain boto3. `killer_env(spec)` makes the
command SIGKILL itself right after a given journal event is in the store
(optionally after N more mutating AWS calls): a crash at an exact step
boundary, which polling from outside can only approximate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import git

from rollback.healthserver import HealthServer
from rollback.releases import Registry
from rollback.store import open_store
from tests import jsonschemas
from tests.functional.conftest import ROLLBACK, describe
from tests.functional.stackrepo import commit_all, edit, inventory, make_stack_repo

STACK = "webapp/dev"
PREFIX = "webapp-dev"
ARTIFACT_BUCKET = f"{PREFIX}-artifacts"
NOTES_BUCKET = f"{PREFIX}-release-notes"  # v2.0.0's extra resource
DB = f"{PREFIX}-db"
ZONE = "example.internal."
RECORD = f"app.{ZONE}"
PASSPHRASE = "test-passphrase"
CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE")

# v2.0.0's program change, as in rollback.demo: a bucket v1.0.0 does not have.
V2_PROGRAM_CHANGE = """

# v2.0.0: release notes published next to the artifacts.
aws.s3.Bucket(
    "release-notes",
    bucket=f"webapp-{pulumi.get_stack()}-release-notes",
    tags={"Project": pulumi.get_project(), "Stack": pulumi.get_stack(), "ManagedBy": "rollback-webapp"},
)
"""


def base_env(endpoint: str) -> dict[str, str]:
    """Fake credentials, the moto endpoint, the dev passphrase; no ROLLBACK_* variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ROLLBACK_") and k not in CLEARED and not k.startswith("AWS_")
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_ENDPOINT_URL=endpoint,
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
    )
    return env


@dataclass
class World:
    """The reference stack in a scratch repository, its store, its health servers, boto3."""

    root: Path
    endpoint: str
    blue: HealthServer
    green: HealthServer
    # False: v2.0.0's program declares the weights without ignore_changes, as a user's
    # program might; the toolkit must then put traffic back after every apply of it.
    ignore_weights: bool = True
    artifacts: dict[str, Path] = field(default_factory=dict)
    rolled_back: dict[str, Any] = field(default_factory=dict)  # the cloud after a clean rollback
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def repo_dir(self) -> Path:
        return self.root / "iac"

    @property
    def env(self) -> dict[str, str]:
        return base_env(self.endpoint)

    def aws(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,
                region_name="us-east-1",
                endpoint_url=self.endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._clients[service]

    # -- the command -------------------------------------------------------------
    def argv(self, *args: str, store: str | None = None) -> list[str]:
        return [str(ROLLBACK), "--store", store or str(self.store), "--stack", STACK, *args]

    def run(
        self,
        *args: str,
        expect: int | None = 0,
        env: Mapping[str, str | None] | None = None,
        store: str | None = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        full = self.env
        for k, v in (env or {}).items():
            if v is None:
                full.pop(k, None)
            else:
                full[k] = v
        result = subprocess.run(
            self.argv(*args, store=store),
            env=full,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if expect is not None:
            assert result.returncode == expect, describe(result, args)
        return result

    def json(self, *args: str, expect: int = 0, **kwargs: Any) -> Any:
        result = self.run("--output", "json", *args, expect=expect, **kwargs)
        try:
            document = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"not one JSON document ({exc})\n{describe(result, args)}"
            ) from exc
        jsonschemas.validate(["--output", "json", *args], document)  # docs/schemas/
        return document

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            env={**self.env, **(env or {})},
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # -- the store, read in-process ---------------------------------------------
    def registry(self) -> Registry:
        return Registry(open_store(str(self.store)), STACK)

    def runs_dir(self) -> Path:
        return self.store / "runs" / STACK

    def run_ids(self) -> list[str]:
        d = self.runs_dir()
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    def store_digest(self) -> dict[str, str]:
        """Every file of the store (but the embedded cloud's state) and its sha256."""
        return {
            str(p.relative_to(self.store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.store.rglob("*"))
            if p.is_file()
        }

    # -- the cloud, read with boto3 ----------------------------------------------
    def inventory(self) -> dict[str, Any]:
        return inventory(self.aws)

    def weights(self) -> dict[str, dict[str, int]]:
        """Listener forward weights and Route53 record weights by colour."""
        elbv2, route53 = self.aws("elbv2"), self.aws("route53")
        groups = {
            tg["TargetGroupArn"]: tg["TargetGroupName"].rsplit("-", 1)[-1]
            for tg in elbv2.describe_target_groups()["TargetGroups"]
        }
        (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
        (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        (action,) = listener["DefaultActions"]
        alb = {
            groups[tg["TargetGroupArn"]]: tg["Weight"]
            for tg in action["ForwardConfig"]["TargetGroups"]
        }
        zones = route53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"]
        dns: dict[str, int] = {}
        for zone in zones:
            if zone["Name"] != ZONE:
                continue
            sets = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
            dns.update({r["SetIdentifier"]: r["Weight"] for r in sets if r["Name"] == RECORD})
        return {"alb": alb, "dns": dns}

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.aws("s3").list_buckets()["Buckets"])

    def snapshot(self, snapshot_id: str) -> dict[str, Any] | None:
        found = self.aws("rds").describe_db_snapshots(DBInstanceIdentifier=DB)["DBSnapshots"]
        return next((s for s in found if s["DBSnapshotIdentifier"] == snapshot_id), None)

    def artifact_sha256(self, key: str) -> str | None:
        """The SHA-256 S3 holds for the object (hex), or None when there is none."""
        import base64

        s3 = self.aws("s3")
        try:
            head = s3.head_object(Bucket=ARTIFACT_BUCKET, Key=key, ChecksumMode="ENABLED")
        except s3.exceptions.ClientError:
            return None
        b64 = head.get("ChecksumSHA256")
        return base64.b64decode(b64).hex() if b64 else None

    def blue_instance(self) -> str:
        reservations = self.aws("ec2").describe_instances(
            Filters=[{"Name": "tag:Color", "Values": ["blue"]}]
        )["Reservations"]
        (instance,) = [i for r in reservations for i in r["Instances"]]
        return str(instance["InstanceId"])

    # -- set-up ------------------------------------------------------------------
    def build(self) -> None:
        """v1.0.0 on blue, recorded and marked stable; v2.0.0 on green with a new bucket, recorded."""
        repo = make_stack_repo(self.repo_dir)
        config = "Pulumi.dev.yaml"
        edit(repo, config, "webapp:blueVersion: 1.4.0", "webapp:blueVersion: 1.0.0")
        edit(repo, config, "webapp:greenVersion: 1.5.0", "webapp:greenVersion: 1.0.0")
        edit(
            repo,
            config,
            "  webapp:domain:",
            f"  webapp:healthUrlBlue: {self.blue.url}\n"
            f"  webapp:healthUrlGreen: {self.green.url}\n  webapp:domain:",
        )
        commit_all(repo, "feat: webapp 1.0.0 on blue")
        self.release(repo, "1.0.0")
        self.run("release", "mark", "1.0.0", "--stable", "--reason", "baked for a week")

        # The weights in the config stay the first deploy's: the toolkit owns traffic from
        # there on, and the cutover moves users (rollback/ownership.py).
        edit(repo, config, "webapp:liveColor: blue", "webapp:liveColor: green")
        edit(repo, config, "webapp:greenVersion: 1.0.0", "webapp:greenVersion: 2.0.0")
        program = self.repo_dir / "stacks" / "webapp" / "__main__.py"
        text = program.read_text() + V2_PROGRAM_CHANGE
        if not self.ignore_weights:
            text = "\n".join(ln for ln in text.splitlines() if "ignore_changes" not in ln) + "\n"
        program.write_text(text)
        commit_all(repo, "feat: 2.0.0 on green, with release notes")
        self.release(repo, "2.0.0")
        self.run("cutover", "green", "--steps", "100", "--bake", "0")

    def release(self, repo: git.Repo, version: str) -> None:
        artifact = self.root / f"webapp-{version}.tgz"
        artifact.write_bytes(f"webapp {version} build\n".encode() * 64)
        self.artifacts[version] = artifact
        self.run("stack", "up", "--program", str(self.repo_dir))
        self.run(
            "release", "record", version, "--artifact", str(artifact), "--repo", str(self.repo_dir)
        )

    def back_to_v2(self) -> None:
        """Undo a rollback: the stack re-applied at 2.0.0, 2.0.0 current and a candidate
        again, users cut over to green; then green starts failing."""
        self.blue.status, self.green.status = 200, 200
        self.run("stack", "reapply", "2.0.0")
        registry = self.registry()
        if registry.show("2.0.0").status != "candidate":
            registry.mark("2.0.0", "candidate", "test: the deploy is back")
        registry.set_current("2.0.0", "test: the deploy is back")
        self.run("cutover", "green", "--steps", "100", "--bake", "0")
        self.green.status = 500
        assert self.weights() == {
            "alb": {"blue": 0, "green": 100},
            "dns": {"blue": 0, "green": 100},
        }
        assert NOTES_BUCKET in self.buckets()


# A test-only sitecustomize: the command SIGKILLs itself at an exact point of its run.
_KILLER = '''\
"""Test-only: SIGKILL (or $ROLLBACK_TEST_KILL_SIGNAL) this process right after the journal
event $ROLLBACK_TEST_KILL_AT.

The value is `<step>:<state>` (e.g. `traffic:verified`) or a run event
(`traffic-restored`), optionally `+N`: die after N more mutating AWS calls;
or `locked`: die right after taking the stack lock, before run.json;
or `unlocked`: die right after releasing the stack lock a run held.
"""
import os

_AT = os.environ.get("ROLLBACK_TEST_KILL_AT")
if _AT:
    import signal

    import rollback.journal as _journal

    _spec, _, _calls = _AT.partition("+")
    _left = [int(_calls or 0)]
    _armed = [False]

    _sent = []

    def _die():  # ROLLBACK_TEST_KILL_SIGNAL=SIGINT: a Ctrl-C there instead (sent once)
        if not _sent:
            _sent.append(True)
            os.kill(os.getpid(), getattr(signal, os.environ.get("ROLLBACK_TEST_KILL_SIGNAL", "SIGKILL")))

    if _spec == "locked":  # between taking the stack lock and writing run.json
        import rollback.store.lock as _lock

        _acquire = _lock.acquire_lock

        def _acquire_then_die(*args, **kwargs):
            _acquire(*args, **kwargs)
            _die()

        _lock.acquire_lock = _acquire_then_die

    if _spec == "unlocked":  # between releasing the run's lock and whatever follows it
        import rollback.store.lock as _lock

        _release = _lock.HeldLock.release

        def _release_then_die(self):
            _release(self)
            _die()

        _lock.HeldLock.release = _release_then_die

    # Records reach the store in `write_staged` (one by one, or several staged before a change).
    _write = _journal.Journal.write_staged

    def _write_then_die(self):
        import json as _json

        written = [_json.loads(body) for _, body in self._staged]
        _write(self)
        for doc in written:
            event = doc.get("type")
            if (f"{doc.get('step')}:{doc.get('state')}" if event == "step" else event) == _spec:
                if _left[0] == 0:
                    _die()
                _armed[0] = True

    _journal.Journal.write_staged = _write_then_die

    if _left[0]:
        import botocore.client

        _call = botocore.client.BaseClient._make_api_call

        def _call_then_die(self, operation, params):
            result = _call(self, operation, params)
            if _armed[0] and not operation.startswith(("Describe", "List", "Get", "Head")):
                _left[0] -= 1
                if _left[0] <= 0:
                    _die()
            return result

        botocore.client.BaseClient._make_api_call = _call_then_die
'''


@contextlib.contextmanager
def built_world(
    endpoint: str, directory: Path, *, green_failing: bool = False, ignore_weights: bool = True
) -> Iterator[World]:
    """The world built on a freshly reset moto server, its colours answering `ok <colour>`.

    `green_failing`: green's health answers 500 once built (2.0.0 is hurting, blue
    still runs 1.0.0). `ignore_weights`: see World.
    """
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    with HealthServer() as blue, HealthServer() as green:
        blue.body, green.body = b"ok blue", b"ok green"
        world = World(directory, endpoint, blue, green)
        world.ignore_weights = ignore_weights
        world.build()
        if green_failing:
            green.status = 500
        yield world


def killer_env(directory: Path, at: str, sent: str = "SIGKILL") -> dict[str, str]:
    """Environment that makes the command send itself `sent` at `at` (see _KILLER)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_KILLER, encoding="utf-8")
    # Keep the caller's PYTHONPATH after ours: a worktree's code must stay the code under test.
    path = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "ROLLBACK_TEST_KILL_AT": at, "ROLLBACK_TEST_KILL_SIGNAL": sent}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `probe` every 20 ms until it returns something truthy."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")


def journal_has(world: World, run_id: str, step: str, state: str) -> bool:
    events = world.runs_dir() / run_id / "events"
    for path in sorted(events.glob("*.json")) if events.exists() else []:
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue  # being written
        if doc.get("step") == step and doc.get("state") == state:
            return True
    return False
