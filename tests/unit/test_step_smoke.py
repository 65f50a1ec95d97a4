"""SmokeStep running real child processes against a real loopback HTTP server."""

from __future__ import annotations

import os
import select
import shlex
import sys
import time
from pathlib import Path

from rollback.models import Topology
from rollback.steps.smoke import SmokeStep, colour_env
from tests.unit import healthserver
from tests.unit.healthserver import HealthServer

health_server = healthserver.health_server  # the fixture

FETCH = (
    "import os, urllib.request;"
    "print(urllib.request.urlopen(os.environ['ROLLBACK_TARGET_URL'], timeout=5).read().decode())"
)


def _topology(url: str) -> Topology:
    return Topology(
        listener_arn="",
        target_groups={},
        zone_id="",
        record_name="",
        record_type="CNAME",
        set_identifiers={},
        db_instance_id="",
        health_urls={"green": [url, url + "?deep=1"], "blue": []},
        alarms={},
        live_color="blue",
        versions={},
    )


def test_passes_against_the_target_colour(health_server: HealthServer) -> None:
    health_server.body = b"green says hello"
    env = colour_env(_topology(health_server.url), "green")
    step = SmokeStep([sys.executable, "-c", FETCH], env, deadline_s=30)
    (found,) = step.verify()
    assert found.ok
    assert found.observed["exit_code"] == 0
    assert "green says hello" in found.observed["output"]
    assert health_server.requests == ["/health"]
    assert env["ROLLBACK_HEALTH_URLS"].split() == [health_server.url, health_server.url + "?deep=1"]


def test_failing_suite_is_failed_evidence_with_its_output(health_server: HealthServer) -> None:
    health_server.status = 503
    env = colour_env(_topology(health_server.url), "green")
    (found,) = SmokeStep([sys.executable, "-c", FETCH], env, deadline_s=30).verify()
    assert not found.ok
    assert found.note == "exited with 1"
    assert "503" in found.observed["output"]


def _exits_within(pid: int, timeout: float) -> bool:
    """Whether process `pid` (not our child) has exited, or does within `timeout` seconds.

    A pidfd becomes readable when the process terminates (a zombie counts): no polling.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # A shell starts in milliseconds even on a loaded machine, so the grandchild
    # exists and "started" is printed well inside the deadline.
    script = f"sleep 60 & echo $! > {shlex.quote(str(pid_file))}; echo started; sleep 60"
    started = time.monotonic()
    (found,) = SmokeStep(["sh", "-c", script], {}, deadline_s=2.0).verify()
    assert time.monotonic() - started < 10
    assert not found.ok
    assert found.observed["timed_out"]
    assert "started" in found.observed["output"]
    grandchild = int(pid_file.read_text())
    # The kill is sent at the deadline; the grandchild's exit may land a moment later.
    assert _exits_within(grandchild, timeout=10), f"grandchild {grandchild} still runs"


def test_long_output_keeps_head_and_tail() -> None:
    script = "print('BEGIN' + 'x' * 100000 + 'END')"
    (found,) = SmokeStep(
        [sys.executable, "-c", script], {}, deadline_s=30, max_output_chars=1000
    ).verify()
    output = found.observed["output"]
    assert found.ok
    assert output.startswith("BEGIN")
    assert output.rstrip().endswith("END")
    assert "bytes cut" in output
    assert len(output) < 1100


def test_missing_command_is_failed_evidence() -> None:
    (found,) = SmokeStep("no-such-smoke-command --fast", {}, deadline_s=5).verify()
    assert not found.ok
    assert "could not start no-such-smoke-command" in found.note


def test_string_command_is_split_without_a_shell(tmp_path: Path) -> None:
    target = tmp_path / "a file; echo injected"
    command = f"{sys.executable} -c 'import sys; open(sys.argv[1], \"w\").write(\"ok\")' '{target}'"
    step = SmokeStep(command, {}, deadline_s=30)
    assert not step.apply().changed
    (found,) = step.verify()
    assert found.ok
    assert target.read_text() == "ok"
    assert "injected" not in found.observed["output"]
