"""Real databases behind the embedded cloud's RDS: each instance (and Aurora cluster) is a
PostgreSQL database, each snapshot a real copy.

Why a hook inside moto's server, not reconciliation in our RDS wrapper: the
instance is created by the stack engine (embedded or Pulumi), snapshots by
`release record`, restores and renames by the steps, and anyone may call RDS
with boto3 directly (a test, an operator). Only the server sees every call,
in order, at the moment it happens; a wrapper would miss the calls it does
not make and could not refuse a snapshot whose copy failed. The hook wraps
the RDS backend's own methods (moto 5.x `RDSBackend`), calls the original
first (so moto's validation and errors are unchanged) and then does the data
operation; when that fails, it undoes moto's record and answers an error, so
a snapshot is never "available" without its rows.

The mapping an application uses: instance (or cluster) `X` is the database
named `X` in the cluster at 127.0.0.1:<port>, reached as the master user
with the master password. A rename renames the database (the endpoint
follows the name, as on RDS); delete drops it. A snapshot is a database of
its own (`rds-snapshot-<hash>`, commented with the snapshot's identifier)
that refuses connections, so nothing writes into a snapshot. Automated
snapshots are not backed (only what a caller asks for is copied).

Copies use `CREATE DATABASE ... TEMPLATE`, which needs the source to have no
other session. A snapshot never cuts clients off (an RDS snapshot does not):
when the instance's database has sessions, the copy is `pg_dump | pg_restore`
instead (a consistent snapshot, slower). A rename does close the sessions,
as the reboot of an RDS rename does; clients reconnect.

Engines other than PostgreSQL (mysql, ...) are not backed; they keep moto's
metadata only.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rollback.postgres import ADMIN_USER, Cluster, admin, scram_verifier

log = logging.getLogger(__name__)

BACKED_ENGINES = frozenset({"postgres", "aurora-postgresql"})
# PostgreSQL 15's CREATE DATABASE strategies: FILE_COPY copies the files (two
# checkpoints, no WAL for the data), WAL_LOG copies block by block through the
# WAL (no checkpoint: cheaper for small databases). Above this size FILE_COPY
# (bench/data.py measures both on a 1 GiB database).
FILE_COPY_ABOVE_BYTES = 16 * 1024 * 1024


def snapshot_database(snapshot_id: str) -> str:
    """The database holding a snapshot's copy: a name within PostgreSQL's 63 bytes."""
    return f"rds-snapshot-{hashlib.sha256(snapshot_id.encode()).hexdigest()[:24]}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DatabaseBacking:
    """The data operations behind RDS calls, on one cluster. Thread-safe (one at a time)."""

    def __init__(self, cluster: Cluster, strategy: str | None = None) -> None:
        """`strategy` forces FILE_COPY or WAL_LOG; None chooses by the source's size."""
        self.cluster = cluster
        self.strategy = strategy
        self._lock = threading.Lock()

    def create(self, name: str, username: str | None, password: str | None) -> None:
        """An empty database `name` owned by the master user (made or updated); a stale one
        of that name (left by a reset of moto) is dropped first."""
        with self._lock, admin(self.cluster) as conn:
            owner = self._role(conn, username, password)
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
            conn.execute(
                f"CREATE DATABASE {_ident(name)}" + (f" OWNER {_ident(owner)}" if owner else "")
            )
            conn.execute(f"COMMENT ON DATABASE {_ident(name)} IS {_literal(f'rds {name}')}")

    def snapshot(self, snapshot_id: str, source: str) -> None:
        """Copy database `source` into the snapshot's database, which then refuses connections."""
        target = snapshot_database(snapshot_id)
        with self._lock, admin(self.cluster) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(target)} WITH (FORCE)")
            if self._sessions(conn, source):
                self._dump_copy(conn, source, target)  # a snapshot never cuts clients off
            else:
                self._copy(conn, source, target)
            conn.execute(
                f"COMMENT ON DATABASE {_ident(target)} IS "
                f"{_literal(f'rds snapshot {snapshot_id} of {source}')}"
            )
            conn.execute(f"ALTER DATABASE {_ident(target)} ALLOW_CONNECTIONS false")

    def copy_snapshot(self, source_id: str, target_id: str) -> None:
        source, target = snapshot_database(source_id), snapshot_database(target_id)
        with self._lock, admin(self.cluster) as conn:
            self._copy(conn, source, target)
            conn.execute(
                f"COMMENT ON DATABASE {_ident(target)} IS {_literal(f'rds snapshot {target_id}')}"
            )
            conn.execute(f"ALTER DATABASE {_ident(target)} ALLOW_CONNECTIONS false")

    def restore(self, name: str, snapshot_id: str, username: str | None) -> None:
        """Database `name` as a copy of the snapshot's database."""
        source = snapshot_database(snapshot_id)
        with self._lock, admin(self.cluster) as conn:
            if not self._exists(conn, source):
                raise LookupError(f"snapshot {snapshot_id} has no data copy in the embedded cloud")
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
            owner = self._role(conn, username, None)
            self._copy(conn, source, name, owner)
            conn.execute(f"COMMENT ON DATABASE {_ident(name)} IS {_literal(f'rds {name}')}")

    def rename(self, old: str, new: str) -> None:
        """The database follows its instance's new name; open sessions are closed (a rename
        reboots an RDS instance too)."""
        with self._lock, admin(self.cluster) as conn:
            if not self._exists(conn, old):
                return
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(new)} WITH (FORCE)")
            self._disconnect(conn, old)
            conn.execute(f"ALTER DATABASE {_ident(old)} RENAME TO {_ident(new)}")
            conn.execute(f"COMMENT ON DATABASE {_ident(new)} IS {_literal(f'rds {new}')}")

    def drop(self, name: str) -> None:
        with self._lock, admin(self.cluster) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def drop_snapshot(self, snapshot_id: str) -> None:
        self.drop(snapshot_database(snapshot_id))

    def set_password(self, username: str, password: str) -> None:
        with self._lock, admin(self.cluster) as conn:
            self._role(conn, username, password)

    def databases(self) -> dict[str, str]:
        """Every backed database and its comment (`rds X`, `rds snapshot S of X`)."""
        with admin(self.cluster) as conn:
            rows = conn.execute(
                "SELECT d.datname, coalesce(shobj_description(d.oid, 'pg_database'), '') "
                "FROM pg_database d WHERE NOT d.datistemplate AND d.datname <> 'postgres' "
                "ORDER BY 1"
            ).fetchall()
        return {str(name): str(comment) for name, comment in rows}

    # internals

    def _copy(self, conn: Any, source: str, target: str, owner: str | None = None) -> None:
        strategy = self.strategy
        if strategy is None:
            size = conn.execute("SELECT pg_database_size(%s)", (source,)).fetchone()[0]
            strategy = "FILE_COPY" if size > FILE_COPY_ABOVE_BYTES else "WAL_LOG"
        self._disconnect(conn, source)
        conn.execute(
            f"CREATE DATABASE {_ident(target)} TEMPLATE {_ident(source)} "
            f"STRATEGY {strategy}" + (f" OWNER {_ident(owner)}" if owner else "")
        )

    def _dump_copy(self, conn: Any, source: str, target: str) -> None:
        """Copy a database that has sessions: pg_dump's consistent snapshot piped into
        pg_restore (slower than a template copy, but nobody is disconnected)."""
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (source,)
        ).fetchone()[0]
        conn.execute(f"CREATE DATABASE {_ident(target)} TEMPLATE template0 OWNER {_ident(owner)}")
        where = ["-h", self.cluster.socket_dir, "-p", str(self.cluster.port), "-U", ADMIN_USER]
        bin_dir = Path(self.cluster.bin_dir)
        dump = subprocess.Popen(
            [str(bin_dir / "pg_dump"), *where, "-Fc", "-Z0", "-d", source],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        restore = subprocess.run(
            [str(bin_dir / "pg_restore"), *where, "--exit-on-error", "-d", target],
            stdin=dump.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert dump.stdout is not None and dump.stderr is not None
        dump.stdout.close()
        dump_errors = dump.stderr.read().decode(errors="replace")
        if dump.wait() != 0 or restore.returncode != 0:
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(target)} WITH (FORCE)")
            raise RuntimeError(
                f"copying {source} with pg_dump failed: {(dump_errors + restore.stderr).strip()[:300]}"
            )

    @staticmethod
    def _sessions(conn: Any, name: str) -> int:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
        return int(found[0])

    @staticmethod
    def _disconnect(conn: Any, name: str) -> None:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )

    @staticmethod
    def _exists(conn: Any, name: str) -> bool:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )

    @staticmethod
    def _role(conn: Any, username: str | None, password: str | None) -> str | None:
        """Make the login role `username` (or update its password); the password only
        ever travels as a SCRAM verifier."""
        if not username:
            return None
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)).fetchone()
        secret = f" PASSWORD {_literal(scram_verifier(password))}" if password else ""
        if exists is None:
            conn.execute(f"CREATE ROLE {_ident(username)} LOGIN CREATEDB{secret}")
        elif secret:
            conn.execute(f"ALTER ROLE {_ident(username)}{secret}")
        return username


