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


@pytest.mark.postgres
def test_cloud_backs_rds_with_postgres_and_stop_removes_it(run_cli: RunCli, store: Path) -> None:
    """Through the installed command: the exports reach the instance's database with its
    master password; a snapshot holds the rows of its moment; stop removes the cluster."""
    import boto3
    import psycopg

    started = run_cli("--store", str(store), "--output", "json", "cloud", "start")
    assert started.returncode == 0, describe(started)
    state = parse_json(started)
    pg = state["postgres"]
    env = state["environment"]
    assert env["PGHOST"] == "127.0.0.1" and env["PGPORT"] == str(pg["port"])
    assert "RDS databases are real PostgreSQL" in started.stderr

    rds = boto3.client("rds", endpoint_url=state["url"], region_name="us-east-1")
    rds.create_db_instance(
        DBInstanceIdentifier="orders-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="shop",
        MasterUserPassword="cloud-Passw0rd",
        AllocatedStorage=20,
    )

    def count(database: str) -> int:
        with psycopg.connect(
            host=env["PGHOST"],
            port=int(env["PGPORT"]),
            user="shop",
            password="cloud-Passw0rd",
            dbname=database,
        ) as conn:
            row = conn.execute("SELECT count(*) FROM t").fetchone()
            assert row is not None
            return int(row[0])

    with psycopg.connect(
        host="127.0.0.1",
        port=pg["port"],
        user="shop",
        password="cloud-Passw0rd",
        dbname="orders-db",
        autocommit=True,
    ) as conn:
        conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 11) g")
        rds.create_db_snapshot(DBSnapshotIdentifier="s1", DBInstanceIdentifier="orders-db")
        conn.execute("INSERT INTO t SELECT g FROM generate_series(1, 5) g")
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="copy", DBSnapshotIdentifier="s1")
    assert (count("orders-db"), count("copy")) == (16, 11)

    listed = run_cli("--store", str(store), "--output", "json", "cloud", "databases")
    assert listed.returncode == 0, describe(listed)
    databases = parse_json(listed)["databases"]
    assert databases["orders-db"] == "rds orders-db" and databases["copy"] == "rds copy"
    assert "cloud-Passw0rd" not in listed.stdout + started.stdout + started.stderr
    assert "cloud-Passw0rd" not in (Path(pg["data_dir"]) / "server.log").read_text()

    stopped = run_cli("--store", str(store), "cloud", "stop")
    assert stopped.returncode == 0, describe(stopped)
    assert not _port_open(pg["port"])
    assert not Path(pg["data_dir"]).exists() and not Path(pg["socket_dir"]).exists()


def test_cloud_without_postgres_says_databases_hold_no_data(
    run_cli: RunCli, store: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-postgres"
    empty.mkdir()
    env = {"ROLLBACK_POSTGRES_BIN": str(empty)}
    started = run_cli("--store", str(store), "--output", "json", "cloud", "start", env=env)
    assert started.returncode == 0, describe(started)
    assert parse_json(started)["postgres"] is None
    assert started.stderr.count("RDS databases hold no data") == 1
