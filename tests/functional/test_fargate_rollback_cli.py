"""`rollback to` on the second reference stack (stacks/fargate), end to end with real rows.

ECS Fargate blue/green behind a public ALB that routes by a listener rule, and
an Aurora PostgreSQL cluster whose database is a real PostgreSQL database
(`rollback.rdsdata` on the session's moto server, with the embedded cloud's
RDS corrections). Through the installed command: the stack comes up at 1.0.0,
the application writes its rows, 1.0.0 is recorded (with a DB cluster
snapshot) and marked stable; 2.0.0 goes out on green with a schema change and
more rows, is recorded and cut over; green fails and `rollback to 1.0.0`
runs. ECS does not run tasks on the embedded cloud, so the test registers
each colour's task addresses in its target group, as ECS would.

What is checked is what a user would ask after the command, read from the
cloud and from PostgreSQL: who is served (the listener rule's weights), by
which version (the target groups' AppVersion), at which database endpoint,
with which rows, and whether the rows the restore discarded are still kept.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import git
import psycopg
import pytest

from rollback import postgres
from rollback.healthserver import HealthServer
from rollback.steps.db_snapshot import pre_rollback_snapshot_id
from tests import jsonschemas
from tests.functional.conftest import ROLLBACK, describe
from tests.functional.rollbackworld import base_env
from tests.functional.stackrepo import PROJECT_ROOT, commit_all, edit, init_repo

pytestmark = pytest.mark.postgres

STACK = "fargate/dev"
CLUSTER = "fargate-dev-db"
USER = "app"
PASSWORD = "fargate-dev-password"  # Pulumi.dev.yaml's fargate:dbPassword, decrypted
CONFIG = "Pulumi.dev.yaml"


@dataclass
class Fargate:
    """The fargate project in a scratch repository, its store, boto3 and PostgreSQL."""

    root: Path
    endpoint: str
    pg: postgres.Cluster

    @property
    def repo_dir(self) -> Path:
        return self.root / "iac"

    def aws(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1", endpoint_url=self.endpoint)

    def run(
        self, *args: str, expect: int = 0, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(ROLLBACK), "--store", str(self.root / "store"), "--stack", STACK, *args]
        result = subprocess.run(
            argv,
            env={**base_env(self.endpoint), **(env or {})},
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == expect, describe(result, args)
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        document = json.loads(self.run("--output", "json", *args, **kwargs).stdout)
        jsonschemas.validate(["--output", "json", *args], document)  # docs/schemas/
        return document

    def database_url(self) -> str:
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.pg.port}/{CLUSTER}"

    def sql(self, statement: str, database: str = CLUSTER) -> Any:
        with psycopg.connect(
            host="127.0.0.1",
            port=self.pg.port,
            user=USER,
            password=PASSWORD,
            dbname=database,
            autocommit=True,
        ) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    def orders(self, database: str = CLUSTER) -> list[str]:
        return [r[0] for r in self.sql("SELECT item FROM orders ORDER BY id", database)]

    def deploy(self) -> None:
        """`stack up`, then the colours' tasks registered in their target groups."""
        self.run("stack", "up", "--program", str(self.repo_dir))
        self.register_tasks()

    def record(self, version: str, schema: str) -> None:
        """`release record`, which takes the release's DB cluster snapshot."""
        artifact = self.root / f"app-{version}.tgz"
        artifact.write_bytes(f"fargate app {version}\n".encode() * 32)
        self.run(
            "release",
            "record",
            version,
            "--artifact",
            str(artifact),
            "--repo",
            str(self.repo_dir),
            "--schema-revision",
            schema,
        )

    def register_tasks(self) -> None:
        """What ECS does for a service behind a target group: its tasks' IPs become targets."""
        elbv2 = self.aws("elbv2")
        for index, group in enumerate(elbv2.describe_target_groups()["TargetGroups"]):
            elbv2.register_targets(
                TargetGroupArn=group["TargetGroupArn"],
                Targets=[{"Id": f"10.30.0.{10 + index}", "Port": 80}],
            )

    def rule_weights(self) -> dict[str, int]:
        """The listener rule's forward weights by colour, read from the load balancer."""
        elbv2 = self.aws("elbv2")
        colour = {
            g["TargetGroupArn"]: g["TargetGroupName"].rsplit("-", 1)[-1]
            for g in elbv2.describe_target_groups()["TargetGroups"]
        }
        (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
        (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        (rule,) = [
            r
            for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
            if not r["IsDefault"]
        ]
        (forward,) = rule["Actions"]
        return {
            colour[g["TargetGroupArn"]]: g["Weight"]
            for g in forward["ForwardConfig"]["TargetGroups"]
        }

    def served_versions(self) -> dict[str, str]:
        elbv2 = self.aws("elbv2")
        found = {}
        for group in elbv2.describe_target_groups()["TargetGroups"]:
            tags = elbv2.describe_tags(ResourceArns=[group["TargetGroupArn"]])["TagDescriptions"]
            values = {t["Key"]: t["Value"] for t in tags[0]["Tags"]}
            found[values["Color"]] = values["AppVersion"]
        return found

    def cluster(self, cluster_id: str = CLUSTER) -> dict[str, Any]:
        (found,) = self.aws("rds").describe_db_clusters(DBClusterIdentifier=cluster_id)[
            "DBClusters"
        ]
        return dict(found)


def make_fargate_repo(path: Path, blue: HealthServer, green: HealthServer) -> git.Repo:
    """A git repository holding a copy of stacks/fargate as its project, at 1.0.0 on blue."""
    shutil.copytree(
        PROJECT_ROOT / "stacks" / "fargate",
        path,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    repo = init_repo(path, "the reference fargate stack")
    edit(repo, CONFIG, "fargate:blueVersion: 1.4.0", "fargate:blueVersion: 1.0.0")
    edit(repo, CONFIG, "fargate:greenVersion: 1.5.0", "fargate:greenVersion: 1.0.0")
    edit(
        repo,
        CONFIG,
        "  fargate:domain:",
        f"  fargate:healthUrlBlue: {blue.url}\n"
        f"  fargate:healthUrlGreen: {green.url}\n  fargate:domain:",
    )
    commit_all(repo, "feat: fargate app 1.0.0 on blue")
    return repo


@pytest.fixture
def fargate(
    moto_endpoint: str,
    pg_backing: Any,
    pg_cluster: postgres.Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Fargate, HealthServer, HealthServer]]:
    """The session's moto server as `rollback cloud start` serves it: with AWS-managed IAM
    policies (the execution role attaches one), loaded when IAM is next built."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    reset = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    with HealthServer() as blue, HealthServer() as green:
        blue.body, green.body = b"ok blue", b"ok green"
        yield Fargate(tmp_path, moto_endpoint, pg_cluster), blue, green


def two_releases(world: Fargate, repo: git.Repo, schema2: str) -> None:
    """1.0.0 on blue with its rows, recorded (with its DB cluster snapshot) and stable; 2.0.0
    on green with more rows (and schema `schema2`), recorded, users cut over to green."""
    world.deploy()
    world.sql("CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    world.sql("INSERT INTO orders (item) SELECT 'v1-' || g FROM generate_series(1, 4) g")
    world.record("1.0.0", schema="r1")
    release1 = world.json("release", "show", "1.0.0")
    (recorded,) = world.aws("rds").describe_db_cluster_snapshots(
        DBClusterSnapshotIdentifier=release1["db_snapshot_id"]
    )["DBClusterSnapshots"]
    assert recorded["DBClusterIdentifier"] == CLUSTER and recorded["Status"] == "available"
    world.run("release", "mark", "1.0.0", "--stable", "--reason", "baked")

    edit(repo, CONFIG, "fargate:greenVersion: 1.0.0", "fargate:greenVersion: 2.0.0")
    edit(repo, CONFIG, "fargate:liveColor: blue", "fargate:liveColor: green")
    commit_all(repo, "feat: 2.0.0 on green")
    world.deploy()
    if schema2 != "r1":
        world.sql("ALTER TABLE orders ADD COLUMN note text")
    world.sql("INSERT INTO orders (item) SELECT 'v2-' || g FROM generate_series(1, 3) g")
    world.record("2.0.0", schema=schema2)
    world.run("cutover", "green", "--steps", "100", "--bake", "0")
    assert world.rule_weights() == {"blue": 0, "green": 100}
    assert world.served_versions() == {"blue": "1.0.0", "green": "2.0.0"}


def test_rollback_of_the_fargate_stack_restores_the_aurora_rows_behind_the_same_endpoint(
    fargate: tuple[Fargate, HealthServer, HealthServer],
) -> None:
    world, blue, green = fargate
    repo = make_fargate_repo(world.repo_dir, blue, green)

    # 1.0.0 with its rows; 2.0.0 adds a column and rows, users on it.
    two_releases(world, repo, schema2="r2")
    endpoint = world.cluster()["Endpoint"]
    writer_before = [m["DBInstanceIdentifier"] for m in world.cluster()["DBClusterMembers"]]

    # 2.0.0 fails; roll back, counting rows through the database URL.
    green.status = 500
    done = world.json(
        "to",
        "1.0.0",
        "--yes",
        "--accept-data-loss",
        env={"ROLLBACK_DATABASE_URL": world.database_url()},
    )

    result = done["result"]
    assert done["ok"] and result["result"] == "succeeded", done
    steps = {s["name"]: s for s in result["steps"]}
    assert {"db-snapshot", "db-restore", "traffic"} <= set(steps), list(steps)
    assert all(s["state"] == "verified" for s in result["steps"]), result["steps"]
    # Users are served 1.0.0: the listener rule sends everyone to blue, which runs 1.0.0.
    assert world.rule_weights() == {"blue": 100, "green": 0}
    assert world.served_versions()["blue"] == "1.0.0"
    outcome = result["outcome"]
    assert outcome["ok"] and outcome["served"] == {"blue": "1.0.0"}, outcome
    # The application's endpoint is unchanged, and behind it are 1.0.0's rows.
    assert world.cluster()["Endpoint"] == endpoint
    assert world.cluster()["Status"] == "available"
    assert world.orders() == [f"v1-{i}" for i in range(1, 5)]
    assert world.sql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' "
        "AND column_name = 'note'"
    ) == [(0,)]
    restored = steps["db-restore"]
    proof = restored["evidence"][-1]
    assert proof["ok"] and proof["observed"]["tables"] == {"orders": 4}, restored
    # Nothing is lost: the cluster set aside (with its writer) and the pre-restore
    # cluster snapshot both hold 2.0.0's rows.
    aside_cluster = next(
        c
        for c in world.aws("rds").describe_db_clusters()["DBClusters"]
        if c["DBClusterIdentifier"].startswith(f"{CLUSTER}-pre-")
    )
    aside = aside_cluster["DBClusterIdentifier"]
    assert [m["DBInstanceIdentifier"] for m in aside_cluster["DBClusterMembers"]] == [f"{aside}-1"]
    # The stack's instance name is again the writer of the cluster the stack names.
    assert [m["DBInstanceIdentifier"] for m in world.cluster()["DBClusterMembers"]] == writer_before
    assert len(world.orders(aside)) == 7
    pre = pre_rollback_snapshot_id(CLUSTER, result["run_id"])
    (snapshot,) = world.aws("rds").describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=pre)[
        "DBClusterSnapshots"
    ]
    assert snapshot["Status"] == "available" and snapshot["DBClusterIdentifier"] == CLUSTER
    world.aws("rds").restore_db_cluster_from_snapshot(
        DBClusterIdentifier="inspect", SnapshotIdentifier=pre, Engine="aurora-postgresql"
    )
    assert world.orders("inspect")[-3:] == ["v2-1", "v2-2", "v2-3"]
    # The stack is its recorded state again, read back resource by resource: the cluster
    # and its instance are the stack's own names (the toolkit's rollback: tags aside).
    world.run("stack", "verify")

    # The report is written, and the database password appears nowhere.
    report = world.run("report", result["run_id"])
    assert "## Outcome" in report.stdout and "db-restore" in report.stdout, report.stdout
    stored = world.root / "store" / "runs" / STACK / result["run_id"] / "report.md"
    assert stored.is_file()
    for text in (json.dumps(done), report.stdout, report.stderr, stored.read_text()):
        assert PASSWORD not in text


def test_without_a_schema_change_users_move_back_first_on_the_listener_rule(
    fargate: tuple[Fargate, HealthServer, HealthServer],
) -> None:
    """Blue still runs 1.0.0 and the schema is the same: the plan moves users first (the
    listener rule with the default action, then DNS), checked routable by preflight, and
    the data stays as it is (a snapshot, no restore)."""
    world, blue, green = fargate
    repo = make_fargate_repo(world.repo_dir, blue, green)
    two_releases(world, repo, schema2="r1")
    endpoint = world.cluster()["Endpoint"]
    clusters = sorted(
        c["DBClusterIdentifier"] for c in world.aws("rds").describe_db_clusters()["DBClusters"]
    )

    green.status = 500
    done = world.json("to", "1.0.0", "--yes")

    result = done["result"]
    assert done["ok"] and result["result"] == "succeeded", done
    names = [s["name"] for s in result["steps"]]
    assert names.index("traffic") < names.index("stack") and "db-restore" not in names, names
    assert result["outcome"]["ok"] and result["outcome"]["served"] == {"blue": "1.0.0"}
    assert world.rule_weights() == {"blue": 100, "green": 0}
    assert world.served_versions()["blue"] == "1.0.0"
    # The data is untouched: same cluster and endpoint, 2.0.0's rows still there.
    assert world.cluster()["Endpoint"] == endpoint
    assert (
        sorted(
            c["DBClusterIdentifier"] for c in world.aws("rds").describe_db_clusters()["DBClusters"]
        )
        == clusters
    )
    assert len(world.orders()) == 7
