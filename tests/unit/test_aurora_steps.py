"""The database steps on an Aurora PostgreSQL cluster (`db_kind="cluster"`), against
in-process moto with the embedded cloud's RDS corrections (`rollback.rdsfidelity`) and
each cluster backed by a real PostgreSQL database (`rollback.rdsdata`).

Everything is read back: the clusters and instances from RDS, the rows from
PostgreSQL as the master user would read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback import postgres, rdsfidelity
from rollback.aws.databases import Clusters, databases
from rollback.aws.rds import Rds
from rollback.aws.session import Clients
from rollback.datarows import InstanceRows
from rollback.errors import NotFound, UsageError
from rollback.models import StepDescription
from rollback.plan import PlannedStep
from rollback.preflight import NOTHING_CHANGED, check_cloud
from rollback.rdsdata import DatabaseBacking
from rollback.steps.db_restore import DbRestoreStep
from rollback.steps.db_snapshot import DbSnapshotStep, pre_rollback_snapshot_id
from rollback.steps.preflight import PreflightStep
from rollback.waiting import Timing
from tests.unit.test_rds_data import PASSWORD, USER, no_sleep, orders, sql

CLUSTER = "app-db"
WRITER = "app-db-1"
RUN = "run9"
RELEASE_SNAPSHOT = "app-db-release-1-0-0"
TIMING = Timing(sleep=no_sleep, clock=lambda: 0.0)


def _cloud() -> Iterator[Any]:
    """In-process moto, RDS as the embedded cloud corrects it, one Aurora cluster with its writer."""
    rdsfidelity.install()
    with mock_aws():
        client = boto3.client("rds", region_name="us-east-1")
        client.create_db_cluster(
            DBClusterIdentifier=CLUSTER,
            Engine="aurora-postgresql",
            EngineVersion="15.4",
            MasterUsername=USER,
            MasterUserPassword=PASSWORD,
            DatabaseName="app",
            Tags=[{"Key": "Project", "Value": "fargate"}],
        )
        client.create_db_instance(
            DBInstanceIdentifier=WRITER,
            DBClusterIdentifier=CLUSTER,
            Engine="aurora-postgresql",
            DBInstanceClass="db.t4g.medium",
        )
        yield client


@pytest.fixture
def rds() -> Iterator[Any]:
    yield from _cloud()


@pytest.fixture
def backed(pg_backing: DatabaseBacking) -> Iterator[Any]:
    """The same cloud with the cluster a real PostgreSQL database (the hook installed first)."""
    yield from _cloud()


def described(rds: Any, cluster_id: str) -> dict[str, Any]:
    (found,) = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"]
    return dict(found)


def members(rds: Any, cluster_id: str) -> list[str]:
    return [m["DBInstanceIdentifier"] for m in described(rds, cluster_id)["DBClusterMembers"]]


def writer_restored_from(rds: Any) -> str | None:
    """The snapshot the live cluster's writer instance was restored with (its tag), if any."""
    (writer,) = rds.describe_db_instances(DBInstanceIdentifier=WRITER)["DBInstances"]
    tags = {t["Key"]: t["Value"] for t in writer.get("TagList") or []}
    return tags.get("rollback:restored-from")


def everything(rds: Any) -> tuple[list[str], list[str], list[str]]:
    """Clusters, instances and cluster snapshots by name: what a refusal must leave alone."""
    return (
        sorted(c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]),
        sorted(i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]),
        sorted(
            s["DBClusterSnapshotIdentifier"]
            for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
        ),
    )


def ready_to_restore(rds: Any) -> DbRestoreStep:
    """The release's cluster snapshot and this run's pre-restore one taken; the restore step."""
    Clusters(Rds(rds)).create_snapshot(RELEASE_SNAPSHOT, CLUSTER, {})
    DbSnapshotStep(Rds(rds), CLUSTER, RUN, TIMING, db_kind="cluster").apply()
    return restore_step(rds)


def restore_step(rds: Any, rows: InstanceRows | None = None, **overrides: Any) -> DbRestoreStep:
    args: dict[str, Any] = {
        "rds": Rds(rds),
        "instance_id": CLUSTER,
        "snapshot_id": RELEASE_SNAPSHOT,
        "run_id": RUN,
        "accept_data_loss": True,
        "snapshot_taken_at": None,
        "pre_snapshot_id": None,
        "timing": TIMING,
        "rows": rows,
        "db_kind": "cluster",
    }
    args.update(overrides)
    return DbRestoreStep(**args)