# The hook inside moto's server.

_backing: DatabaseBacking | None = None
_installed = False
_local = threading.local()


def install(backing: DatabaseBacking | None) -> None:
    """Back moto's RDS with `backing` from now on (None: metadata only again).

    Patches moto's RDSBackend once per process; with no backing the wrappers
    only call the originals.
    """
    global _backing, _installed
    _backing = backing
    if _installed:
        return
    from moto.rds.models import RDSBackend

    for name, after in _HOOKS.items():
        setattr(RDSBackend, name, _wrap(getattr(RDSBackend, name), after))
    _installed = True


def current() -> DatabaseBacking | None:
    return _backing


def _wrap(original: Callable[..., Any], after: Callable[..., None]) -> Callable[..., Any]:
    @functools.wraps(original)
    def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
        backing = _backing
        if backing is None or getattr(_local, "nested", False):
            return original(self, *args, **kwargs)
        # moto rewrites some argument dictionaries (a cluster's new name): keep what was asked.
        asked = [dict(a.items()) if isinstance(a, Mapping) else a for a in args]
        _local.nested = True  # a restore creates an instance inside moto: one data step only
        try:
            result = original(self, *args, **kwargs)
        finally:
            _local.nested = False
        try:
            after(backing, self, result, *asked, **kwargs)
        except Exception as exc:
            log.exception("the embedded cloud's data operation failed")
            from moto.rds.exceptions import RDSClientError

            raise RDSClientError(
                "InternalFailure",
                f"the embedded cloud's PostgreSQL could not follow this call: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}",
            ) from exc
        return result

    return hooked


