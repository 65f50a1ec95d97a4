"""The planner's order rule, warnings and refusals, against an in-process moto ALB and RDS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from rollback.aws.elbv2 import LoadBalancing
from rollback.aws.rds import Rds
from rollback.errors import NotFound, UsageError
from rollback.planner import Options, Planner, read_live
from rollback.releases import Attachments, Registry
from rollback.store import open_store
from tests.unit.test_releases import commit, make_repo
from tests.unit.test_step_traffic import Alb, alb, network  # noqa: F401  (the moto ALB fixtures)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class World:
    """A registry of releases over the moto ALB, with an RDS instance and snapshot."""

    def __init__(self, moto_alb: Alb, tmp_path: Path) -> None:
        self.alb = moto_alb
        self.store = open_store(str(tmp_path / "store"))
        self.registry = Registry(self.store, "webapp/prod")
        self.repo = make_repo(tmp_path / "iac")
        self.artifact = tmp_path / "app.tgz"
        self.artifact.write_bytes(b"app")
        self.rds = boto3.client("rds", region_name="us-east-1")
        # The mocked account lives for the module: start each test from no database.
        for snap in self.rds.describe_db_snapshots()["DBSnapshots"]:
            self.rds.delete_db_snapshot(DBSnapshotIdentifier=snap["DBSnapshotIdentifier"])
        for db in self.rds.describe_db_instances()["DBInstances"]:
            self.rds.delete_db_instance(
                DBInstanceIdentifier=db["DBInstanceIdentifier"], SkipFinalSnapshot=True
            )
        self.rds.create_db_instance(
            DBInstanceIdentifier="db",
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="app",
            MasterUserPassword="secret-password",
            AllocatedStorage=20,
        )
        self.rds.create_db_snapshot(DBSnapshotIdentifier="db-v1-4-0", DBInstanceIdentifier="db")
        self.mutating: list[str] = []
        for client in (self.rds, moto_alb.client):
            client.meta.events.register("before-call.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(("Describe", "List", "Get", "Head")):
            self.mutating.append(model.name)

    def record(self, version: str, color: str, **fields: Any) -> None:
        topology = replace(self.alb.topology, live_color=color, **fields.pop("topology", {}))
        commit(self.repo, "main.py", version, f"chore: {version}")
        attachments = Attachments(
            topology=json.dumps(topology.to_dict()).encode(),
            checkpoint=b'{"version": 3, "deployment": {}}',
            color=color,
            **fields,
        )
        self.registry.record(
            version, self.artifact, Path(self.repo.working_dir), attachments=attachments
        )

    def planner(self) -> Planner:
        elbv2, rds = LoadBalancing(self.alb.client), Rds(self.rds)
        return Planner(
            self.registry, lambda topo, target: read_live(elbv2, rds, topo, target), now=lambda: NOW
        )


@pytest.fixture
def world(alb: Alb, tmp_path: Path) -> Iterator[World]:  # noqa: F811
    yield World(alb, tmp_path)


def names(plan: Any) -> list[str]:
    return [s.name for s in plan.steps]


def test_traffic_first_when_target_colour_still_runs_it(world: World) -> None:
    world.record("1.4.0", "green", schema_revision="r1")
    world.registry.mark("1.4.0", "stable", "baked")
    world.record("1.5.0", "blue", schema_revision="r1")
    plan = world.planner().plan("last-stable", Options(reason="5xx after deploy", actor="oncall"))
    assert (plan.from_version, plan.to_version) == ("1.5.0", "1.4.0")
    assert names(plan) == ["preflight", "traffic", "dns", "db-snapshot", "stack", "health", "mark"]
    traffic = plan.step("traffic")
    assert traffic.params["weights"] == {"blue": 0, "green": 100}
    assert traffic.description.changes["from"] == {"blue": 100, "green": 0}
    assert "users get it back first" in traffic.description.reason
    assert plan.warnings == () and plan.data_loss_window_s is None
    assert world.mutating == []  # planning changes nothing


def test_database_before_traffic_when_the_schema_changed(world: World) -> None:
    world.record(
        "1.4.0",
        "green",
        schema_revision="r1",
        migration_command="alembic downgrade {revision}",
        integrity_checks=({"name": "rows", "sql": "SELECT 1", "expect": 1},),
    )
    world.record(
        "1.5.0", "blue", schema_revision="r2", migration_command="alembic upgrade {revision}"
    )
    plan = world.planner().plan("1.4.0")
    assert names(plan) == [
        "preflight",
        "db-snapshot",
        "stack",
        "migrate",
        "integrity",
        "traffic",
        "dns",
        "health",
        "mark",
    ]
    assert not plan.step("db-snapshot").skippable
    assert plan.step("migrate").params["revision"] == "r1"
    assert any("not marked stable" in w for w in plan.warnings)
    assert any("changed the schema: 1.5.0 (r1 -> r2)" in w for w in plan.warnings)


def test_restore_states_the_data_loss_window(world: World) -> None:
    taken = (NOW - timedelta(hours=3)).isoformat()
    world.record(
        "1.4.0", "green", schema_revision="r1", db_snapshot_id="db-v1-4-0", db_snapshot_at=taken
    )
    world.record("1.5.0", "blue", schema_revision="r2")
    plan = world.planner().plan("1.4.0", Options(accept_data_loss=True))
    assert names(plan) == [
        "preflight",
        "db-snapshot",
        "stack",
        "db-restore",
        "traffic",
        "dns",
        "health",
        "mark",
    ]
    assert plan.data_loss_window_s == pytest.approx(3 * 3600)
    assert any("loses every write since" in w and "3.0 h" in w for w in plan.warnings)
    assert plan.step("preflight").params["snapshot_id"] == "db-v1-4-0"


def test_restore_refused_when_the_snapshot_is_missing(world: World) -> None:
    world.record(
        "1.4.0",
        "green",
        schema_revision="r1",
        db_snapshot_id="gone",
        db_snapshot_at=NOW.isoformat(),
    )
    world.record("1.5.0", "blue", schema_revision="r2")
    with pytest.raises(UsageError, match="snapshot gone of release 1.4.0 is missing"):
        world.planner().plan("1.4.0")


def test_colour_rebuilt_before_traffic_when_it_runs_another_version(world: World) -> None:
    world.record("1.3.0", "green", schema_revision="r1")
    world.record("1.5.0", "blue", schema_revision="r1")
    plan = world.planner().plan("1.3.0")
    assert names(plan).index("stack") < names(plan).index("traffic")
    assert any("colour green runs 1.4.0, not 1.3.0" in w for w in plan.warnings)


def test_refusals_and_nothing_to_do(world: World) -> None:
    world.record("1.4.0", "green")
    world.record("1.5.0", "blue")
    world.registry.mark("1.4.0", "bad", "broken")
    with pytest.raises(UsageError, match="marked bad; choose another target or pass --force"):
        world.planner().plan("1.4.0")
    assert names(world.planner().plan("1.4.0", Options(force=True)))[0] == "preflight"
    with pytest.raises(NotFound, match="9.9.9"):
        world.planner().plan("9.9.9")
    same = world.planner().plan("1.5.0")
    assert same.steps == () and "already at 1.5.0" in same.warnings[0]


def test_last_stable_skips_a_current_release_that_was_promoted(world: World) -> None:
    world.record("1.4.0", "green")
    world.registry.mark("1.4.0", "stable", "baked")
    world.record("1.5.0", "blue")
    world.registry.mark("1.5.0", "stable", "promoted by the cutover, then went bad")
    plan = world.planner().plan("last-stable")
    assert (plan.from_version, plan.to_version) == ("1.5.0", "1.4.0")
    assert plan.steps  # not "already there"


def test_restore_without_accept_data_loss_is_refused_before_anything_runs(world: World) -> None:
    from rollback.aws.session import Clients, make_session
    from rollback.orchestrate import Workbench, rollback_to

    world.record(
        "1.4.0",
        "green",
        schema_revision="r1",
        db_snapshot_id="db-v1-4-0",
        db_snapshot_at=NOW.isoformat(),
    )
    world.record("1.5.0", "blue", schema_revision="r2")
    bench = Workbench(
        Clients(make_session("us-east-1")), world.store, world.registry, engine=lambda: None
    )  # type: ignore[arg-type,return-value]
    snapshots = world.rds.describe_db_snapshots()["DBSnapshots"]
    with pytest.raises(
        UsageError, match="restores the database and loses .* pass --accept-data-loss"
    ):
        rollback_to(bench, "1.4.0", Options())
    assert world.rds.describe_db_snapshots()["DBSnapshots"] == snapshots
    assert world.store.list_docs("runs/") == [] and world.mutating == []
