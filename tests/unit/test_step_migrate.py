"""migrate with real Alembic (tests/fixtures/alembic_app) on a real SQLite database."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from rollback.errors import CheckFailed, UsageError
from rollback.steps.migrate import (
    AlembicRevision,
    MigrateStep,
    database_label,
    mask_secrets,
    render_command,
)
from rollback.waiting import Timing

APP = Path(__file__).resolve().parents[1] / "fixtures" / "alembic_app"
ALEMBIC = f"{shlex.quote(sys.executable)} -m alembic -c {shlex.quote(str(APP / 'alembic.ini'))}"
DOWNGRADE = f"{ALEMBIC} downgrade {{revision}}"
UPGRADE = f"{ALEMBIC} upgrade {{revision}}"
ORDERS = 40


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def timing() -> Timing:
    clock = FakeClock()
    return Timing(sleep=clock.sleep, clock=clock)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite database migrated to head (r3) by Alembic, with orders written at head."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    subprocess.run([*shlex.split(ALEMBIC), "upgrade", "head"], check=True, capture_output=True)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO orders (id, customer, amount_cents, note) VALUES (:i, :c, :a, :n)"
            ),
            [
                {"i": i, "c": f"customer-{i % 7}", "a": 100 * i + 99, "n": f"note {i}"}
                for i in range(1, ORDERS + 1)
            ],
        )
    engine.dispose()
    return url


def revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    return found


def orders(url: str) -> tuple[int, str]:
    """Row count and a sha256 over the data columns every revision has."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, customer, amount_cents FROM orders ORDER BY id")
        ).all()
    engine.dispose()
    digest = hashlib.sha256("\n".join("|".join(map(str, r)) for r in rows).encode()).hexdigest()
    return len(rows), digest


def columns(url: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = {c["name"] for c in sa.inspect(conn).get_columns("orders")}
    engine.dispose()
    return found


def step(target: str, timing: Timing, upgrade_template: str | None = UPGRADE) -> MigrateStep:
    return MigrateStep(
        DOWNGRADE, target, "DATABASE_URL", None, 60.0, timing, upgrade_template=upgrade_template
    )


@pytest.mark.parametrize(("target", "has_note"), [("r2", True), ("r1", False)])
def test_downgrade_reads_back_the_target_revision_and_keeps_the_rows(
    database: str, timing: Timing, target: str, has_note: bool
) -> None:
    before = orders(database)
    migrate = step(target, timing)

    applied = migrate.apply()

    assert applied.changed
    assert applied.prior["revision"] == "r3"
    assert revision(database) == target
    assert ("note" in columns(database)) is has_note
    assert orders(database) == before == (ORDERS, before[1])
    [ev] = migrate.verify()
    assert ev.ok
    assert ev.observed["revision"] == target
    assert database not in repr(ev)
    assert database not in repr(applied)
    assert database not in repr(migrate.describe())


def test_apply_at_the_target_revision_runs_nothing(database: str, timing: Timing) -> None:
    step("r2", timing).apply()
    again = step("r2", timing, upgrade_template=None).apply()
    assert not again.changed
    assert again.prior["revision"] == "r2"
    assert revision(database) == "r2"


def test_a_failing_command_raises_and_leaves_the_database_as_it_was(
    database: str, timing: Timing
) -> None:
    before = orders(database)

    with pytest.raises(CheckFailed, match="Can't locate revision identified by 'zz9'") as failed:
        step("zz9", timing).apply()

    assert failed.value.fields["exit_status"] != 0
    assert revision(database) == "r3"
    assert orders(database) == before
    assert database not in failed.value.message


def test_the_url_reaches_the_command_only_through_the_environment_and_is_masked(
    database: str, timing: Timing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DB", "postgresql://app:s3cret@db.internal:5432/app")
    echo = (
        f"{shlex.quote(sys.executable)} -c "
        '\'import os,sys; print("url", os.environ["APP_DB"], sys.argv[1]); sys.exit(3)\' '
        "{revision}"
    )
    migrate = MigrateStep(echo, "r1", "APP_DB", lambda: "r3", 60.0, timing)

    with pytest.raises(CheckFailed) as failed:
        migrate.apply()

    assert "url *** r1" in failed.value.message
    assert "s3cret" not in repr(failed.value.as_dict())
    assert "APP_DB" in migrate.describe().changes["database_url_env"]


def test_compensate_upgrades_back_to_the_prior_revision(database: str, timing: Timing) -> None:
    migrate = step("r1", timing)
    applied = migrate.apply()

    migrate.compensate(applied.prior)

    assert revision(database) == "r3"
    assert "note" in columns(database)
    assert orders(database)[0] == ORDERS


def test_compensate_without_an_upgrade_command_says_it_cannot(
    database: str, timing: Timing
) -> None:
    migrate = step("r2", timing, upgrade_template=None)
    applied = migrate.apply()

    with pytest.raises(CheckFailed, match="cannot compensate.*r3 by hand"):
        migrate.compensate(applied.prior)
    assert revision(database) == "r2"
    assert "cannot be compensated" in migrate.describe().reason


def test_bad_templates_and_a_missing_url_variable_are_usage_errors(
    timing: Timing, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UsageError, match="must contain"):
        render_command("alembic downgrade", "r1")
    with pytest.raises(UsageError, match="not a migration revision"):
        render_command("alembic downgrade {revision}", "r1; rm -rf /")
    assert render_command("alembic downgrade {revision}", "ab12") == [
        "alembic",
        "downgrade",
        "ab12",
    ]
    monkeypatch.delenv("NO_SUCH_URL", raising=False)
    with pytest.raises(UsageError, match="NO_SUCH_URL is not set"):
        MigrateStep(DOWNGRADE, "r1", "NO_SUCH_URL", lambda: "r3", 60.0, timing).apply()


def test_revision_reader_reads_alembic_version(database: str) -> None:
    assert AlembicRevision("DATABASE_URL")() == "r3"


def test_masking() -> None:
    url = "postgresql+psycopg://app:pa%40ss@db.internal:5432/app"
    assert mask_secrets(f"connect {url} failed", [url]) == "connect *** failed"
    assert mask_secrets("x postgresql://u:hunter2@h/db y", []) == "x postgresql://u:***@h/db y"
    assert database_label(url) == "postgresql on db.internal:5432"