def _backed(resource: Any) -> bool:
    return str(getattr(resource, "engine", "")) in BACKED_ENGINES


def _password(asked: dict[str, Any]) -> str | None:
    """The master password as the caller sent it (moto keeps it write-only)."""
    value = asked.get("master_user_password")
    return str(value) if value else None


def _after_create_instance(
    b: DatabaseBacking, backend: Any, db: Any, db_kwargs: dict[str, Any], *_: Any, **__: Any
) -> None:
    if not _backed(db) or getattr(db, "db_cluster_identifier", None):
        return  # an Aurora member shares its cluster's database
    try:
        b.create(db.db_instance_identifier, db.master_username, _password(db_kwargs))
    except Exception:
        backend.databases.pop(db.db_instance_identifier, None)
        raise


def _after_create_cluster(
    b: DatabaseBacking, backend: Any, cluster: Any, kwargs: dict[str, Any], *_: Any, **__: Any
) -> None:
    if not _backed(cluster):
        return
    try:
        b.create(cluster.db_cluster_identifier, cluster.master_username, _password(kwargs))
    except Exception:
        backend.clusters.pop(cluster.db_cluster_identifier, None)
        raise


def _after_snapshot(
    b: DatabaseBacking,
    backend: Any,
    snap: Any,
    db_instance_identifier: str,
    db_snapshot_identifier: str,
    snapshot_type: str = "manual",
    *_: Any,
    **__: Any,
) -> None:
    if snapshot_type != "manual" or not _backed(snap.database):
        return
    try:
        b.snapshot(db_snapshot_identifier, db_instance_identifier)
    except Exception:
        backend.database_snapshots.pop(db_snapshot_identifier, None)
        raise


def _after_cluster_snapshot(
    b: DatabaseBacking,
    backend: Any,
    snap: Any,
    db_cluster_identifier: str,
    db_cluster_snapshot_identifier: str,
    snapshot_type: str = "manual",
    *_: Any,
    **__: Any,
) -> None:
    if snapshot_type != "manual" or not _backed(snap.cluster):
        return
    try:
        b.snapshot(db_cluster_snapshot_identifier, db_cluster_identifier)
    except Exception:
        backend.cluster_snapshots.pop(db_cluster_snapshot_identifier, None)
        raise


def _after_copy_snapshot(
    b: DatabaseBacking, backend: Any, snap: Any, source: str, target: str, *_: Any, **__: Any
) -> None:
    if not _backed(snap.database):
        return
    source_id = source.rsplit(":", 1)[-1] if source.startswith("arn:") else source
    try:
        b.copy_snapshot(source_id, target)
    except Exception:
        backend.database_snapshots.pop(target, None)
        raise


