"""A local PostgreSQL cluster for the embedded cloud: find the binaries, init, start, stop.

The embedded cloud runs one cluster on 127.0.0.1 (a free port) next to moto's
server; `rollback.rdsdata` backs each RDS instance with a database in it.
The cluster is made fresh on every start (moto forgets everything when it
stops, so must the data).

Who runs the server: PostgreSQL refuses to run as root. When this process is
root, the cluster runs as the `postgres` system user (Debian's package makes
it), its data and socket directories owned by that user.

How we connect as administrator: over a Unix socket in a private directory
(mode 0700, a short path under the temporary directory: socket paths are
limited to ~100 bytes), with `trust` for local connections. Only the
server's user and root can reach that socket. TCP on 127.0.0.1 needs a
password (SCRAM): that is how applications connect, as the instance's master
user.

Passwords are never sent in plain text: `scram_verifier` computes the
SCRAM-SHA-256 verifier here (RFC 5802 / RFC 7677), and `CREATE ROLE ...
PASSWORD '<verifier>'` stores it, so neither the server's log nor
pg_stat_activity ever holds the password.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rollback.errors import CheckFailed, ConfigError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ADMIN_USER = "rollback"
SERVER_USER_WHEN_ROOT = "postgres"
EXTRA = "postgres"  # the optional dependency set: pip install 'rollback[postgres]'
_BINARIES = ("initdb", "pg_ctl", "postgres")
_SCRAM_ITERATIONS = 4096
START_TIMEOUT_S = 60
# An emulator's cluster: durability across a machine crash buys nothing (the
# cloud starts empty every time), speed of CREATE DATABASE and bulk loads does.
_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "unix_socket_permissions": "0700",
    "log_min_messages": "warning",
}


@dataclass(frozen=True)
class Cluster:
    """A running cluster: where it listens, its directories, who runs it."""

    port: int
    data_dir: str
    socket_dir: str
    bin_dir: str
    server_user: str  # the OS user the server runs as
    pid: int | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Cluster:
        return cls(
            port=int(data["port"]),
            data_dir=str(data["data_dir"]),
            socket_dir=str(data["socket_dir"]),
            bin_dir=str(data["bin_dir"]),
            server_user=str(data["server_user"]),
            pid=int(data["pid"]) if data.get("pid") is not None else None,
        )

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def admin_conninfo(self, dbname: str = "postgres") -> dict[str, Any]:
        """psycopg connection arguments for the administrator (Unix socket, trust)."""
        return {"host": self.socket_dir, "port": self.port, "user": ADMIN_USER, "dbname": dbname}

    def url(self, user: str, database: str) -> str:
        """`postgresql://user@127.0.0.1:port/database`: no password, for display and docs."""
        return f"postgresql://{user}@{HOST}:{self.port}/{database}"


def find_bin_dir(environ: dict[str, str] | None = None) -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when they are not installed.

    `ROLLBACK_POSTGRES_BIN`, when set, is the only place looked at (a
    directory without them turns real data off); otherwise PATH, then Debian's
    /usr/lib/postgresql/<version>/bin (newest version first), which is not on PATH.
    """
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if "ROLLBACK_POSTGRES_BIN" in env:
        chosen = Path(env["ROLLBACK_POSTGRES_BIN"])
        return chosen if all(os.access(chosen / n, os.X_OK) for n in _BINARIES) else None
    found = shutil.which("pg_ctl", path=env.get("PATH"))
    if found:
        candidates.append(Path(found).resolve().parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        candidates.extend(p / "bin" for p in reversed(versions))
    for candidate in candidates:
        if all(os.access(candidate / name, os.X_OK) for name in _BINARIES):
            return candidate
    return None


def driver_available() -> bool:
    """True when psycopg (v3) can be imported."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


def require_driver(what: str) -> None:
    """Raise ConfigError (exit 2) naming the extra to install when psycopg is missing."""
    if not driver_available():
        raise ConfigError(
            f"{what} needs the PostgreSQL driver; install it with "
            f"`pip install 'rollback[{EXTRA}]'`.",
            extra=EXTRA,
        )


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 7677).

    Sent as the role's password, it lets the server authenticate the password
    without ever receiving it. `salt` is random unless given (tests).
    """
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt).decode()}$"
        f"{b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def start(data_parent: Path, bin_dir: Path, port: int | None = None) -> Cluster:
    """Init a fresh cluster under `data_parent` (or a private temporary directory when the
    server's user cannot reach it) and start it on 127.0.0.1.

    Raises ConfigError when running as root without a `postgres` user,
    CheckFailed when initdb or the server fails (with the log's tail).
    """
    server_user, uid, gid = _server_user()
    data_dir = _data_dir(data_parent, uid, gid)
    socket_dir = Path(tempfile.mkdtemp(prefix="rbpg-"))
    os.chown(socket_dir, uid, gid)
    socket_dir.chmod(0o700)
    port = port or _free_port()
    owner = (uid, gid) if os.geteuid() == 0 else None
    init = _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            ADMIN_USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        owner,
        str(data_dir.parent),
    )
    if init.returncode != 0:
        raise CheckFailed(
            f"initdb failed for the embedded cloud's PostgreSQL: {_tail(init.stderr)}",
            data_dir=str(data_dir),
        )
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# rollback embedded cloud\n")
        for key, value in _SETTINGS.items():
            conf.write(f"{key} = '{value}'\n")
        conf.write(f"listen_addresses = '{HOST}'\nport = {port}\n")
        conf.write(f"unix_socket_directories = '{socket_dir}'\n")
    logfile = data_dir / "server.log"
    started = _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(logfile),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-s",
            "start",
        ],
        owner,
        str(data_dir),
    )
    if started.returncode != 0:
        detail = _tail(logfile.read_text(errors="replace") if logfile.exists() else started.stderr)
        raise CheckFailed(
            f"the embedded cloud's PostgreSQL did not start on port {port}: {detail}",
            port=port,
        )
    cluster = Cluster(port, str(data_dir), str(socket_dir), str(bin_dir), server_user)
    return Cluster(**{**cluster.record(), "pid": _postmaster_pid(data_dir)})


