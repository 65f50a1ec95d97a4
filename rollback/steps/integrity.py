"""integrity: read-only SQL checks recorded with a release, run after a restore or migration.

A check is `{"name": ..., "sql": ..., "expect": value}` (an exact value: a
count, a checksum string) or `{"name": ..., "sql": ..., "min": n, "max": m}`
(bounds, either optional). The query's first column of its first row is
compared. Each check runs in its own transaction that is read-only where the
database supports it (PostgreSQL `SET TRANSACTION READ ONLY`, SQLite
`PRAGMA query_only`) and is always rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rollback.errors import UsageError
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence
from rollback.steps.migrate import (
    database_label,
    database_url,
    engine_url,
    mask_secrets,
    require_sqlalchemy,
    url_secrets,
)
from rollback.waiting import Timing


@dataclass(frozen=True)
class IntegrityCheck:
    """One recorded check: a query and the value or bounds its result must meet."""

    name: str
    sql: str
    expect: Any = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntegrityCheck:
        """Validate a recorded check; raises UsageError naming what is wrong."""
        name, sql = data.get("name"), data.get("sql")
        if not isinstance(name, str) or not name:
            raise UsageError(f"integrity check {dict(data)!r} has no name.")
        if not isinstance(sql, str) or not sql.strip():
            raise UsageError(f"integrity check {name!r} has no sql.")
        has_expect = "expect" in data
        bounds = {k: data.get(k) for k in ("min", "max")}
        if has_expect == any(v is not None for v in bounds.values()):
            raise UsageError(
                f"integrity check {name!r} needs either `expect` or `min`/`max`, not both "
                "and not neither."
            )
        for key, bound in bounds.items():
            if bound is not None and not _is_number(bound):
                raise UsageError(f"integrity check {name!r}: {key} must be a number.")
        return cls(name=name, sql=sql, expect=data.get("expect"), **bounds)

    def judge(self, value: Any) -> tuple[bool, str]:
        """Whether `value` meets the check, and why not."""
        if self.min is None and self.max is None:
            if _is_number(self.expect) and _is_number(value):
                ok = Decimal(str(value)) == Decimal(str(self.expect))
            else:
                ok = value is not None and str(value) == str(self.expect)
            return ok, "" if ok else f"got {value!r}, expected {self.expect!r}"
        if not _is_number(value):
            return False, f"got {value!r}, not a number"
        number = Decimal(str(value))
        if self.min is not None and number < Decimal(str(self.min)):
            return False, f"got {value}, below the minimum {self.min}"
        if self.max is not None and number > Decimal(str(self.max)):
            return False, f"got {value}, above the maximum {self.max}"
        return True, ""

    def expectation(self) -> dict[str, Any]:
        if self.min is None and self.max is None:
            return {"expect": self.expect}
        return {"min": self.min, "max": self.max}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class IntegrityStep:
    """Run a release's recorded SQL checks read-only and report each result as evidence."""

    kind = "integrity"

    def __init__(
        self,
        database_url_env: str,
        checks: list[dict[str, Any]],
        timing: Timing,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Raises UsageError for a malformed check, before anything runs."""
        self.database_url_env = database_url_env
        self.checks = [IntegrityCheck.from_dict(c) for c in checks]
        self.timing = timing
        self.environ = environ

    def describe(self) -> StepDescription:
        return StepDescription(
            kind=self.kind,
            summary=f"run {len(self.checks)} read-only integrity check(s) on the database",
            changes={"checks": [c.name for c in self.checks]},
            reason="proves the data the release expects is there after a restore or migration",
            expected_seconds=5.0 * len(self.checks),
        )

    def apply(self) -> Applied:
        """Nothing to change: the checks only read, in verify."""
        return Applied(changed=False)

    def verify(self) -> list[Evidence]:
        """One evidence per check: the value read, the expectation, ok or why not."""
        require_sqlalchemy("the integrity step")
        import sqlalchemy as sa

        url = database_url(self.database_url_env, self.environ)
        secrets = url_secrets(url)
        engine = sa.create_engine(engine_url(url), poolclass=sa.pool.NullPool)
        try:
            return [self._run(engine, check, url, secrets) for check in self.checks]
        finally:
            engine.dispose()

    def compensate(self, prior: dict[str, Any]) -> None:
        """Nothing to undo: the checks never write."""

    def _run(self, engine: Any, check: IntegrityCheck, url: str, secrets: list[str]) -> Evidence:
        import sqlalchemy as sa

        observed: dict[str, Any] = {
            "name": check.name,
            "sql": check.sql,
            **check.expectation(),
            "database": database_label(url),
        }
        started = self.timing.clock()
        try:
            with engine.connect() as conn:
                transaction = conn.begin()
                try:
                    observed["read_only"] = _read_only(conn)
                    value = conn.execute(sa.text(check.sql)).scalar()
                finally:
                    transaction.rollback()
                    if engine.dialect.name == "sqlite":
                        conn.exec_driver_sql("PRAGMA query_only = OFF")
        except sa.exc.SQLAlchemyError as exc:
            observed["error"] = mask_secrets(str(exc).splitlines()[0], secrets)
            return evidence("sql:query", observed, False, f"{check.name}: the query failed")
        observed["value"] = _jsonable(value)
        observed["seconds"] = round(self.timing.clock() - started, 3)
        ok, why = check.judge(value)
        return evidence("sql:query", observed, ok, f"{check.name}: {why}" if why else "")


def _read_only(conn: Any) -> bool:
    """Make the open transaction read-only where the dialect allows; say whether it did."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        return True
    if dialect == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
        return True
    return False  # still rolled back at the end
