"""One HTTP health probe, for the health step and the watch/cutover health signal.

One GET, no retries, a timeout. Redirects are not followed: a `/health` that
answers 302 to a login page is not healthy, so a 3xx fails unless the caller
asks to follow redirects (then the final answer is judged). The pass rule is
the expected status when one is given (the health step's 200), else any 2xx.
A failure is a short reason that names the cause, e.g. `404 Not Found`,
`302 Found (redirect to https://sso.example.com/login)`, `unreachable
(Connection refused)`, `took 812 ms, more than 500 ms`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

MAX_BODY = 1024 * 1024  # bytes of a body read (and searched for `body_contains`)


@dataclass(frozen=True)
class Probe:
    """What one GET saw; `failure` is "" when it passed."""

    url: str
    status: int | None
    latency_ms: float
    failure: str
    error: str | None = None  # why no answer came (unreachable, timeout)
    location: str | None = None  # where a 3xx pointed
    body_matched: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.failure

    def seen(self) -> dict[str, Any]:
        """The observation for evidence: status, latency and whatever else was looked at."""
        found: dict[str, Any] = {"status": self.status, "latency_ms": self.latency_ms}
        if self.error is not None:
            found["error"] = self.error
        if self.location is not None:
            found["location"] = self.location
        if self.body_matched is not None:
            found["body_matched"] = self.body_matched
        return found


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx itself


_STRICT = urllib.request.build_opener(_NoRedirects)
_FOLLOWING = urllib.request.build_opener()


def probe_http(
    url: str,
    *,
    timeout_s: float = 5.0,
    expect_status: int | None = None,
    follow_redirects: bool = False,
    body_contains: str | None = None,
    max_latency_ms: float | None = None,
    user_agent: str = "rollback-health",
) -> Probe:
    """GET `url` once and judge the answer; never raises for what the server does."""
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    opener = _FOLLOWING if follow_redirects else _STRICT
    started = time.perf_counter()
    location = None
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status = int(response.status)
            body = response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        status = exc.code
        location = exc.headers.get("Location") if 300 <= exc.code < 400 else None
        body = exc.read(MAX_BODY) if exc.fp else b""
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", exc))
        return Probe(url, None, _ms(started), f"unreachable ({reason})", error=reason)
    latency = _ms(started)
    matched = None if body_contains is None else body_contains.encode() in body
    failure = _judge(status, expect_status, location)
    if not failure and matched is False:
        failure = f"body does not contain {body_contains!r}"
    if not failure and max_latency_ms is not None and latency > max_latency_ms:
        failure = f"took {latency:.0f} ms, more than {max_latency_ms:g} ms"
    return Probe(url, status, latency, failure, location=location, body_matched=matched)


def describe_status(status: int) -> str:
    """`404 Not Found`; a status without a standard phrase is just its number."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _judge(status: int, expect: int | None, location: str | None) -> str:
    passed = status == expect if expect is not None else 200 <= status < 300
    if passed:
        return ""
    said = describe_status(status)
    if location:
        said += f" (redirect to {location}; redirects are not followed)"
    return f"{said}, expected {expect}" if expect is not None else said


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
