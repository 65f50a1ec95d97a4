"""Health step: HTTP checks of the target colour and its CloudWatch alarms.

It changes nothing: apply() is a no-op and verify() does the checking. In
rounds `interval_s` apart, every URL is fetched (expected status, optional
body substring, optional latency bound) and every named alarm read; each check
must pass `passes` rounds in a row before `deadline_s` runs out. A failing
round resets that check's count. An unreachable URL or a missing alarm is a
failed check with its reason in the evidence, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rollback.aws.cloudwatch import Alarms, AlarmState
from rollback.errors import CheckFailed, UsageError
from rollback.models import Evidence, StepDescription
from rollback.probe import probe_http
from rollback.steps import Applied, evidence
from rollback.waiting import Timing, poll


@dataclass
class _Check:
    """The running record of one URL or alarm across rounds."""

    consecutive: int = 0
    rounds: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    failure: str = ""


class HealthStep:
    """N consecutive passes of every URL and alarm within a deadline."""

    kind = "health"

    def __init__(
        self,
        urls: list[str],
        cloudwatch: Alarms | None = None,
        alarm_names: list[str] | None = None,
        expect_status: int = 200,
        body_contains: str | None = None,
        max_latency_ms: float | None = None,
        passes: int = 3,
        deadline_s: float = 60.0,
        timing: Timing | None = None,
        interval_s: float = 2.0,
        request_timeout_s: float = 5.0,
        follow_redirects: bool = False,
    ) -> None:
        alarm_names = list(alarm_names or [])
        if not urls and not alarm_names:
            raise UsageError("a health step needs at least one URL or alarm to check.")
        if alarm_names and cloudwatch is None:
            raise UsageError("alarm names were given without a CloudWatch client to read them.")
        if passes < 1 or deadline_s <= 0:
            raise UsageError(
                f"passes must be >= 1 and the deadline > 0 (got {passes}, {deadline_s})."
            )
        bad = [u for u in urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise UsageError(f"health URLs must be http:// or https://, got {', '.join(bad)}.")
        self.urls = list(urls)
        self.cloudwatch = cloudwatch
        self.alarm_names = alarm_names
        self.expect_status = expect_status
        self.body_contains = body_contains
        self.max_latency_ms = max_latency_ms
        self.passes = passes
        self.deadline_s = deadline_s
        self.timing = timing or Timing()
        self.interval_s = interval_s
        self.request_timeout_s = request_timeout_s
        self.follow_redirects = follow_redirects

    def describe(self) -> StepDescription:
        expect = f"HTTP {self.expect_status}"
        if self.body_contains:
            expect += f" with {self.body_contains!r} in the body"
        if self.max_latency_ms is not None:
            expect += f" within {self.max_latency_ms:g} ms"
        return StepDescription(
            kind=self.kind,
            summary=(
                f"check {len(self.urls)} URL(s) for {expect} and {len(self.alarm_names)} alarm(s) "
                f"not in ALARM, {self.passes} times in a row within {self.deadline_s:g}s"
            ),
            changes={
                "urls": list(self.urls),
                "alarms": list(self.alarm_names),
                "passes": self.passes,
                "deadline_s": self.deadline_s,
            },
            reason="prove the target colour serves users before and after traffic moves",
            expected_seconds=self.interval_s * (self.passes - 1),
        )

    def apply(self) -> Applied:
        """Nothing to change: health is only observed."""
        return Applied(changed=False)

    def compensate(self, prior: dict[str, Any]) -> None:
        """Nothing to put back."""

    def verify(self) -> list[Evidence]:
        """Run rounds until every check passed `passes` times in a row, or the deadline.

        Returns one evidence per URL and per alarm; a check that did not reach
        its count is ok=False with the reason of its last failure.
        """
        urls = {u: _Check() for u in self.urls}
        alarms = {a: _Check() for a in self.alarm_names}

        def one_round() -> bool | None:
            for url, check in urls.items():
                _record(check, *self._probe_url(url))
            if alarms:
                assert self.cloudwatch is not None
                states = self.cloudwatch.states(self.alarm_names)
                for name, check in alarms.items():
                    _record(check, *_judge_alarm(name, states.get(name)))
            checks = [*urls.values(), *alarms.values()]
            return True if all(c.consecutive >= self.passes for c in checks) else None

        timed_out = ""
        try:
            poll(
                "health checks",
                one_round,
                timeout=self.deadline_s,
                timing=self.timing,
                interval=self.interval_s,
                backoff=1.0,
                max_interval=self.interval_s,
                observe=lambda: _failing(urls | alarms),
            )
        except CheckFailed as exc:
            timed_out = exc.message
        found = [self._evidence("http:GET", url, c, timed_out) for url, c in urls.items()]
        found += [
            self._evidence("cloudwatch:DescribeAlarms", name, c, timed_out)
            for name, c in alarms.items()
        ]
        return found

    def _evidence(self, api: str, what: str, check: _Check, timed_out: str) -> Evidence:
        ok = check.consecutive >= self.passes
        observed = {
            "target": what,
            **check.last,
            "consecutive_passes": check.consecutive,
            "passes_needed": self.passes,
            "rounds": check.rounds,
        }
        note = ""
        if not ok:
            note = (
                f"{what}: {check.consecutive} of {self.passes} passes in a row"
                + (f"; last failure: {check.failure}" if check.failure else "")
                + (f" ({timed_out})" if timed_out else "")
            )
        return evidence(api, observed, ok, note)

    def _probe_url(self, url: str) -> tuple[dict[str, Any], str]:
        """GET the URL once (rollback.probe: no redirects followed); (what was seen, why it failed or "")."""
        probe = probe_http(
            url,
            timeout_s=self.request_timeout_s,
            expect_status=self.expect_status,
            follow_redirects=self.follow_redirects,
            body_contains=self.body_contains,
            max_latency_ms=self.max_latency_ms,
        )
        failure = probe.failure
        if failure and probe.status is not None:
            failure = f"status {failure}"
        return probe.seen(), failure


def _judge_alarm(name: str, state: AlarmState | None) -> tuple[dict[str, Any], str]:
    if state is None:
        return {"state": None}, "the alarm does not exist"
    seen = {"state": state.state, "reason": state.reason, "updated_at": state.updated_at}
    if state.state == "ALARM":
        return seen, f"in ALARM: {state.reason}"
    return seen, ""


def _failing(checks: dict[str, _Check]) -> str:
    """What keeps the health step waiting: each check short of its passes, with its last failure."""
    short = [
        f"{what}: {c.failure}" if c.failure and c.consecutive == 0 else f"{what}: {c.consecutive} pass(es) in a row"
        for what, c in checks.items()
        if c.failure or c.consecutive == 0
    ]
    return "; ".join(short[:2]) + (f" (+{len(short) - 2} more)" if len(short) > 2 else "")


def _record(check: _Check, seen: dict[str, Any], failure: str) -> None:
    check.rounds += 1
    check.last = seen
    if failure:
        check.consecutive = 0
        check.failure = failure
    else:
        check.consecutive += 1
