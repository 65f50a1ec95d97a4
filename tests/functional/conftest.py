"""The functional-test harness: run the INSTALLED `rollback` command as a subprocess.

Use `run_cli(*args, env=..., cwd=..., input=..., timeout=...)`; it inherits the
environment the autouse credentials fixture prepared (fake credentials, no
ROLLBACK_* variables), so a test that also requests `moto_endpoint` gets
AWS_ENDPOINT_URL pointing at the session's moto server. `parse_json(result)`
reads the one JSON document `--output json` prints on stdout.

Every test in this directory is marked `functional`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests import jsonschemas

ROLLBACK = Path(sys.executable).parent / "rollback"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.functional)


class RunCli(Protocol):
    def __call__(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]: ...


def build_env(extra: Mapping[str, str | None] | None) -> dict[str, str]:
    """os.environ (as the fixtures left it) plus `extra`; a None value removes a variable."""
    env = dict(os.environ)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def signal_when(
    args: Sequence[str],
    env: Mapping[str, str | None],
    ready: Callable[[], bool],
    sent: signal.Signals,
    *,
    settle_s: float = 0.5,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with `args`, send it `sent` once `ready()` holds (and `settle_s` more), wait.

    The process is killed if it does not end in 15 s after the signal.
    """
    process = subprocess.Popen(
        [str(ROLLBACK), *args],
        env=build_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(settle_s)
        process.send_signal(sent)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run the installed console script; returns the CompletedProcess (text stdout/stderr).

    It never raises on a non-zero exit: tests assert `returncode` themselves.
    """
    if not ROLLBACK.exists():
        pytest.fail(f"{ROLLBACK} is missing; run `.venv/bin/pip install -e '.[test,dev]'`.")

    def run(
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROLLBACK), *args],
            env=build_env(env),
            cwd=cwd or tmp_path,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def parse_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document on stdout, checked against its schema in docs/schemas/.

    Fails the test with both streams if stdout is not one document.
    """
    try:
        document = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(
            f"stdout is not one JSON document ({exc}); exit {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    args = [str(a) for a in result.args[1:]] if isinstance(result.args, list) else []
    if args:
        jsonschemas.validate(args, document)
    return document


def describe(result: subprocess.CompletedProcess[str], args: Sequence[str] = ()) -> str:
    """Both streams and the exit code, for assertion messages."""
    return f"exit {result.returncode} {' '.join(args)}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
