"""Real rows behind moto's RDS (`rollback.rdsdata`): each instance is a PostgreSQL database,
each snapshot a copy, and the db-snapshot/db-restore steps move and prove rows.

Everything is read back from PostgreSQL itself (psycopg as the master user over
TCP, or the cluster's administrator for what the application cannot see).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from rollback import postgres
from rollback.aws.rds import Rds
from rollback.datarows import InstanceRows
from rollback.rdsdata import DatabaseBacking, snapshot_database
from rollback.steps.db_restore import DbRestoreStep
from rollback.steps.db_snapshot import DbSnapshotStep, pre_rollback_snapshot_id
from rollback.waiting import Timing

pytestmark = pytest.mark.postgres

DB = "app-db"
USER = "app"
PASSWORD = "s3cret-Pa55word"
RUN = "run7"


def no_sleep(_: float) -> None:
    raise AssertionError("the restore must not wait on the embedded cloud")


@pytest.fixture
def rds(pg_backing: DatabaseBacking) -> Iterator[Any]:
    """In-process moto with one PostgreSQL instance backed by a real database."""
    with mock_aws():
        client = boto3.client("rds", region_name="us-east-1")
        client.create_db_instance(
            DBInstanceIdentifier=DB,
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername=USER,
            MasterUserPassword=PASSWORD,
            AllocatedStorage=20,
            DBName="webapp",
        )
        yield client


def sql(cluster: postgres.Cluster, database: str, statement: str, *args: Any) -> Any:
    """Run one statement as the master user over TCP, as an application would."""
    with psycopg.connect(
        host="127.0.0.1",
        port=cluster.port,
        user=USER,
        password=PASSWORD,
        dbname=database,
        autocommit=True,
    ) as conn:
        cursor = conn.execute(statement, args or None)
        return cursor.fetchall() if cursor.description else None


def orders(cluster: postgres.Cluster, database: str) -> list[str]:
    return [r[0] for r in sql(cluster, database, "SELECT item FROM orders ORDER BY id")]


def admin_databases(cluster: postgres.Cluster) -> set[str]:
    with postgres.admin(cluster) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def test_an_instance_is_a_database_its_master_user_reaches_with_its_password(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    assert sql(pg_cluster, DB, "SELECT current_user, current_database()") == [(USER, DB)]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host="127.0.0.1", port=pg_cluster.port, user=USER, password="wrong", dbname=DB
        )
    # The server never saw the password: it stores a SCRAM verifier, its log has no trace.
    with postgres.admin(pg_cluster) as conn:
        stored = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (USER,)
        ).fetchone()
    assert stored is not None and stored[0].startswith("SCRAM-SHA-256$")
    assert PASSWORD not in (Path(pg_cluster.data_dir) / "server.log").read_text()


def test_a_new_master_password_is_the_database_password(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    rds.modify_db_instance(
        DBInstanceIdentifier=DB, MasterUserPassword="an0ther-Passw0rd", ApplyImmediately=True
    )
    with psycopg.connect(
        host="127.0.0.1", port=pg_cluster.port, user=USER, password="an0ther-Passw0rd", dbname=DB
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_snapshot_is_a_copy_that_later_writes_do_not_reach(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    sql(pg_cluster, DB, "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    sql(pg_cluster, DB, "INSERT INTO orders (item) VALUES ('v1-a'), ('v1-b')")
    rds.create_db_snapshot(DBSnapshotIdentifier="snap-1", DBInstanceIdentifier=DB)
    sql(pg_cluster, DB, "INSERT INTO orders (item) VALUES ('v2-c')")

    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier="scratch", DBSnapshotIdentifier="snap-1"
    )
    assert orders(pg_cluster, "scratch") == ["v1-a", "v1-b"]
    assert orders(pg_cluster, DB) == ["v1-a", "v1-b", "v2-c"]
    # Nobody writes into a snapshot: its database refuses connections.
    with pytest.raises(psycopg.OperationalError):
        sql(pg_cluster, snapshot_database("snap-1"), "SELECT 1")


def test_delete_drops_the_database_and_a_final_snapshot_keeps_its_rows(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    sql(pg_cluster, DB, "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    sql(pg_cluster, DB, "INSERT INTO orders (item) VALUES ('kept')")
    rds.delete_db_instance(DBInstanceIdentifier=DB, FinalDBSnapshotIdentifier="final")
    assert DB not in admin_databases(pg_cluster)
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier="back", DBSnapshotIdentifier="final"
    )
    assert orders(pg_cluster, "back") == ["kept"]
    rds.delete_db_snapshot(DBSnapshotIdentifier="final")
    assert snapshot_database("final") not in admin_databases(pg_cluster)


def test_a_snapshot_whose_copy_fails_is_an_error_and_is_not_recorded(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    with postgres.admin(pg_cluster) as conn:  # the data vanished behind moto's back
        conn.execute(f'DROP DATABASE "{DB}" WITH (FORCE)')
    with pytest.raises(ClientError, match="PostgreSQL could not follow"):
        rds.create_db_snapshot(DBSnapshotIdentifier="snap-x", DBInstanceIdentifier=DB)
    assert rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []


def test_aurora_cluster_is_a_database_snapshot_and_restore_move_rows(
    pg_backing: DatabaseBacking, pg_cluster: postgres.Cluster
) -> None:
    with mock_aws():
        client = boto3.client("rds", region_name="us-east-1")
        client.create_db_cluster(
            DBClusterIdentifier="aurora-app",
            Engine="aurora-postgresql",
            MasterUsername=USER,
            MasterUserPassword=PASSWORD,
        )
        sql(pg_cluster, "aurora-app", "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
        sql(pg_cluster, "aurora-app", "INSERT INTO orders (item) VALUES ('v1')")
        client.create_db_cluster_snapshot(
            DBClusterSnapshotIdentifier="aurora-snap", DBClusterIdentifier="aurora-app"
        )
        sql(pg_cluster, "aurora-app", "INSERT INTO orders (item) VALUES ('v2')")
        client.restore_db_cluster_from_snapshot(
            DBClusterIdentifier="aurora-restored",
            SnapshotIdentifier="aurora-snap",
            Engine="aurora-postgresql",
        )
        assert orders(pg_cluster, "aurora-restored") == ["v1"]
        client.modify_db_cluster(
            DBClusterIdentifier="aurora-app",
            NewDBClusterIdentifier="aurora-aside",
            ApplyImmediately=True,
        )
        assert orders(pg_cluster, "aurora-aside") == ["v1", "v2"]
        client.delete_db_cluster(DBClusterIdentifier="aurora-aside", SkipFinalSnapshot=True)
        assert "aurora-aside" not in admin_databases(pg_cluster)


def test_restore_round_trip_moves_rows_and_proves_them(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    """The release snapshot's rows come back under the same endpoint; rows written after it
    are gone from the live database and kept in the pre-restore snapshot and aside."""
    sql(pg_cluster, DB, "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    sql(pg_cluster, DB, "INSERT INTO orders (item) SELECT 'v1-' || g FROM generate_series(1, 4) g")
    rds.create_db_snapshot(DBSnapshotIdentifier="release-1-0-0", DBInstanceIdentifier=DB)
    sql(pg_cluster, DB, "INSERT INTO orders (item) SELECT 'v2-' || g FROM generate_series(1, 3) g")
    sql(pg_cluster, DB, "CREATE TABLE audit (id int)")  # a table the release never had
    endpoint_before = rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0][
        "Endpoint"
    ]

    timing = Timing(sleep=no_sleep, clock=lambda: 0.0)
    url = f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{pg_cluster.port}/{DB}"
    rows = InstanceRows("ROLLBACK_DATABASE_URL", DB, {"ROLLBACK_DATABASE_URL": url})
    DbSnapshotStep(Rds(rds), DB, RUN, timing).apply()
    step = DbRestoreStep(Rds(rds), DB, "release-1-0-0", RUN, True, None, None, timing, rows=rows)
    applied = step.apply()
    evidence = step.verify()

    assert all(e.ok for e in evidence), [e.note for e in evidence if not e.ok]
    proof = evidence[-1].observed
    assert proof["tables"] == {"orders": 4} and proof["digest"] == proof["expected_digest"]
    window = applied.detail["rows"]
    assert window["discarded"] == {"audit": 0, "orders": 3} or window["discarded"] == {"orders": 3}
    assert window["live_rows"] == {"audit": 0, "orders": 7}
    assert [r for r in orders(pg_cluster, DB)] == [f"v1-{i}" for i in range(1, 5)]
    assert (
        rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["Endpoint"]
        == endpoint_before
    )
    # Nothing is lost: the instance set aside and the pre-restore snapshot hold v2's rows.
    assert len(orders(pg_cluster, step.aside_id)) == 7
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier="inspect", DBSnapshotIdentifier=pre_rollback_snapshot_id(DB, RUN)
    )
    assert orders(pg_cluster, "inspect")[-3:] == ["v2-1", "v2-2", "v2-3"]


def test_restore_verify_fails_when_the_live_rows_are_not_the_snapshots(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    sql(pg_cluster, DB, "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    rds.create_db_snapshot(DBSnapshotIdentifier="release-1-0-0", DBInstanceIdentifier=DB)
    timing = Timing(sleep=no_sleep, clock=lambda: 0.0)
    url = f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{pg_cluster.port}/{DB}"
    rows = InstanceRows("ROLLBACK_DATABASE_URL", DB, {"ROLLBACK_DATABASE_URL": url})
    DbSnapshotStep(Rds(rds), DB, RUN, timing).apply()
    step = DbRestoreStep(Rds(rds), DB, "release-1-0-0", RUN, True, None, None, timing, rows=rows)
    step.apply()
    sql(pg_cluster, DB, "INSERT INTO orders (item) VALUES ('written behind our back')")

    proof = step.verify()[-1]
    assert not proof.ok and "not the snapshot's" in proof.note
    assert url not in str(proof.observed) and PASSWORD not in proof.note


def test_a_snapshot_cuts_no_client_off_and_holds_only_committed_rows(
    rds: Any, pg_cluster: postgres.Cluster
) -> None:
    """A session stays open through the snapshot (copied with pg_dump then): its committed
    rows are in the snapshot, its open transaction's are not, and it carries on."""
    sql(pg_cluster, DB, "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    with psycopg.connect(
        host="127.0.0.1", port=pg_cluster.port, user=USER, password=PASSWORD, dbname=DB
    ) as session:
        session.execute("INSERT INTO orders (item) VALUES ('committed')")
        session.commit()
        session.execute("INSERT INTO orders (item) VALUES ('in flight')")  # not committed yet
        rds.create_db_snapshot(DBSnapshotIdentifier="busy", DBInstanceIdentifier=DB)
        session.commit()
        assert session.execute("SELECT count(*) FROM orders").fetchone() == (2,)
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier="was-busy", DBSnapshotIdentifier="busy"
    )
    assert orders(pg_cluster, "was-busy") == ["committed"]
    assert orders(pg_cluster, DB) == ["committed", "in flight"]
