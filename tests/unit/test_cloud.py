"""rollback.cloud in-process: endpoint detection, the record, and whom stop() may signal.

Stand-in processes carry `moto.server` and a port in their argv, so stop()'s
identity check sees what it would see for the real server; the functional
tests start the real one.
"""

from __future__ import annotations

import http.server
import json
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollback import cloud
from rollback.aws.endpoint import is_embedded_endpoint
from rollback.errors import CheckFailed, IntegrityError, UsageError
from rollback.waiting import Timing

# Stand-ins say "ready" once running (and, for IGNORE_TERM, once SIGTERM is ignored).
IGNORE_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)
SLEEP = "import time; print('ready', flush=True); time.sleep(60)"


class FakeTime:
    """A clock that moves only when slept on; sleeping waits for `event` instead, if set."""

    def __init__(self) -> None:
        self.now = 0.0
        self.event: Callable[[], None] | None = None

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.event is not None:
            self.event()

    def timing(self) -> Timing:
        return Timing(sleep=self.sleep, clock=lambda: self.now)


def wait_for_exit(pid: int, limit: float = 10.0) -> None:
    """Block until `pid` exits (an event, not a fixed sleep); reaping is left to the code."""
    fd = os.pidfd_open(pid)
    try:
        select.select([fd], [], [], limit)
    finally:
        os.close(fd)


def alive(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def run(code: str, *argv: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE)
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"  # an event, not a sleep
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def record(state_dir: Path, pid: int, port: int) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / cloud.STATE_FILE
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "url": f"http://127.0.0.1:{port}",
                "port": port,
                "started_at": "2025-01-01T00:00:00+00:00",
                "log": str(state_dir / cloud.LOG_FILE),
            }
        )
    )
    return path


# is_embedded_endpoint


def test_moto_on_loopback_is_embedded(moto_server: str) -> None:
    assert is_embedded_endpoint(moto_server)
    assert is_embedded_endpoint(moto_server.replace("127.0.0.1", "localhost"))


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "not a url",
        "ftp://127.0.0.1:21",
        "https://s3.amazonaws.com",
        "http://10.0.0.1:5000",
    ],
)
def test_no_url_or_a_remote_host_is_not_embedded(url: str | None) -> None:
    # Remote hosts are refused before any request is made, so this needs no network.
    assert not is_embedded_endpoint(url, timeout=0.2)


def test_a_closed_loopback_port_is_not_embedded() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert not is_embedded_endpoint(f"http://127.0.0.1:{port}", timeout=0.5)


def test_another_http_server_on_loopback_is_not_embedded() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>not moto</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert not is_embedded_endpoint(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


# status and stop


def test_nothing_recorded(tmp_path: Path) -> None:
    status = cloud.status(tmp_path)
    assert (status.recorded, status.alive, status.answering) == (False, False, False)
    stopped = cloud.stop(tmp_path)
    assert not stopped.stopped
    assert "not running" in stopped.message
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_record_is_an_integrity_error(tmp_path: Path) -> None:
    (tmp_path / cloud.STATE_FILE).write_text('{"pid": "x"}')
    with pytest.raises(IntegrityError, match="delete it"):
        cloud.status(tmp_path)


def test_stop_never_signals_a_pid_that_is_not_the_recorded_server(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    other = spawn(SLEEP)  # the pid was reused by an unrelated program
    wrong_port = spawn(SLEEP, "moto.server", "-p", "5999")
    for process in (other, wrong_port):
        path = record(tmp_path, process.pid, 6000)
        status = cloud.status(tmp_path)
        assert status.recorded and not status.alive
        stopped = cloud.stop(tmp_path, FakeTime().timing())
        assert not stopped.stopped
        assert alive(process)
        assert not path.exists()


def test_stop_terminates_the_recorded_server(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    server = spawn(SLEEP, "moto.server", "-H", "127.0.0.1", "-p", "6001")
    path = record(tmp_path, server.pid, 6001)
    status = cloud.status(tmp_path)
    assert status.alive and not status.answering  # nothing listens on 6001
    fake = FakeTime()
    fake.event = lambda: wait_for_exit(server.pid)
    stopped = cloud.stop(tmp_path, fake.timing())
    assert stopped.stopped and stopped.pid == server.pid
    # Dead (stop() may have reaped it already, so the exit status is not the witness).
    assert server.poll() is not None
    assert fake.now < cloud.STOP_TIMEOUT  # SIGTERM sufficed, no escalation
    assert not path.exists()


def test_stop_kills_a_server_that_ignores_sigterm(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    server = spawn(IGNORE_TERM, "moto.server", "-p", "6002")
    record(tmp_path, server.pid, 6002)
    fake = FakeTime()

    def after_the_grace_period() -> None:
        if fake.now > cloud.STOP_TIMEOUT:
            wait_for_exit(server.pid)

    fake.event = after_the_grace_period
    assert cloud.stop(tmp_path, fake.timing()).stopped
    assert server.poll() is not None
    assert fake.now >= cloud.STOP_TIMEOUT  # killed only after the grace period


# start's failures leave nothing behind


def test_start_on_a_taken_port_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {port}"):
            cloud.start(tmp_path, port, FakeTime().timing())
    assert not (tmp_path / cloud.STATE_FILE).exists()


def test_start_reports_a_server_that_exits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An interpreter that cannot run moto stands for a broken installation.
    monkeypatch.setattr(cloud.sys, "executable", "/bin/false")
    fake = FakeTime()

    def until_it_exits() -> None:
        pid = json.loads((tmp_path / cloud.STATE_FILE).read_text())["pid"]
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)

    fake.event = until_it_exits
    with pytest.raises(CheckFailed, match="exited with code 1"):
        cloud.start(tmp_path, timing=fake.timing())
    assert not (tmp_path / cloud.STATE_FILE).exists()


def test_server_environment_holds_no_real_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-token")
    env = cloud._server_environment()
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull


def test_a_postgres_that_does_not_start_leaves_the_cloud_without_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cloud still serves AWS (metadata only) and says why, rather than not starting."""
    from rollback import postgres
    from rollback.errors import CheckFailed

    def fail(*_: object, **__: object) -> None:
        raise CheckFailed("initdb failed for the embedded cloud's PostgreSQL: disk full")

    monkeypatch.setattr(postgres, "find_bin_dir", lambda *_: tmp_path)
    monkeypatch.setattr(postgres, "driver_available", lambda: True)
    monkeypatch.setattr(postgres, "start", fail)
    assert cloud._start_postgres(tmp_path) is None


def test_without_binaries_the_reason_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ROLLBACK_POSTGRES_BIN", str(tmp_path))  # holds no binaries
    reason = cloud.no_data_reason()
    assert reason is not None and "apt-get install postgresql" in reason
    assert cloud._start_postgres(tmp_path) is None