def stop(cluster: Cluster) -> bool:
    """Stop the cluster (fast shutdown) and remove its directories; False when it was not running."""
    data_dir = Path(cluster.data_dir)
    running = (data_dir / "postmaster.pid").exists()
    if running:
        owner = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam(cluster.server_user)
            owner = (entry.pw_uid, entry.pw_gid)
        _run(
            [
                str(Path(cluster.bin_dir) / "pg_ctl"),
                "-D",
                str(data_dir),
                "-m",
                "fast",
                "-w",
                "-s",
                "stop",
            ],
            owner,
            "/",
        )
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(cluster.socket_dir, ignore_errors=True)
    return running


def is_running(cluster: Cluster) -> bool:
    """The cluster answers on its admin socket."""
    try:
        with admin(cluster) as conn:
            conn.execute("SELECT 1")
    except Exception:  # psycopg.Error, OSError, ImportError: not answering, whatever the cause
        return False
    return True


@contextlib.contextmanager
def admin(cluster: Cluster, dbname: str = "postgres") -> Iterator[Any]:
    """An autocommit administrator connection (psycopg) to `dbname`."""
    import psycopg

    conn = psycopg.connect(**cluster.admin_conninfo(dbname), autocommit=True, connect_timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def _run(
    argv: list[str], owner: tuple[int, int] | None, cwd: str
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as `owner` (uid, gid) when given (we are root), in its
    own session so that a server it starts outlives the CLI and its terminal's Ctrl-C."""
    if owner is None:
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, cwd=cwd, start_new_session=True
        )
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        start_new_session=True,
        user=owner[0],
        group=owner[1],
        extra_groups=[],
    )


def _server_user() -> tuple[str, int, int]:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return entry.pw_name, entry.pw_uid, entry.pw_gid
    try:
        entry = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
    except KeyError as exc:
        raise ConfigError(
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as; "
            "install Debian's postgresql package (it creates the user) or run as another user.",
        ) from exc
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def _data_dir(data_parent: Path, uid: int, gid: int) -> Path:
    """`<data_parent>/postgres` when the server's user can reach it, else a private
    temporary directory (pytest's and many home directories are 0700 to root)."""
    data_parent.mkdir(parents=True, exist_ok=True)
    if _reachable_by(data_parent.resolve(), uid, gid):
        data_dir = data_parent / "postgres"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir()
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="rollback-postgres-"))
    os.chown(data_dir, uid, gid)
    data_dir.chmod(0o700)
    return data_dir.resolve()


def _reachable_by(path: Path, uid: int, gid: int) -> bool:
    """`path` and every ancestor are searchable by uid/gid (mode bits only): the data
    directory itself is made by us and handed to that user."""
    if uid == os.geteuid():
        return os.access(path, os.X_OK)
    for part in [*reversed(path.parents), path]:
        st = part.stat()
        if st.st_uid == uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid == gid:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        if not bits & 1:
            return False
    return True


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"