# -- the embedded cloud: a cluster rename behaves as on AWS -----------------------------


def test_a_renamed_cluster_keeps_its_instances_and_the_original_name_keeps_its_endpoint(
    rds: Any,
) -> None:
    endpoint = described(rds, CLUSTER)["Endpoint"]
    rds.create_db_cluster(
        DBClusterIdentifier="other",
        Engine="aurora-postgresql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
    )
    rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER, NewDBClusterIdentifier="aside", ApplyImmediately=True
    )
    rds.modify_db_cluster(
        DBClusterIdentifier="other", NewDBClusterIdentifier=CLUSTER, ApplyImmediately=True
    )

    assert members(rds, "aside") == [WRITER]
    (writer,) = rds.describe_db_instances(DBInstanceIdentifier=WRITER)["DBInstances"]
    assert writer["DBClusterIdentifier"] == "aside"
    # The endpoint is the name's within the account and region, whichever cluster holds it.
    assert described(rds, CLUSTER)["Endpoint"] == endpoint
    assert described(rds, "aside")["Endpoint"] == endpoint.replace(CLUSTER, "aside", 1)


# -- the steps, with real rows -------------------------------------------------------


@pytest.mark.postgres
def test_snapshot_then_restore_swaps_clusters_keeps_the_endpoint_and_proves_the_rows(
    backed: Any, pg_cluster: postgres.Cluster
) -> None:
    rds, data = backed, pg_cluster
    sql(data, CLUSTER, "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    sql(data, CLUSTER, "INSERT INTO orders (item) SELECT 'v1-' || g FROM generate_series(1, 4) g")
    Clusters(Rds(rds)).create_snapshot(RELEASE_SNAPSHOT, CLUSTER, {"rollback:release": "1.0.0"})
    sql(data, CLUSTER, "INSERT INTO orders (item) SELECT 'v2-' || g FROM generate_series(1, 3) g")
    endpoint = described(rds, CLUSTER)["Endpoint"]
    url = f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{data.port}/{CLUSTER}"
    rows = InstanceRows("ROLLBACK_DATABASE_URL", CLUSTER, {"ROLLBACK_DATABASE_URL": url})

    snapshot = DbSnapshotStep(Rds(rds), CLUSTER, RUN, TIMING, db_kind="cluster")
    snapshot.apply()
    assert all(e.ok for e in snapshot.verify())
    step = restore_step(rds, rows)
    applied = step.apply()
    found = step.verify()

    assert all(e.ok for e in found), [e.note for e in found if not e.ok]
    assert found[0].api == "rds:DescribeDBClusters"
    assert found[-1].observed["tables"] == {"orders": 4}
    assert applied.detail["rows"]["discarded"] == {"orders": 3}
    # Users' endpoint, now the release's rows; the restored cluster's own writer took the
    # name of the stack's instance, which went aside with its cluster.
    assert described(rds, CLUSTER)["Endpoint"] == endpoint
    assert orders(data, CLUSTER) == [f"v1-{i}" for i in range(1, 5)]
    assert members(rds, CLUSTER) == [WRITER]
    assert writer_restored_from(rds) == RELEASE_SNAPSHOT
    # Nothing is lost: the cluster set aside (with its writer) and the pre-restore snapshot.
    assert members(rds, step.aside_id) == [f"{step.aside_id}-1"]
    assert len(orders(data, step.aside_id)) == 7
    rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier="inspect",
        SnapshotIdentifier=pre_rollback_snapshot_id(CLUSTER, RUN),
        Engine="aurora-postgresql",
    )
    assert orders(data, "inspect")[-3:] == ["v2-1", "v2-2", "v2-3"]

    # Applying again changes nothing; compensating puts the names back.
    before = everything(rds)
    assert not step.apply().changed
    assert everything(rds) == before
    step.compensate(applied.prior)
    assert len(orders(data, CLUSTER)) == 7 and members(rds, CLUSTER) == [WRITER]
    assert writer_restored_from(rds) is None
    assert members(rds, step.restore_id) == [f"{step.restore_id}-1"]
    assert described(rds, CLUSTER)["Endpoint"] == endpoint


@pytest.mark.postgres
def test_a_run_that_died_before_the_instances_followed_their_clusters_finishes_them(
    backed: Any,
) -> None:
    rds = backed
    step = ready_to_restore(rds)
    step.apply()
    # As if the process had died right after renaming the clusters: instances as they were.
    for old, new in ((WRITER, f"{step.restore_id}-1"), (f"{step.aside_id}-1", WRITER)):
        rds.modify_db_instance(
            DBInstanceIdentifier=old, NewDBInstanceIdentifier=new, ApplyImmediately=True
        )
    assert members(rds, CLUSTER) == [f"{step.restore_id}-1"]

    step.apply()

    assert members(rds, CLUSTER) == [WRITER] and writer_restored_from(rds) == RELEASE_SNAPSHOT
    assert members(rds, step.aside_id) == [f"{step.aside_id}-1"]