def _after_restore_instance(
    b: DatabaseBacking, backend: Any, db: Any, from_snapshot_id: str, *_: Any, **__: Any
) -> None:
    if not _backed(db):
        return
    snapshot_id = (
        from_snapshot_id.rsplit(":", 1)[-1]
        if from_snapshot_id.startswith("arn:")
        else from_snapshot_id
    )
    try:
        b.restore(db.db_instance_identifier, snapshot_id, db.master_username)
    except Exception:
        backend.databases.pop(db.db_instance_identifier, None)
        raise


def _after_restore_cluster(
    b: DatabaseBacking, backend: Any, cluster: Any, from_snapshot_id: str, *_: Any, **__: Any
) -> None:
    if not _backed(cluster):
        return
    try:
        b.restore(cluster.db_cluster_identifier, from_snapshot_id, cluster.master_username)
    except Exception:
        backend.clusters.pop(cluster.db_cluster_identifier, None)
        raise


def _after_modify_instance(
    b: DatabaseBacking,
    backend: Any,
    db: Any,
    db_instance_identifier: str,
    db_kwargs: dict[str, Any],
    *_: Any,
    **__: Any,
) -> None:
    if not _backed(db) or getattr(db, "db_cluster_identifier", None):
        return
    new = db.db_instance_identifier
    if new != db_instance_identifier:
        b.rename(db_instance_identifier, new)
    if db_kwargs.get("master_user_password"):
        b.set_password(db.master_username, str(db_kwargs["master_user_password"]))


def _after_modify_cluster(
    b: DatabaseBacking, backend: Any, cluster: Any, kwargs: dict[str, Any], *_: Any, **__: Any
) -> None:
    if not _backed(cluster):
        return
    old = kwargs.get("db_cluster_identifier")
    new = cluster.db_cluster_identifier
    if old and new != old:
        b.rename(str(old), new)
    if kwargs.get("master_user_password"):
        b.set_password(cluster.master_username, str(kwargs["master_user_password"]))


def _after_delete_instance(
    b: DatabaseBacking,
    backend: Any,
    db: Any,
    *_: Any,
    final_db_snapshot_identifier: str | None = None,
    skip_final_snapshot: bool | None = False,
    **__: Any,
) -> None:
    if not _backed(db) or getattr(db, "db_cluster_identifier", None):
        return
    if final_db_snapshot_identifier and not skip_final_snapshot:
        b.snapshot(final_db_snapshot_identifier, db.db_instance_identifier)
    b.drop(db.db_instance_identifier)


def _after_delete_cluster(
    b: DatabaseBacking,
    backend: Any,
    cluster: Any,
    cluster_identifier: str = "",
    snapshot_name: str | None = None,
    *_: Any,
    **__: Any,
) -> None:
    if not _backed(cluster):
        return
    if snapshot_name:
        b.snapshot(snapshot_name, cluster.db_cluster_identifier)
    b.drop(cluster.db_cluster_identifier)


def _after_delete_snapshot(b: DatabaseBacking, backend: Any, snap: Any, *_: Any, **__: Any) -> None:
    b.drop_snapshot(_snapshot_id(snap))


def _snapshot_id(snap: Any) -> str:
    for attr in ("db_snapshot_identifier", "db_cluster_snapshot_identifier", "snapshot_id"):
        value = getattr(snap, attr, None)
        if value:
            return str(value)
    raise LookupError("a deleted snapshot without an identifier")


_HOOKS: dict[str, Callable[..., None]] = {
    "create_db_instance": _after_create_instance,
    "create_db_snapshot": _after_snapshot,
    "copy_db_snapshot": _after_copy_snapshot,
    "restore_db_instance_from_db_snapshot": _after_restore_instance,
    "modify_db_instance": _after_modify_instance,
    "delete_db_instance": _after_delete_instance,
    "delete_db_snapshot": _after_delete_snapshot,
    "create_db_cluster": _after_create_cluster,
    "create_db_cluster_snapshot": _after_cluster_snapshot,
    "restore_db_cluster_from_snapshot": _after_restore_cluster,
    "modify_db_cluster": _after_modify_cluster,
    "delete_db_cluster": _after_delete_cluster,
    "delete_db_cluster_snapshot": _after_delete_snapshot,
}
