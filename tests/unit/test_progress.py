"""The one progress model: every wait reports what it waits for, the time so far, the
deadline and the last observed state; in place on a terminal, a line every 20 s in a
CI log, nothing for waits under 2 s, always on stderr."""

from __future__ import annotations

import dataclasses

import pytest

from rollback.aws.rds import DbSnapshot, Rds
from rollback.cli import render
from rollback.cli.render import WaitPrinter, progress
from rollback.errors import CheckFailed, CloudError
from rollback.steps.health import HealthStep
from rollback.waiting import Timing, poll
from tests.unit import healthserver
from tests.unit.healthserver import HealthServer

health_server = healthserver.health_server


@pytest.fixture(autouse=True)
def loud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "QUIET", False)  # a --quiet run earlier in the process set it


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[tuple[str, float, float, str]] = []

    def timing(self) -> Timing:
        def sleep(seconds: float) -> None:
            self.now += seconds

        def on_wait(what: str, elapsed: float, deadline: float, state: str) -> None:
            self.waits.append((what, elapsed, deadline, state))

        return Timing(sleep=sleep, clock=lambda: self.now, on_wait=on_wait)


def test_poll_reports_the_last_observed_state_and_names_it_on_timeout() -> None:
    fake = FakeTime()
    states = iter(["creating", "backing-up", "backing-up", "backing-up"])
    seen = {"state": ""}

    def probe() -> None:
        seen["state"] = f"status {next(states)}"

    with pytest.raises(CheckFailed) as caught:
        poll(
            "snapshot s1",
            probe,
            timeout=5,
            timing=fake.timing(),
            interval=2,
            backoff=1,
            observe=lambda: seen["state"],
        )
    assert fake.waits[0] == ("snapshot s1", 0.0, 5, "status creating")
    assert fake.waits[-1][3] == "status backing-up"
    assert (
        caught.value.message
        == "gave up waiting for snapshot s1 after 5s (last: status backing-up)."
    )


def test_on_a_terminal_one_line_is_rewritten_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    printer = WaitPrinter(tty=True)
    printer("health checks", 1.0, 60, "x")  # under 2 s: silent
    printer("health checks", 3.0, 60, "http://a/health: 404 Not Found")
    printer("health checks", 5.0, 60, "http://a/health: 404 Not Found")
    progress("health step failed")
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "\r\033[Kwaiting for health checks: 3s of 60s; last: http://a/health: 404 Not Found"
        "\r\033[Kwaiting for health checks: 5s of 60s; last: http://a/health: 404 Not Found"
        "\nhealth step failed\n"
    )


def test_in_a_ci_log_a_line_every_20_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    printer = WaitPrinter("webapp/prod: ", tty=False)
    for second in range(0, 70, 2):
        printer("bake of green", float(second), 600, "3 signal reading(s) clean")
    _, err = capsys.readouterr()
    assert err.splitlines() == [
        "webapp/prod: waiting for bake of green... [2s elapsed, deadline 600s; last: 3 signal reading(s) clean]",
        "webapp/prod: still waiting for bake of green... [22s elapsed, deadline 600s; last: 3 signal reading(s) clean]",
        "webapp/prod: still waiting for bake of green... [42s elapsed, deadline 600s; last: 3 signal reading(s) clean]",
        "webapp/prod: still waiting for bake of green... [62s elapsed, deadline 600s; last: 3 signal reading(s) clean]",
    ]


def test_quiet_prints_no_wait(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "QUIET", True)
    WaitPrinter(tty=False)("x", 30.0, 60, "")
    assert capsys.readouterr().err == ""


def test_the_health_step_says_why_it_waits(health_server: HealthServer) -> None:
    health_server.status = 404
    fake = FakeTime()
    (found,) = HealthStep(
        [health_server.url], deadline_s=6, interval_s=2, timing=fake.timing()
    ).verify()
    assert not found.ok
    assert fake.waits and all(
        w[3] == f"{health_server.url}: status 404 Not Found, expected 200" for w in fake.waits
    )


def snapshot(status: str) -> DbSnapshot:
    return DbSnapshot("s1", "db", status, "arn", "manual", "postgres", 20, None)


@pytest.mark.parametrize("final", ["available", "failed"])
def test_rds_waits_poll_and_report_the_status(monkeypatch: pytest.MonkeyPatch, final: str) -> None:
    script = [None, snapshot("creating"), snapshot("backing-up"), snapshot(final)]
    rds = Rds(client=None)
    monkeypatch.setattr(rds, "find_snapshot", lambda _id: script.pop(0))
    fake = FakeTime()
    if final == "failed":
        with pytest.raises(
            CloudError, match="waiting for DB snapshot s1 to be available failed: it is failed."
        ):
            rds.wait_snapshot_available("s1", 3600, fake.timing())
    else:
        found = rds.wait_snapshot_available("s1", 3600, fake.timing())
        assert dataclasses.replace(found) == snapshot("available")
    assert [w[3] for w in fake.waits] == ["not found yet", "status creating", "status backing-up"]
