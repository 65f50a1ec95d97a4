"""`rollback cloud start|status|stop` through the installed command, checked from outside."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.conftest import RunCli, describe, parse_json


def _pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        # Field 3 is the state; a zombie (Z) runs nothing any more.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def store(tmp_path: Path, run_cli: RunCli) -> Iterator[Path]:
    """A store directory; whatever cloud a test started in it is stopped afterwards."""
    root = tmp_path / "store"
    yield root
    record = root / ".state" / "cloud.json"
    if record.exists():
        pid = json.loads(record.read_text())["pid"]
        run_cli("--store", str(root), "cloud", "stop", timeout=30)
        if _pid_alive(pid):  # the command under test failed to stop it: do not leak it
            os.kill(pid, signal.SIGKILL)


def test_start_status_restart_stop(run_cli: RunCli, store: Path) -> None:
    started = run_cli("--store", str(store), "--output", "json", "cloud", "start")
    assert started.returncode == 0, describe(started)
    state = parse_json(started)
    assert state["already_running"] is False
    url, port, pid = state["url"], state["port"], state["pid"]
    assert url == f"http://127.0.0.1:{port}"

    # The port answers moto's API over real HTTP ...
    with urllib.request.urlopen(f"{url}/moto-api/config", timeout=5) as response:
        assert isinstance(json.loads(response.read()), dict)
    # ... and serves AWS: a bucket created through boto3 is listed back.
    import boto3

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket="cloud-functional")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["cloud-functional"]

    record = json.loads((store / ".state" / "cloud.json").read_text())
    assert (record["pid"], record["port"], record["url"]) == (pid, port, url)
    assert Path(record["log"]).is_file()

    status = run_cli("--store", str(store), "cloud", "status")
    assert status.returncode == 0, describe(status)
    assert url in status.stdout

    again = run_cli("--store", str(store), "--output", "json", "cloud", "start")
    assert again.returncode == 0, describe(again)
    assert parse_json(again)["pid"] == pid
    assert parse_json(again)["already_running"] is True

    stopped = run_cli("--store", str(store), "cloud", "stop")
    assert stopped.returncode == 0, describe(stopped)
    assert not _pid_alive(pid)
    assert not _port_open(port)
    assert not (store / ".state" / "cloud.json").exists()

    stopped_again = run_cli("--store", str(store), "cloud", "stop")
    assert stopped_again.returncode == 0, describe(stopped_again)
    assert "not running" in stopped_again.stdout

    after = run_cli("--store", str(store), "cloud", "status")
    assert after.returncode == 1, describe(after)


def test_eval_of_start_points_a_shell_at_the_cloud(run_cli: RunCli, store: Path) -> None:
    started = run_cli("--store", str(store), "cloud", "start", env={"AWS_PROFILE": "production"})
    assert started.returncode == 0, describe(started)
    # What a user's shell sees after `eval "$(rollback cloud start)"`.
    shell = subprocess.run(
        [
            "sh",
            "-c",
            'eval "$1"; echo "$AWS_ENDPOINT_URL|${AWS_PROFILE-unset}"',
            "sh",
            started.stdout,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_PROFILE": "production"},
        check=True,
    )
    endpoint, profile = shell.stdout.strip().split("|")
    assert profile == "unset"
    with urllib.request.urlopen(f"{endpoint}/moto-api/config", timeout=5) as response:
        assert response.status in (200, 201)


def test_start_on_a_taken_port_is_a_usage_error(run_cli: RunCli, store: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--store", str(store), "cloud", "start", "--port", str(port))
    assert result.returncode == 2, describe(result)
    assert f"port {port}" in result.stderr
    assert result.stdout == ""
    assert not (store / ".state" / "cloud.json").exists()
