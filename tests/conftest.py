"""Shared fixtures. Fake AWS credentials for every test (nothing reaches real AWS);
a moto server on 127.0.0.1 for tests that run the CLI as a subprocess.

Tiers: tests/unit (in-process `mock_aws()`, Pulumi mocks, click's runner) and
tests/functional (the installed `rollback` command against the moto server).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_CLEARED = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "ROLLBACK_STACK",
    "ROLLBACK_STORE",
    "ROLLBACK_ENGINE",
    "ROLLBACK_OUTPUT",
    "ROLLBACK_DEBUG",
    "ROLLBACK_CONFIG",
    "ROLLBACK_WEBHOOK_URL",
    "ROLLBACK_SNS_TOPIC_ARN",
)


@pytest.fixture(autouse=True)
def collector_running() -> None:
    """Importing rollback.cli.main pauses the collector for a CLI's start-up; a test
    process runs for minutes, and a test that ends before the command resumes it."""
    from rollback import collector

    collector.resume()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session, on a free loopback port, with RDS corrected and Glue
    completed as the embedded cloud's (`rollback.rdsfidelity`, `rollback.gluefidelity`); yields
    its URL."""
    from moto.server import ThreadedMotoServer

    from rollback import gluefidelity, rdsfidelity

    rdsfidelity.install()
    gluefidelity.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server, reset to empty, with AWS_ENDPOINT_URL pointing at it."""
    req = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The recording `pulumi` double first on PATH, with a file backend (tests/fakepulumi)."""
    import sys

    from tests.fakepulumi import HERE, FakePulumi

    backend = tmp_path / "pulumi-backend"
    backend.mkdir()
    # A copy whose shebang names this interpreter without site: `python3` may be a slow shim.
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = (HERE / "pulumi").read_text().split("\n", 1)[1]
    (bin_dir / "pulumi").write_text(f"#!{sys.executable} -S\n{script}")
    (bin_dir / "pulumi").chmod(0o755)
    fake = FakePulumi(bin_dir, backend, tmp_path / "pulumi-calls.jsonl", tmp_path / "scenario.json")
    fake.scenario()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_PULUMI_SCENARIO", str(fake.scenario_path))
    monkeypatch.setenv("PULUMI_BACKEND_URL", fake.url)
    monkeypatch.setenv("ROLLBACK_PYENV_CACHE", str(tmp_path / "pyenvs"))
    monkeypatch.delenv("PULUMI_PYTHON_CMD", raising=False)
    return fake


# PostgreSQL: tests marked `postgres` run against one real cluster per session.

POSTGRES_MISSING = (
    "PostgreSQL's server binaries (initdb, pg_ctl, postgres) or the psycopg driver are not "
    "installed: install Debian's `postgresql` and `pip install '.[postgres]'`"
)


def postgres_missing() -> str | None:
    """Why `postgres` tests cannot run here, or None when they can."""
    from rollback import postgres

    if postgres.find_bin_dir() is None or not postgres.driver_available():
        return POSTGRES_MISSING
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `postgres` test without PostgreSQL fails in CI (CI=true) and is skipped, loudly, elsewhere."""
    if item.get_closest_marker("postgres") is None:
        return
    missing = postgres_missing()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the postgres tests, but {missing} (.ci/run installs them).")
    pytest.skip(f"NOT RUN: {missing}.")


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One PostgreSQL cluster on 127.0.0.1 for the session (`rollback.postgres.Cluster`)."""
    from rollback import postgres

    missing = postgres_missing()
    if missing is not None:
        pytest.skip(f"NOT RUN: {missing}.")
    bin_dir = postgres.find_bin_dir()
    assert bin_dir is not None
    cluster = postgres.start(tmp_path_factory.mktemp("pg-state"), bin_dir)
    try:
        yield cluster
    finally:
        postgres.stop(cluster)


@pytest.fixture
def pg_backing(pg_cluster: Any) -> Iterator[Any]:
    """moto's RDS (in-process and the session's moto server) backed by `pg_cluster` for one
    test; every database it made is dropped afterwards."""
    from rollback import postgres, rdsdata

    backing = rdsdata.DatabaseBacking(pg_cluster)
    rdsdata.install(backing)
    try:
        yield backing
    finally:
        rdsdata.install(None)
        with postgres.admin(pg_cluster) as conn:
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"
            ).fetchall():
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
