"""The embedded cloud's lifecycle: moto's server on loopback, started and stopped by us.

`start` launches moto's server as `python -m rollback.cloudserver` detached
(RDS corrected where moto differs from AWS: `rollback.rdsfidelity`), with
fake credentials, and records `{"pid", "url", "port", "started_at", "log",
"postgres"}` in `<state_dir>/cloud.json`; where PostgreSQL's server binaries
and the psycopg driver are installed, it first starts one PostgreSQL cluster
on 127.0.0.1 (`rollback.postgres`), whose databases the server's RDS
instances and clusters then are (`rollback.rdsdata`); `stop` stops both.
`status` reads the record back and asks the process and the port; `stop`
signals exactly the recorded process after checking it is that moto server.
`is_embedded_endpoint` tells the engine selection whether an endpoint is the
embedded cloud (loopback and answering moto's own API), so a rollback of real
AWS never falls back to the embedded engine.

Nothing here imports moto: the server runs in its own process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback.aws.endpoint import is_embedded_endpoint
from rollback.errors import CheckFailed, IntegrityError, RollbackError, UsageError
from rollback.waiting import Timing, poll

log = logging.getLogger(__name__)

STATE_FILE = "cloud.json"
SERVER_MODULE = "rollback.cloudserver"  # moto's server with RDS backed by PostgreSQL
LOG_FILE = "cloud.log"
HOST = "127.0.0.1"
REGION = "us-east-1"
# A path only moto serves (a small JSON document), so a real AWS endpoint or
# another local HTTP server is never mistaken for the embedded cloud.
START_TIMEOUT = 60.0  # seconds; moto imports its service catalogue on start
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
DEFAULT_TIMING = Timing()

# Variables that could lead the server (or a client told to use it) to real AWS.
_REAL_CREDENTIALS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
)


@dataclass(frozen=True)
class CloudState:
    """A recorded embedded cloud: its process, address and log file."""

    pid: int
    url: str
    port: int
    started_at: str  # ISO 8601, UTC
    log: str
    postgres: dict[str, Any] | None = None  # the PostgreSQL cluster's record, None: no data
    already_running: bool = False  # True when start() found it running and changed nothing

    def record(self) -> dict[str, Any]:
        """The document stored in cloud.json (without the per-call flag)."""
        data = asdict(self)
        del data["already_running"]
        return data

    @classmethod
    def from_record(cls, data: Any, path: Path) -> CloudState:
        """Read a cloud.json document; raises IntegrityError when it is malformed."""
        try:
            return cls(
                pid=int(data["pid"]),
                url=str(data["url"]),
                port=int(data["port"]),
                started_at=str(data["started_at"]),
                log=str(data["log"]),
                postgres=dict(data["postgres"]) if data.get("postgres") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"{path} is not a cloud record ({exc}); delete it and run `rollback cloud start`.",
                path=str(path),
            ) from exc


@dataclass(frozen=True)
class CloudStatus:
    """What is recorded, and whether that process lives and answers."""

    recorded: bool
    alive: bool
    answering: bool
    state: CloudState | None
    message: str


@dataclass(frozen=True)
class CloudStopped:
    """The outcome of stop(): which process was stopped, if any."""

    stopped: bool
    pid: int | None
    message: str


def fake_environment(url: str, region: str = REGION) -> dict[str, str]:
    """The variables that point AWS clients at the embedded cloud with fake credentials."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def unsafe_variables() -> tuple[str, ...]:
    """Variables to unset in a shell pointed at the embedded cloud (real credentials, profile)."""
    return tuple(name for name in _REAL_CREDENTIALS if name != "AWS_ENDPOINT_URL")


