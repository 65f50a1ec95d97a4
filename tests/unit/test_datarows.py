"""rollback.datarows without a database: which URL reaches which instance, the window's
arithmetic and wording, and the one sentence when the [postgres] extra is missing."""

from __future__ import annotations

import sys

import pytest

from rollback.datarows import (
    InstanceRows,
    describe_restore_rows,
    restore_rows,
    rows_difference,
    rows_digest,
)
from rollback.errors import ConfigError, ExitCode
from rollback.journal import StepRecord
from rollback.steps.migrate import engine_url, require_sqlalchemy

LIVE = "app-db"


def rows_for(url: str) -> InstanceRows:
    return InstanceRows("ROLLBACK_DATABASE_URL", LIVE, {"ROLLBACK_DATABASE_URL": url})


def test_on_the_embedded_cloud_another_instance_is_the_database_named_after_it() -> None:
    rows = rows_for(f"postgresql+psycopg://app:pw@127.0.0.1:5555/{LIVE}")
    assert rows.url_for(LIVE, None, None).endswith(f"/{LIVE}")
    other = rows.url_for("app-db-pre-run7", "app-db-pre-run7.x.rds.amazonaws.com", 5432)
    assert other == "postgresql+psycopg://app:pw@127.0.0.1:5555/app-db-pre-run7"


def test_on_aws_another_instance_is_reached_at_its_own_endpoint() -> None:
    rows = rows_for("postgresql://app:pw@app-db.abc.us-east-1.rds.amazonaws.com:5432/webapp")
    other = rows.url_for("app-db-restore-run7", "app-db-restore-run7.abc.rds.amazonaws.com", 5432)
    assert other == "postgresql://app:pw@app-db-restore-run7.abc.rds.amazonaws.com:5432/webapp"


def test_rows_are_not_configured_without_the_variable() -> None:
    assert not InstanceRows("ROLLBACK_DATABASE_URL", LIVE, {}).configured()
    assert not InstanceRows(
        "ROLLBACK_DATABASE_URL", LIVE, {"ROLLBACK_DATABASE_URL": ""}
    ).configured()


def test_the_difference_and_digest_are_per_table_and_order_free() -> None:
    snapshot = {"orders": 120, "customers": 9}
    live = {"customers": 9, "orders": 157, "audit": 4}
    assert rows_difference(snapshot, live) == {"audit": 4, "orders": 37}
    assert rows_digest(snapshot) == rows_digest(dict(reversed(list(snapshot.items()))))
    assert rows_digest(snapshot) != rows_digest(live)


def test_the_report_line_names_each_table_and_where_the_rows_are_kept() -> None:
    detail = {
        "aside_id": "app-db-pre-run7",
        "rows": {
            "snapshot_rows": {"orders": 120},
            "live_rows": {"orders": 157},
            "discarded": {"orders": 37},
            "database": "postgresql on 127.0.0.1:5555",
        },
    }
    found = restore_rows([StepRecord("db-restore", "db-restore", detail=detail)])
    assert found is not None and found["discarded_total"] == 37
    assert describe_restore_rows(found) == (
        "orders +37 (157 before the restore, 120 in the snapshot); "
        "kept in app-db-pre-run7 and the pre-restore snapshot"
    )
    assert restore_rows([StepRecord("traffic", "traffic")]) is None


def test_postgresql_urls_use_psycopg_3() -> None:
    assert engine_url("postgresql://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert engine_url("postgres://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(ConfigError) as caught:
        require_sqlalchemy("the integrity step")
    assert caught.value.exit_code == ExitCode.USAGE == 2
    assert caught.value.message == (
        "the integrity step needs SQLAlchemy and psycopg; install them with "
        "`pip install 'rollback[postgres]'`."
    )
