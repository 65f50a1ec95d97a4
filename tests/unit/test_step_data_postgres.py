"""migrate and integrity on real PostgreSQL: the embedded cloud's database of an RDS instance.

The instance is created through (in-process) moto's RDS with `pg_backing`, so
the database is the one an application of the stack would reach; the URL is
the master user's, over TCP on 127.0.0.1.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws

from rollback.rdsdata import DatabaseBacking
from rollback.steps.integrity import IntegrityStep
from rollback.steps.migrate import MigrateStep
from rollback.waiting import Timing

pytestmark = pytest.mark.postgres

APP = Path(__file__).resolve().parents[1] / "fixtures" / "alembic_app"
ALEMBIC = f"{shlex.quote(sys.executable)} -m alembic -c {shlex.quote(str(APP / 'alembic.ini'))}"
PASSWORD = "migr4te-Passw0rd"
ORDERS = 250


@pytest.fixture
def database(pg_backing: DatabaseBacking, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of instance `shop-db`'s database, migrated to head (r3) with orders written."""
    with mock_aws():
        boto3.client("rds", region_name="us-east-1").create_db_instance(
            DBInstanceIdentifier="shop-db",
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="shop",
            MasterUserPassword=PASSWORD,
            AllocatedStorage=20,
        )
        port = pg_backing.cluster.port
        url = f"postgresql+psycopg://shop:{PASSWORD}@127.0.0.1:{port}/shop-db"
        monkeypatch.setenv("DATABASE_URL", url)
        subprocess.run([*shlex.split(ALEMBIC), "upgrade", "head"], check=True, capture_output=True)
        execute(
            url,
            "INSERT INTO orders (id, customer, amount_cents, note) "
            f"SELECT g, 'customer-' || (g % 7), 100 * g + 99, 'note ' || g FROM generate_series(1, {ORDERS}) g",
        )
        yield url


def execute(url: str, statement: str) -> Any:
    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else None


def timing() -> Timing:
    return Timing(sleep=lambda _: None, clock=lambda: 0.0)


def test_alembic_downgrade_runs_against_postgres_and_keeps_the_rows(database: str) -> None:
    before = execute(database, "SELECT id, customer, amount_cents FROM orders ORDER BY id")
    migrate = MigrateStep(
        f"{ALEMBIC} downgrade {{revision}}",
        "r1",
        "DATABASE_URL",
        None,
        120.0,
        timing(),
        upgrade_template=f"{ALEMBIC} upgrade {{revision}}",
    )

    applied = migrate.apply()
    [proof] = migrate.verify()

    assert applied.changed and applied.prior["revision"] == "r3"
    assert proof.ok and proof.observed["revision"] == "r1"
    assert proof.observed["database"].startswith("postgresql on 127.0.0.1")
    assert execute(database, "SELECT version_num FROM alembic_version") == [("r1",)]
    columns = execute(
        database,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'",
    )
    assert "note" not in {c for (c,) in columns}
    assert execute(database, "SELECT id, customer, amount_cents FROM orders ORDER BY id") == before
    assert len(before) == ORDERS
    assert PASSWORD not in repr(applied) + repr(proof)

    migrate.compensate(applied.prior)
    assert execute(database, "SELECT version_num FROM alembic_version") == [("r3",)]


DANGLING = {
    "name": "every order has a customer",
    "sql": "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.name = o.customer "
    "WHERE c.name IS NULL",
    "expect": 0,
}


def test_integrity_fails_on_a_dangling_reference_and_passes_once_it_is_fixed(
    database: str,
) -> None:
    execute(database, "CREATE TABLE customers (name text PRIMARY KEY)")
    execute(database, "INSERT INTO customers SELECT 'customer-' || g FROM generate_series(0, 6) g")
    checks = [
        DANGLING,
        {"name": "orders", "sql": "SELECT count(*) FROM orders", "min": ORDERS},
    ]
    execute(database, "INSERT INTO orders (id, customer, amount_cents) VALUES (9999, 'ghost', 1)")

    failing = IntegrityStep("DATABASE_URL", checks, timing()).verify()
    assert [e.ok for e in failing] == [False, True]
    assert failing[0].observed["value"] == 1 and failing[0].observed["read_only"] is True

    execute(database, "DELETE FROM orders WHERE customer = 'ghost'")
    passing = IntegrityStep("DATABASE_URL", checks, timing()).verify()
    assert [e.ok for e in passing] == [True, True]


def test_integrity_checks_cannot_write(database: str) -> None:
    check = {"name": "sneaky", "sql": "DELETE FROM orders RETURNING 1", "min": 0}
    [ev] = IntegrityStep("DATABASE_URL", [check], timing()).verify()
    assert not ev.ok and "read-only" in ev.observed["error"]
    assert execute(database, "SELECT count(*) FROM orders") == [(ORDERS,)]
