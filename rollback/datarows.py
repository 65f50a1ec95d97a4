"""Rows as evidence: count the rows of every table of a database instance.

The database URL comes from the variable the settings name
(ROLLBACK_DATABASE_URL): it reaches the live instance. Other instances of the
same restore (the restored copy before the swap, the one renamed aside) are
reached with the same user, password and database name at their own
endpoint; on the embedded cloud, where instance X is database X of one
loopback cluster (`rollback.rdsdata`), at the same address with the database
named after the instance.

Counts are exact (`SELECT count(*)`), per table of every schema but the
system ones, in one read-only transaction that is rolled back. The URL is
never logged or put in evidence; errors mask it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rollback.aws.endpoint import is_loopback
from rollback.errors import CheckFailed
from rollback.steps.migrate import (
    database_label,
    database_url,
    engine_url,
    mask_secrets,
    require_sqlalchemy,
    url_secrets,
)

TableRows = dict[str, int]  # "schema.table" -> rows
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def rows_digest(rows: Mapping[str, int]) -> str:
    """A short, order-independent fingerprint of per-table counts (kept in an RDS tag)."""
    canonical = json.dumps(dict(sorted(rows.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def rows_difference(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Per table, rows in `after` minus rows in `before` (tables in either), non-zero only."""
    tables = sorted(set(before) | set(after))
    return {
        t: after.get(t, 0) - before.get(t, 0) for t in tables if after.get(t, 0) != before.get(t, 0)
    }


class InstanceRows:
    """Counts rows in the live instance (the URL in `url_env`) and in its siblings."""

    def __init__(
        self, url_env: str, live_instance_id: str, environ: Mapping[str, str] | None = None
    ) -> None:
        self.url_env = url_env
        self.live_instance_id = live_instance_id
        self.environ = environ

    def configured(self) -> bool:
        env = self.environ if self.environ is not None else __import__("os").environ
        return bool(env.get(self.url_env))

    def url_for(self, instance_id: str, endpoint: str | None, port: int | None) -> str:
        """The URL of `instance_id`: the live one's URL, pointed at that instance."""
        from sqlalchemy.engine import make_url

        base = database_url(self.url_env, self.environ)
        if instance_id == self.live_instance_id:
            return base
        parsed = make_url(base)
        if is_loopback(parsed.host) and parsed.database == self.live_instance_id:
            # The embedded cloud: one cluster, one database per instance, named after it.
            return parsed.set(database=instance_id).render_as_string(hide_password=False)
        if not endpoint:
            raise CheckFailed(f"DB instance {instance_id} has no endpoint to count rows at.")
        return parsed.set(host=endpoint, port=port or parsed.port).render_as_string(
            hide_password=False
        )

    def count(
        self, instance_id: str, endpoint: str | None = None, port: int | None = None
    ) -> TableRows:
        """Rows per table of `instance_id`; raises CheckFailed (URL masked) when unreadable."""
        require_sqlalchemy("counting rows")
        return count_rows(self.url_for(instance_id, endpoint, port))

    def label(self) -> str:
        return database_label(database_url(self.url_env, self.environ))


def count_rows(url: str) -> TableRows:
    """Exact rows per table of every non-system schema at `url`, in a read-only transaction."""
    from sqlalchemy.engine import make_url

    parsed = make_url(engine_url(url))
    if parsed.get_backend_name() == "postgresql":
        return _count_postgres(parsed, url)
    return _count_any(url)


_PG_TABLES = (
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_%' "
    "ORDER BY 1, 2"
)


def _count_postgres(parsed: Any, url: str) -> TableRows:
    """psycopg straight (one connection, no reflection): the counts cost what `count(*)` costs."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    try:
        conninfo = make_conninfo(
            "",
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database,
            connect_timeout=30,
            **{str(k): str(v) for k, v in parsed.query.items()},
        )
        with psycopg.connect(conninfo) as conn:
            conn.read_only = True
            rows: TableRows = {}
            for schema, table in conn.execute(_PG_TABLES).fetchall():
                query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
                found = conn.execute(query).fetchone()
                name = table if schema == "public" else f"{schema}.{table}"
                rows[name] = int(found[0]) if found else 0
            conn.rollback()
    except psycopg.Error as exc:
        raise CheckFailed(
            f"cannot count rows in the {database_label(url)} database: "
            f"{mask_secrets(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, url_secrets(url))}"
        ) from exc
    return dict(sorted(rows.items()))


def _count_any(url: str) -> TableRows:
    """Any other database SQLAlchemy reaches (SQLite in tests), through reflection."""
    import sqlalchemy as sa

    engine = sa.create_engine(engine_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                inspector = sa.inspect(conn)
                rows: TableRows = {}
                for schema in inspector.get_schema_names():
                    if schema in _SYSTEM_SCHEMAS or schema.startswith("pg_"):
                        continue
                    for table in inspector.get_table_names(schema=schema):
                        quoted = conn.dialect.identifier_preparer.format_table(
                            sa.table(table, schema=schema)
                        )
                        count = conn.execute(sa.text(f"SELECT count(*) FROM {quoted}")).scalar()
                        name = table if schema in ("public", "main") else f"{schema}.{table}"
                        rows[name] = int(count or 0)
            finally:
                transaction.rollback()
    except sa.exc.SQLAlchemyError as exc:
        raise CheckFailed(
            f"cannot count rows in the {database_label(url)} database: "
            f"{mask_secrets(str(exc).splitlines()[0], url_secrets(url))}"
        ) from exc
    finally:
        engine.dispose()
    return dict(sorted(rows.items()))


def observed_rows(rows: TableRows) -> dict[str, Any]:
    return {"tables": rows, "total": sum(rows.values()), "digest": rows_digest(rows)}


def restore_rows(steps: Sequence[Any]) -> dict[str, Any] | None:
    """The rows a run's db-restore discarded, from its journalled detail (None: no rows counted).

    `steps` are the run's step records (`rollback.journal.StepRecord`): the
    db-restore step's `detail["rows"]` holds, per table, the rows in the live
    database before the swap (what the pre-restore snapshot and the instance
    set aside keep), in the restored snapshot, and their difference.
    """
    for record in steps:
        if record.kind == "db-restore" and isinstance(record.detail.get("rows"), dict):
            rows = dict(record.detail["rows"])
            discarded = dict(rows.get("discarded") or {})
            return {
                **rows,
                "aside_id": record.detail.get("aside_id"),
                "discarded_total": sum(n for n in discarded.values() if n > 0),
            }
    return None


def describe_restore_rows(rows: Mapping[str, Any] | None) -> str:
    """One line for people: `orders +3 (7 before the restore, 4 in the snapshot); ...`."""
    if not rows:
        return "rows not counted (no database URL was set)"
    live, snap = rows.get("live_rows") or {}, rows.get("snapshot_rows") or {}
    parts = [
        f"{table} {n:+d} ({live.get(table, 0)} before the restore, {snap.get(table, 0)} in the snapshot)"
        for table, n in sorted((rows.get("discarded") or {}).items())
    ]
    kept = (
        f"; kept in {rows['aside_id']} and the pre-restore snapshot" if rows.get("aside_id") else ""
    )
    return ("; ".join(parts) or "no rows differ") + kept