@pytest.mark.postgres
def test_a_restore_resumed_after_the_cluster_came_back_without_its_instance_finishes_it(
    backed: Any,
) -> None:
    rds = backed
    step = ready_to_restore(rds)
    # The process died after RestoreDBClusterFromSnapshot, before CreateDBInstance.
    live = Rds(rds).find_cluster(CLUSTER)
    assert live is not None
    Rds(rds).restore_cluster_from_snapshot(
        step.restore_id, RELEASE_SNAPSHOT, live, step._tags(live)
    )

    step.apply()

    assert all(e.ok for e in step.verify())
    assert members(rds, CLUSTER) == [WRITER] and writer_restored_from(rds) == RELEASE_SNAPSHOT


# -- failure paths: refused before anything changes ----------------------------------


def test_a_missing_cluster_snapshot_is_refused_by_preflight_in_one_sentence(rds: Any) -> None:
    planned = PlannedStep(
        name="db-restore",
        kind="db-restore",
        description=StepDescription("db-restore", "restore", {}),
        params={"instance_id": CLUSTER, "db_kind": "cluster", "snapshot_id": "gone", "run_id": RUN},
    )
    bench = SimpleNamespace(clients=Clients(boto3.Session(region_name="us-east-1")))
    before = everything(rds)

    with pytest.raises(NotFound) as refused:
        check_cloud(bench, {}, [planned])  # type: ignore[arg-type]

    assert int(refused.value.exit_code) == 2
    message = refused.value.message
    assert message.endswith(f"{NOTHING_CHANGED}.") and message.count(". ") == 0, message
    assert "snapshot gone" in message and "missing" in message
    assert everything(rds) == before


def test_preflight_finds_the_cluster_and_its_snapshot_by_kind(rds: Any) -> None:
    Clusters(Rds(rds)).create_snapshot(RELEASE_SNAPSHOT, CLUSTER, {})
    planned = PlannedStep(
        name="db-restore",
        kind="db-restore",
        description=StepDescription("db-restore", "restore", {}),
        params={"instance_id": CLUSTER, "db_kind": "cluster", "snapshot_id": RELEASE_SNAPSHOT},
    )
    bench = SimpleNamespace(clients=Clients(boto3.Session(region_name="us-east-1")))

    found = check_cloud(bench, {}, [planned])  # type: ignore[arg-type]

    assert [e.api for e in found] == ["rds:DescribeDBClusters", "rds:DescribeDBClusterSnapshots"]
    # An instance-kind plan of the same name finds no DB instance: the kind matters.
    planned.params["db_kind"] = "instance"
    with pytest.raises(NotFound, match=f"DB instance {CLUSTER} does not exist"):
        check_cloud(bench, {}, [planned])  # type: ignore[arg-type]
    step = PreflightStep(None, [], Rds(rds), "gone", db_kind="cluster")  # type: ignore[arg-type]
    (evidence,) = step.verify()
    assert not evidence.ok and evidence.note == "snapshot gone is missing"


def test_the_restore_step_refuses_a_missing_snapshot_and_a_missing_pre_restore_snapshot(
    rds: Any,
) -> None:
    before = everything(rds)
    with pytest.raises(Exception, match="pre-restore snapshot did not verify"):
        restore_step(rds).apply()
    DbSnapshotStep(Rds(rds), CLUSTER, RUN, TIMING, db_kind="cluster").apply()
    after_snapshot = everything(rds)
    with pytest.raises(NotFound, match=f"DB snapshot {RELEASE_SNAPSHOT} does not exist"):
        restore_step(rds).apply()
    assert everything(rds)[:2] == before[:2]
    assert everything(rds) == after_snapshot


def test_the_snapshot_step_refuses_a_missing_cluster_and_an_unknown_kind(rds: Any) -> None:
    with pytest.raises(NotFound, match="DB cluster nope does not exist"):
        DbSnapshotStep(Rds(rds), "nope", RUN, TIMING, db_kind="cluster").apply()
    with pytest.raises(UsageError, match="database kind 'table'"):
        databases(Rds(rds), "table")
    assert everything(rds)[2] == []