def start(state_dir: Path, port: int | None = None, timing: Timing = DEFAULT_TIMING) -> CloudState:
    """Start moto's server on 127.0.0.1 (a free port unless `port`) and record it.

    Idempotent: a recorded server that answers is returned with
    `already_running=True`. Raises UsageError when `port` is taken or differs
    from the running one's, CheckFailed when the server does not answer within
    START_TIMEOUT seconds (the log file says why).
    """
    current = status(state_dir)
    if current.state is not None and current.alive:
        running = current.state
        if port is not None and port != running.port:
            raise UsageError(
                f"an embedded cloud already runs at {running.url}; run `rollback cloud stop` "
                f"before starting one on port {port}.",
                url=running.url,
            )
        if not current.answering:
            # Recorded and alive but still importing: wait for it rather than start a second.
            _wait_until_answering(running, state_dir, timing)
        return CloudState(**running.record(), already_running=True)
    if port is None:
        port = _free_port()
    elif not _port_is_free(port):
        raise UsageError(
            f"port {port} on {HOST} is already in use; choose another with --port or omit it.",
            port=port,
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir.resolve() / LOG_FILE
    cluster = _start_postgres(state_dir)
    env = _server_environment()
    module = SERVER_MODULE  # moto with rollback.rdsfidelity, and rdsdata when PostgreSQL runs
    if cluster is not None:
        from rollback.cloudserver import POSTGRES_ENV

        env[POSTGRES_ENV] = json.dumps(cluster.record())
    try:
        with open(log, "ab") as log_stream:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "-H", HOST, "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # survives the CLI and its terminal's Ctrl-C
                close_fds=True,
            )
    except OSError:
        _stop_postgres(cluster)
        raise
    state = CloudState(
        pid=process.pid,
        url=f"http://{HOST}:{port}",
        port=port,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        log=str(log),
        postgres=cluster.record() if cluster else None,
    )
    _write_record(state_dir, state)
    try:
        _wait_until_answering(state, state_dir, timing, process)
    except CheckFailed:
        _terminate(state.pid, timing)
        _stop_postgres(cluster)
        _remove_record(state_dir)
        raise
    # The server outlives this process on purpose; stop() signals it by pid.
    return state


