"""The one HTTP health probe (rollback.probe) and its two users, the health step and the
watch/cutover health signal: a 3xx fails unless redirects are asked for, and every
failure names its cause (`404 Not Found`, the redirect target)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rollback.probe import describe_status, probe_http
from rollback.steps.health import HealthStep
from rollback.triggers import HealthSignal
from rollback.waiting import Timing


class Site:
    """/health answers `status` (a 302 points at /login, which answers 200); records paths."""

    def __init__(self) -> None:
        self.status = 302
        self.paths: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                site.paths.append(self.path)
                status = 200 if self.path == "/login" else site.status
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/login")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def test_a_redirect_fails_and_is_not_followed(site: Site) -> None:
    probe = probe_http(site.url)
    assert not probe.ok and probe.status == 302 and probe.location == "/login"
    assert probe.failure == "302 Found (redirect to /login; redirects are not followed)"
    assert site.paths == ["/health"]  # the login page was never asked for


def test_a_redirect_passes_when_asked_to_follow(site: Site) -> None:
    probe = probe_http(site.url, follow_redirects=True)
    assert probe.ok and probe.status == 200
    assert site.paths == ["/health", "/login"]


@pytest.mark.parametrize(
    ("status", "failure"), [(404, "404 Not Found"), (503, "503 Service Unavailable"), (299, "")]
)
def test_the_failure_names_the_status(site: Site, status: int, failure: str) -> None:
    site.status = status
    assert probe_http(site.url).failure == failure


def test_an_expected_status_is_the_pass_rule(site: Site) -> None:
    site.status = 204
    assert probe_http(site.url, expect_status=200).failure == "204 No Content, expected 200"


def test_no_answer_is_unreachable_with_the_reason() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    probe = probe_http(f"http://127.0.0.1:{port}/health", timeout_s=2)
    assert probe.status is None and probe.failure.startswith("unreachable (")
    assert "refused" in probe.failure.lower()


def test_the_health_step_fails_a_redirect_and_says_so(site: Site) -> None:
    now = [0.0]
    timing = Timing(sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    (found,) = HealthStep([site.url], deadline_s=4, interval_s=2, timing=timing).verify()
    assert not found.ok
    assert "last failure: status 302 Found (redirect to /login" in found.note
    assert found.observed["location"] == "/login"
    assert "/login" not in site.paths


def test_the_health_step_passes_a_redirect_when_asked(site: Site) -> None:
    now = [0.0]
    timing = Timing(sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    step = HealthStep([site.url], passes=1, deadline_s=4, timing=timing, follow_redirects=True)
    (found,) = step.verify()
    assert found.ok and found.observed["status"] == 200


def test_the_watch_signal_uses_the_same_rule_and_reports_the_reason(site: Site) -> None:
    signal = HealthSignal(site.url, failures=1)
    (reading,) = signal.read("2026-11-30T12:00:00Z")
    assert reading.breach and "302 Found (redirect to /login" in reading.detail
    site.status = 404
    (reading,) = signal.read("2026-11-30T12:00:01Z")
    assert "404 Not Found" in reading.detail
    site.status = 302
    (reading,) = HealthSignal(site.url, failures=1, follow_redirects=True).read("t")
    assert not reading.breach


def test_describe_status() -> None:
    assert describe_status(418) == "418 I'm a Teapot"  # HTTPStatus's own phrase
    assert describe_status(599) == "599"
