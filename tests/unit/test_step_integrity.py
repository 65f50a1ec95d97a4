"""integrity: recorded SQL checks on a real SQLite database, read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rollback.errors import UsageError
from rollback.steps.integrity import IntegrityStep
from rollback.waiting import Timing

ROWS = 1200
CHECKSUM_SQL = "SELECT sum(id * 31 + amount_cents) FROM orders"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount_cents INTEGER)"))
        conn.execute(
            sa.text("INSERT INTO orders (id, amount_cents) VALUES (:i, :a)"),
            [{"i": i, "a": 250 + i % 13} for i in range(1, ROWS + 1)],
        )
    engine.dispose()
    return url


def query(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


def run(checks: list[dict[str, Any]]) -> IntegrityStep:
    return IntegrityStep("DATABASE_URL", checks, Timing(sleep=lambda s: None, clock=lambda: 0.0))


def test_checks_that_hold_pass_and_the_evidence_shows_the_values(database: str) -> None:
    checksum = query(database, CHECKSUM_SQL)
    step = run(
        [
            {"name": "orders rows", "sql": "SELECT count(*) FROM orders", "expect": ROWS},
            {
                "name": "orders in range",
                "sql": "SELECT count(*) FROM orders",
                "min": 1000,
                "max": 2000,
            },
            {"name": "orders checksum", "sql": CHECKSUM_SQL, "expect": checksum},
            {"name": "sqlite says", "sql": "SELECT 'ok'", "expect": "ok"},
        ]
    )

    assert not step.apply().changed
    evidence = step.verify()

    assert [e.ok for e in evidence] == [True, True, True, True]
    rows, bounds, sums, text = (e.observed for e in evidence)
    assert rows == {
        "name": "orders rows",
        "sql": "SELECT count(*) FROM orders",
        "expect": ROWS,
        "database": "sqlite",
        "read_only": True,
        "value": ROWS,
        "seconds": 0.0,
    }
    assert (bounds["min"], bounds["max"], bounds["value"]) == (1000, 2000, ROWS)
    assert sums["value"] == checksum
    assert text["value"] == "ok"
    assert database not in repr(evidence)


def test_a_count_out_of_bounds_fails(database: str) -> None:
    [ev] = run(
        [{"name": "orders rows", "sql": "SELECT count(*) FROM orders", "min": 1500}]
    ).verify()

    assert not ev.ok
    assert ev.observed["value"] == ROWS
    assert ev.note == f"orders rows: got {ROWS}, below the minimum 1500"


def test_a_checksum_mismatch_fails(database: str) -> None:
    checksum = query(database, CHECKSUM_SQL)
    engine = sa.create_engine(database)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = 7"))
    engine.dispose()

    [ev] = run([{"name": "orders checksum", "sql": CHECKSUM_SQL, "expect": checksum}]).verify()

    assert not ev.ok
    assert ev.observed["value"] == checksum + 1
    assert "expected" in ev.note


def test_checks_cannot_write(database: str) -> None:
    [ev] = run([{"name": "sneaky", "sql": "DELETE FROM orders", "expect": 0}]).verify()

    assert not ev.ok
    assert "readonly" in ev.observed["error"]
    assert query(database, "SELECT count(*) FROM orders") == ROWS


def test_a_failing_query_is_evidence_not_a_crash(database: str) -> None:
    [ev] = run(
        [{"name": "gone", "sql": "SELECT count(*) FROM no_such_table", "expect": 1}]
    ).verify()
    assert not ev.ok
    assert "no such table" in ev.observed["error"]


@pytest.mark.parametrize(
    "check",
    [
        {"sql": "SELECT 1", "expect": 1},
        {"name": "x", "expect": 1},
        {"name": "x", "sql": "SELECT 1"},
        {"name": "x", "sql": "SELECT 1", "expect": 1, "min": 0},
        {"name": "x", "sql": "SELECT 1", "min": "ten"},
    ],
)
def test_malformed_checks_are_usage_errors(check: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        run([check])