def status(state_dir: Path) -> CloudStatus:
    """Read the record and check the process (alive and ours) and the port (answering)."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return CloudStatus(False, False, False, None, "no embedded cloud is recorded.")
    state = _read_record(path)
    alive = _is_our_server(state)
    answering = alive and is_embedded_endpoint(state.url)
    if answering:
        message = f"the embedded cloud answers at {state.url} (pid {state.pid})."
        cluster = postgres_cluster(state)
        message += (
            f" RDS databases are PostgreSQL at {cluster.address}."
            if cluster is not None
            else " RDS databases hold no data."
        )
    elif alive:
        message = f"the embedded cloud (pid {state.pid}) runs but does not answer at {state.url}; see {state.log}."
    else:
        message = f"the embedded cloud recorded at {state.url} (pid {state.pid}) is not running; run `rollback cloud start`."
    return CloudStatus(True, alive, answering, state, message)


def stop(state_dir: Path, timing: Timing = DEFAULT_TIMING) -> CloudStopped:
    """Stop exactly the recorded server (SIGTERM, then SIGKILL) and remove the record.

    Idempotent: nothing recorded, or a recorded process that is gone, is not an
    error. A recorded pid now used by another program is never signalled.
    """
    path = state_dir / STATE_FILE
    if not path.exists():
        return CloudStopped(False, None, "the embedded cloud is not running; nothing to stop.")
    state = _read_record(path)
    _stop_postgres(postgres_cluster(state))
    if not _is_our_server(state):
        _remove_record(state_dir)
        return CloudStopped(
            False,
            state.pid,
            f"the embedded cloud (pid {state.pid}) was not running; removed its stale record.",
        )
    _terminate(state.pid, timing)
    _remove_record(state_dir)
    return CloudStopped(True, state.pid, f"stopped the embedded cloud (pid {state.pid}). {FORGOTTEN}")


# moto keeps its resources in memory only; saying so at stop beats errors about
# missing listeners after the next start.
FORGOTTEN = (
    "It kept everything in memory, so its resources (stack, load balancer, DNS, "
    "databases, snapshots) are gone: the next `cloud start` begins empty, and releases "
    "recorded against this one name resources that no longer exist."
)


def postgres_cluster(state: CloudState | None) -> Any:
    """The recorded PostgreSQL cluster (`rollback.postgres.Cluster`), or None."""
    if state is None or not state.postgres:
        return None
    from rollback.postgres import Cluster

    return Cluster.from_record(state.postgres)


def no_data_reason() -> str | None:
    """Why RDS would keep metadata only (no PostgreSQL to back it), or None when it can."""
    from rollback import postgres

    if postgres.find_bin_dir() is None:
        return (
            "PostgreSQL's server binaries are not installed (Debian: apt-get install "
            "postgresql); RDS keeps metadata only."
        )
    if not postgres.driver_available():
        return (
            f"the psycopg driver is not installed (pip install 'rollback[{postgres.EXTRA}]'); "
            "RDS keeps metadata only."
        )
    return None


def databases(state_dir: Path) -> dict[str, Any]:
    """The running cloud's PostgreSQL address and databases (`{name: what it backs}`).

    Raises CheckFailed when no cloud runs or it runs without PostgreSQL.
    """
    from rollback import rdsdata

    found = status(state_dir)
    cluster = postgres_cluster(found.state)
    if not found.alive or cluster is None:
        raise CheckFailed(
            "no embedded cloud with PostgreSQL runs here; "
            + (
                found.message
                if not found.alive
                else (no_data_reason() or "it was started without it.")
            ),
        )
    return {
        "address": cluster.address,
        "host": "127.0.0.1",
        "port": cluster.port,
        "databases": rdsdata.DatabaseBacking(cluster).databases(),
    }


def _start_postgres(state_dir: Path) -> Any:
    """Start the cluster that backs RDS, or None (logged once) when it cannot be."""
    from rollback import postgres

    reason = no_data_reason()
    if reason is not None:
        log.info("the embedded cloud's databases hold no data: %s", reason)
        return None
    bin_dir = postgres.find_bin_dir()
    assert bin_dir is not None  # no_data_reason said so
    try:
        return postgres.start(state_dir, bin_dir)
    except RollbackError as exc:
        # The cloud still serves AWS; the one line the CLI prints says the data is missing.
        log.warning("PostgreSQL did not start (%s); RDS keeps metadata only.", exc.message)
        return None


def _stop_postgres(cluster: Any) -> None:
    if cluster is not None:
        from rollback import postgres

        postgres.stop(cluster)


def _server_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REAL_CREDENTIALS}
    env.update(fake_environment("", env.get("AWS_REGION") or REGION))
    del env["AWS_ENDPOINT_URL"]
    # No profile or credentials file can be read: the server never holds real keys.
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    # Programs attach AWS managed policies (AmazonECSTaskExecutionRolePolicy...),
    # which real accounts always have; moto loads them only when asked.
    env.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    return env


def _wait_until_answering(
    state: CloudState,
    state_dir: Path,
    timing: Timing,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    def probe() -> bool | None:
        if process is not None and process.poll() is not None:
            raise CheckFailed(
                f"the embedded cloud exited with code {process.returncode} while starting; "
                f"see {state.log}.",
                log=state.log,
            )
        return True if is_embedded_endpoint(state.url) else None

    poll(
        f"the embedded cloud at {state.url}",
        probe,
        timeout=START_TIMEOUT,
        timing=timing,
        interval=0.1,
        max_interval=1.0,
        observe=lambda: f"not answering yet (moto loads its services; log {state.log})",
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _read_record(path: Path) -> CloudState:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"{path} cannot be read ({exc}); delete it and run `rollback cloud start`.",
            path=str(path),
        ) from exc
    return CloudState.from_record(data, path)


def _write_record(state_dir: Path, state: CloudState) -> None:
    path = state_dir / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.record(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # readers never see half a record


def _remove_record(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()


def _is_our_server(state: CloudState) -> bool:
    """The pid runs (not a zombie) and its command line is moto.server on the recorded port.

    An unreadable or empty command line (a process mid-exec shows none) is not
    a match: when in doubt, the process is not ours to signal.
    """
    if not _is_running(state.pid):
        return False
    argv = _command_line(state.pid)
    return ("moto.server" in argv or SERVER_MODULE in argv) and str(state.port) in argv


def _is_running(pid: int) -> bool:
    """The process exists and is not a zombie (reaping it first when it is our child)."""
    _reap(pid)
    if not Path("/proc/self").exists():  # no procfs (macOS): existence is all we can ask
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: it exists
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name: Z (zombie) and X (dead) run nothing.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _command_line(pid: int) -> list[str]:
    """The process's argv; empty when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return []
        # No procfs (macOS): ask ps, which prints nothing for a missing pid.
        result = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        return result.stdout.split()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (a test started it in-process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _terminate(pid: int, timing: Timing) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL; a missing process is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)

    def gone() -> bool | None:
        return None if _is_running(pid) else True

    try:
        poll(
            f"pid {pid} to exit",
            gone,
            timeout=STOP_TIMEOUT,
            timing=timing,
            interval=0.05,
            max_interval=0.5,
        )
    except CheckFailed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        poll(
            f"pid {pid} to exit after SIGKILL",
            gone,
            timeout=STOP_TIMEOUT,
            timing=timing,
            interval=0.05,
            max_interval=0.5,
        )
