"""Rollback triggers: the signals a bake watches, the watcher, stop requests, `watch`.

    signals = build_signals(spec, topology, "green", apis, since=started, now=now)
    outcome = Watcher(signals, spec, timing=timing, now=now).watch(600, "bake of green", stop)
    outcome.result  # clean | breach | stopped

Three kinds of signal, each read once per round (`SignalSpec.interval_s` apart):

- a CloudWatch alarm breaches when it is in ALARM (the alarm has its own
  evaluation periods, so one reading is enough);
- the new colour's target-group metrics breach when the 5xx rate
  (HTTPCode_Target_5XX_Count / RequestCount, summed since the watch started,
  judged from MIN_REQUESTS requests on) or the TargetResponseTime p99 exceed
  their thresholds;
- a health URL breaches after `failures` failed GETs in a row. While a URL is
  failing but not yet breached, the next rounds come `confirm_interval_s`
  apart, so a failure is confirmed in well under one polling interval.

A signal that cannot be read (an AWS error) is not a breach by itself, but
`failures` unreadable rounds in a row are: a cutover must not go on blind.
Moto cannot compute percentile statistics (its GetMetricData answers HTTP
500 for p99), so against the embedded cloud `--max-p99-ms` ends in that
"unreadable" breach.

A stop request (`rollback emergency`) is a document `stops/<project>/<stack>.json`
in the store; a cutover or watch checks it before every round.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from rollback.errors import IntegrityError, NotFound, RollbackError, UsageError
from rollback.models import Evidence, StepDescription, Topology
from rollback.probe import probe_http
from rollback.steps import Applied, evidence
from rollback.waiting import Timing

if TYPE_CHECKING:
    from rollback.aws.cloudwatch import Alarms, Metrics
    from rollback.aws.elbv2 import LoadBalancing
    from rollback.aws.route53 import Dns
    from rollback.releases import Registry
    from rollback.store import Store

log = logging.getLogger(__name__)

Now = Callable[[], datetime]
MIN_REQUESTS = 10  # below this many requests a 5xx rate says nothing
METRIC_PERIOD_S = 60
NAMESPACE = "AWS/ApplicationELB"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


# -- durations ---------------------------------------------------------------

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"  # ASCII digits only: float() would take "١٢" too
_DURATION = re.compile(
    rf"^(?:(?P<plain>{_NUMBER})|(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?)$"
)
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}
MAX_DURATION_S = 7 * 24 * 3600.0  # a week, as for health_deadline_s: longer is a typo


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from `90s`, `10m`, `1h`, `1m30s`, `1h30m` or plain seconds; raises UsageError otherwise."""
    match = _DURATION.match(str(text).strip().lower())
    seconds = None
    if match and any(match.groupdict().values()):
        if match["plain"]:
            seconds = float(match["plain"])
        else:
            seconds = sum(float(match[u]) * f for u, f in _UNIT_S.items() if match[u])
    if seconds is None or not math.isfinite(seconds):
        raise UsageError(
            f"{what} {text!r} is not a duration; write 90s, 10m, 1h, 1m30s or a number of seconds.",
        )
    if seconds > MAX_DURATION_S:
        # Finite is not enough: a lease or a sleep that long overflows the clock.
        raise UsageError(f"{what} {text!r} is longer than a week; write at most 168h.")
    return seconds


_RATE_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def parse_rate(text: str) -> float:
    """A 5xx rate as a fraction from `0.05` or `5%`; raises UsageError outside 0..1."""
    raw = str(text).strip()
    try:
        number = raw[:-1] if raw.endswith("%") else raw
        if not _RATE_NUMBER.fullmatch(number):  # float() takes '٥', '1_0' and 'nan' too
            raise ValueError(number)
        value = float(number) / 100 if raw.endswith("%") else float(number)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"5xx rate {text!r} must be a fraction 0..1 (0.05) or a percentage (5%).")
    return value


# -- stop requests -----------------------------------------------------------


def stop_key(stack: str) -> str:
    """`stops/<project>/<stack>.json`; raises UsageError for a name that is not PROJECT/STACK."""
    if stack.count("/") != 1 or not all(stack.split("/")):
        raise UsageError(f"stack {stack!r} is not PROJECT/STACK; pass webapp/prod, for example.")
    return f"stops/{stack}.json"


def request_stop(store: Store, stack: str, reason: str, actor: str) -> dict[str, Any]:
    """Ask every cutover and watch of `stack` to stop at its next check; returns the request.

    Overwrites an earlier request (the newest reason wins). It stays until
    `clear_stop`: a new cutover refuses to start while it is there.
    """
    doc = {"stack": stack, "reason": reason, "by": actor, "at": _iso(utc_now())}
    store.put_doc(stop_key(stack), json.dumps(doc, sort_keys=True, indent=2).encode() + b"\n")
    return doc


def stop_requested(store: Store, stack: str) -> dict[str, Any] | None:
    """The pending stop request of `stack` (stack, reason, by, at), or None."""
    key = stop_key(stack)
    if not store.has_doc(key):
        return None
    try:
        doc = json.loads(store.get_doc(key))
    except NotFound:
        return None  # cleared between the two reads
    except ValueError as exc:
        raise IntegrityError(
            f"stop request {key} is not JSON ({exc}); delete it from the store."
        ) from exc
    if not isinstance(doc, dict):
        raise IntegrityError(f"stop request {key} is not a JSON object; delete it from the store.")
    return doc


def clear_stop(store: Store, stack: str) -> dict[str, Any] | None:
    """Remove the stop request of `stack`; returns what was removed (None when there was none)."""
    doc = stop_requested(store, stack)
    if doc is not None:
        store.delete_doc(stop_key(stack))
    return doc


@dataclass(frozen=True)
class StopReason:
    """Why a watch stopped before its end: an emergency stop request or a signal (SIGTERM, Ctrl-C)."""

    kind: str  # emergency | signal
    reason: str
    by: str = ""
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ShouldStop = Callable[[], "StopReason | None"]


def stop_checker(
    store: Store, stack: str, interrupted: Callable[[], str | None] = lambda: None
) -> ShouldStop:
    """A should_stop for a watch: the process's signal flag first, then the store's stop request."""

    def should_stop() -> StopReason | None:
        signal_name = interrupted()
        if signal_name:
            return StopReason("signal", f"{signal_name} received", at=_iso(utc_now()))
        doc = stop_requested(store, stack)
        if doc is None:
            return None
        return StopReason(
            "emergency",
            str(doc.get("reason", "")),
            by=str(doc.get("by", "")),
            at=str(doc.get("at", "")),
        )

    return should_stop


# -- signals -----------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One signal read once: its value, and whether it breached."""

    signal: str  # alarm | health | 5xx-rate | p99
    target: str  # alarm name, URL or colour
    ok: bool
    value: Any
    threshold: Any
    at: str
    detail: str = ""
    breach: bool = False
    unreadable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Breach:
    """Why a watch ended early: the signal, the value it read, the threshold, and when."""

    signal: str
    target: str
    value: Any
    threshold: Any
    at: str
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Signal(Protocol):
    """Something a watch reads every round."""

    name: str

    def read(self, at: str) -> list[Reading]:
        """Read the cloud once; each Reading says whether it breached."""
        ...

    @property
    def confirming(self) -> bool:
        """Whether a failure streak is in progress (the watcher then re-reads sooner)."""
        ...


@dataclass
class _Streak:
    """Consecutive bad rounds of one signal target."""

    count: int = 0


class AlarmSignal:
    """Named CloudWatch alarms; one in ALARM is a breach. Unreadable `failures` times running is one too."""

    def __init__(self, alarms: Alarms, names: Sequence[str], failures: int = 3) -> None:
        self.alarms = alarms
        self.names = list(names)
        self.failures = failures
        self.name = f"alarms {', '.join(self.names)}"
        self._unreadable = _Streak()

    @property
    def confirming(self) -> bool:
        return 0 < self._unreadable.count < self.failures

    def read(self, at: str) -> list[Reading]:
        try:
            states = self.alarms.states(self.names)
        except RollbackError as exc:
            return [
                _unreadable_reading("alarm", self.name, exc, self._unreadable, self.failures, at)
            ]
        self._unreadable.count = 0
        found = []
        for name in self.names:
            state = states.get(name)
            value = state.state if state else None
            breach = value == "ALARM"
            detail = (
                f"alarm {name} is in ALARM: {state.reason}"
                if state and breach
                else ("" if state else f"alarm {name} does not exist")
            )
            found.append(Reading("alarm", name, not breach, value, "not ALARM", at, detail, breach))
        return found


class HealthSignal:
    """One health URL: a GET answering 2xx within the timeout passes (a 3xx only when
    `follow_redirects` and where it leads answers 2xx); `failures` misses in a row breach."""

    def __init__(
        self,
        url: str,
        failures: int = 3,
        request_timeout_s: float = 5.0,
        follow_redirects: bool = False,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"health URL {url!r} must be http:// or https://.")
        if failures < 1:
            raise UsageError(f"--health-failures must be at least 1, got {failures}.")
        self.url = url
        self.failures = failures
        self.request_timeout_s = request_timeout_s
        self.follow_redirects = follow_redirects
        self.name = f"health {url}"
        self._streak = _Streak()

    @property
    def confirming(self) -> bool:
        return 0 < self._streak.count < self.failures

    def read(self, at: str) -> list[Reading]:
        status, problem = self._probe()
        if problem:
            self._streak.count += 1
        else:
            self._streak.count = 0
        breach = self._streak.count >= self.failures
        value = {"status": status, "consecutive_failures": self._streak.count}
        detail = f"{self.url}: {problem}" if problem else ""
        if breach:
            detail = f"{self.url} failed {self._streak.count} times in a row (last: {problem})"
        return [
            Reading(
                "health",
                self.url,
                not problem,
                value,
                f"{self.failures} failures in a row",
                at,
                detail,
                breach,
            )
        ]

    def _probe(self) -> tuple[int | None, str]:
        # The health step's probe (rollback.probe): 2xx passes, a 3xx fails unless asked.
        probe = probe_http(
            self.url,
            timeout_s=self.request_timeout_s,
            follow_redirects=self.follow_redirects,
            user_agent="rollback-watch",
        )
        return probe.status, probe.failure


def alb_dimensions(topology: Topology, color: str) -> list[dict[str, str]]:
    """CloudWatch dimensions of the colour's target group on the topology's load balancer.

    AWS names them by ARN suffix: LoadBalancer `app/<name>/<id>` (taken from
    the load balancer ARN, or from the listener ARN when the topology has none)
    and TargetGroup `targetgroup/<name>/<id>`.
    """
    lb_arn = topology.load_balancer_arn
    if lb_arn:
        lb = lb_arn.split(":loadbalancer/", 1)[-1]
    else:
        lb = "/".join(topology.listener_arn.split(":listener/", 1)[-1].split("/")[:3])
    tg = topology.target_groups[color].rsplit(":", 1)[-1]
    return [{"Name": "TargetGroup", "Value": tg}, {"Name": "LoadBalancer", "Value": lb}]


class MetricSignal:
    """The colour's 5xx rate and p99 response time from GetMetricData, since `since`."""

    def __init__(
        self,
        metrics: Metrics,
        topology: Topology,
        color: str,
        *,
        since: datetime,
        now: Now = utc_now,
        max_5xx_rate: float | None = None,
        max_p99_ms: float | None = None,
        failures: int = 3,
    ) -> None:
        self.metrics = metrics
        self.color = color
        self.dimensions = alb_dimensions(topology, color)
        self.since = since
        self.now = now
        self.max_5xx_rate = max_5xx_rate
        self.max_p99_ms = max_p99_ms
        self.failures = failures
        self.name = f"metrics of {color}"
        self._unreadable = {"5xx-rate": _Streak(), "p99": _Streak()}

    @property
    def confirming(self) -> bool:
        return any(0 < s.count < self.failures for s in self._unreadable.values())

    def _query(self, qid: str, metric: str, stat: str) -> dict[str, Any]:
        return {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": self.dimensions,
                },
                "Period": METRIC_PERIOD_S,
                "Stat": stat,
            },
            "ReturnData": True,
        }

    def _window(self) -> tuple[datetime, datetime]:
        start = self.since.astimezone(UTC).replace(second=0, microsecond=0)
        return start, self.now().astimezone(UTC) + timedelta(seconds=METRIC_PERIOD_S)

    def read(self, at: str) -> list[Reading]:
        found = []
        start, end = self._window()
        if self.max_5xx_rate is not None:
            # One call for the two sums; p99 goes alone so that a backend unable to
            # compute percentiles does not blind the 5xx rate.
            try:
                data = self.metrics.get_metric_data(
                    [
                        self._query("errors", "HTTPCode_Target_5XX_Count", "Sum"),
                        self._query("requests", "RequestCount", "Sum"),
                    ],
                    start,
                    end,
                )
            except RollbackError as exc:
                found.append(self._unread("5xx-rate", exc, at))
            else:
                self._unreadable["5xx-rate"].count = 0
                found.append(self._judge_rate(sum(data["errors"]), sum(data["requests"]), at))
        if self.max_p99_ms is not None:
            try:
                data = self.metrics.get_metric_data(
                    [self._query("p99", "TargetResponseTime", "p99")], start, end
                )
            except RollbackError as exc:
                found.append(self._unread("p99", exc, at))
            else:
                self._unreadable["p99"].count = 0
                found.append(self._judge_p99(data["p99"], at))
        return found

    def _unread(self, signal: str, exc: RollbackError, at: str) -> Reading:
        return _unreadable_reading(
            signal, self.color, exc, self._unreadable[signal], self.failures, at
        )

    def _judge_rate(self, errors: float, requests: float, at: str) -> Reading:
        assert self.max_5xx_rate is not None
        value = {"errors": errors, "requests": requests, "rate": None}
        if requests < MIN_REQUESTS:
            return Reading(
                "5xx-rate",
                self.color,
                True,
                value,
                self.max_5xx_rate,
                at,
                f"{requests:g} requests so far; the rate is judged from {MIN_REQUESTS} on",
            )
        rate = errors / requests
        value["rate"] = round(rate, 4)
        breach = rate > self.max_5xx_rate
        detail = (
            f"the 5xx rate of {self.color} is {rate:.1%} ({errors:g} of {requests:g} requests), "
            f"above {self.max_5xx_rate:.1%}"
            if breach
            else ""
        )
        return Reading(
            "5xx-rate", self.color, not breach, value, self.max_5xx_rate, at, detail, breach
        )

    def _judge_p99(self, values: list[float], at: str) -> Reading:
        assert self.max_p99_ms is not None
        if not values:
            return Reading("p99", self.color, True, None, self.max_p99_ms, at, "no datapoints yet")
        p99_ms = max(values) * 1000  # TargetResponseTime is in seconds; the worst period counts
        breach = p99_ms > self.max_p99_ms
        detail = (
            f"the p99 response time of {self.color} is {p99_ms:.0f} ms, above {self.max_p99_ms:g} ms"
            if breach
            else ""
        )
        return Reading(
            "p99", self.color, not breach, round(p99_ms, 1), self.max_p99_ms, at, detail, breach
        )


def _unreadable_reading(
    signal: str, target: str, exc: RollbackError, streak: _Streak, failures: int, at: str
) -> Reading:
    streak.count += 1
    breach = streak.count >= failures
    detail = f"could not read {signal} of {target}: {exc.message.rstrip('.')}"
    if breach:
        detail += f" ({streak.count} times in a row: the watch cannot see, so it stops trusting the release)"
    return Reading(signal, target, False, None, None, at, detail, breach, unreadable=True)


def _last_seen(last: dict[tuple[str, str], Reading]) -> str:
    """The watch's state for progress lines: what is failing now, else that all is clean."""
    failing = [r.detail or f"{r.signal} {r.target} not ok" for r in last.values() if not r.ok]
    if failing:
        return "; ".join(failing[:2]) + (f" (+{len(failing) - 2} more)" if len(failing) > 2 else "")
    return f"{len(last)} signal reading(s) clean" if last else ""


@dataclass(frozen=True)
class SignalSpec:
    """What to watch and how often; the CLI builds it from the command's options."""

    alarms: tuple[str, ...] = ()
    health_urls: tuple[str, ...] = ()
    max_5xx_rate: float | None = None
    max_p99_ms: float | None = None
    failures: int = 3  # consecutive health failures (or unreadable rounds) that are a breach
    interval_s: float = 10.0
    confirm_interval_s: float = 0.25
    follow_redirects: bool = False  # a health URL's 3xx fails unless this is set

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alarms": list(self.alarms), "health_urls": list(self.health_urls)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignalSpec:
        return cls(
            alarms=tuple(data.get("alarms") or ()),
            health_urls=tuple(data.get("health_urls") or ()),
            max_5xx_rate=data.get("max_5xx_rate"),
            max_p99_ms=data.get("max_p99_ms"),
            failures=int(data.get("failures", 3)),
            interval_s=float(data.get("interval_s", 10.0)),
            confirm_interval_s=float(data.get("confirm_interval_s", 0.25)),
            follow_redirects=bool(data.get("follow_redirects", False)),
        )

    def with_topology(self, topology: Topology, color: str) -> SignalSpec:
        """This spec plus the alarms and health URLs the topology names for `color` (no duplicates)."""
        alarms = tuple(dict.fromkeys([*self.alarms, *topology.alarms.get(color, [])]))
        urls = tuple(dict.fromkeys([*self.health_urls, *topology.health_urls.get(color, [])]))
        return SignalSpec(
            alarms,
            urls,
            self.max_5xx_rate,
            self.max_p99_ms,
            self.failures,
            self.interval_s,
            self.confirm_interval_s,
            self.follow_redirects,
        )

    def check(self) -> None:
        """Raise UsageError for an interval or threshold that cannot work."""
        if self.interval_s <= 0:
            raise UsageError(f"the polling interval must be positive, got {self.interval_s:g}s.")
        if self.failures < 1:
            raise UsageError(f"--health-failures must be at least 1, got {self.failures}.")
        if self.max_p99_ms is not None and self.max_p99_ms <= 0:
            raise UsageError(f"--max-p99-ms must be positive, got {self.max_p99_ms:g}.")


@dataclass(frozen=True)
class CloudApis:
    """The typed AWS wrappers a cutover and a watch use."""

    elbv2: LoadBalancing
    route53: Dns | None
    alarms: Alarms
    metrics: Metrics


def build_signals(
    spec: SignalSpec,
    topology: Topology,
    color: str,
    apis: CloudApis,
    *,
    since: datetime,
    now: Now = utc_now,
) -> list[Signal]:
    """The signals of `spec` for `color`; raises UsageError when a named alarm does not exist."""
    spec.check()
    signals: list[Signal] = []
    if spec.alarms:
        states = apis.alarms.states(list(spec.alarms))
        missing = [a for a in spec.alarms if a not in states]
        if missing:
            raise UsageError(
                f"alarm {', '.join(missing)} does not exist in CloudWatch; nothing was changed: "
                "fix the --alarm name or the stack's topology.",
                missing=missing,
            )
        signals.append(AlarmSignal(apis.alarms, spec.alarms, spec.failures))
    signals += [
        HealthSignal(url, spec.failures, follow_redirects=spec.follow_redirects)
        for url in spec.health_urls
    ]
    if spec.max_5xx_rate is not None or spec.max_p99_ms is not None:
        signals.append(
            MetricSignal(
                apis.metrics,
                topology,
                color,
                since=since,
                now=now,
                max_5xx_rate=spec.max_5xx_rate,
                max_p99_ms=spec.max_p99_ms,
                failures=spec.failures,
            )
        )
    return signals


# -- the watcher -------------------------------------------------------------


@dataclass(frozen=True)
class WatchOutcome:
    """How a watch ended: clean after its duration, on a breach, or stopped."""

    result: str  # clean | breach | stopped
    what: str
    duration_s: float
    waited_s: float
    rounds: int
    readings: tuple[Reading, ...]  # the last reading of every signal target
    breach: Breach | None = None
    stop: StopReason | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "what": self.what,
            "duration_s": self.duration_s,
            "waited_s": round(self.waited_s, 3),
            "rounds": self.rounds,
            "readings": [r.to_dict() for r in self.readings],
            "breach": self.breach.to_dict() if self.breach else None,
            "stop": self.stop.to_dict() if self.stop else None,
        }

    def evidence(self) -> list[Evidence]:
        """One Evidence per signal target, as the journal keeps it."""
        found = []
        for r in self.readings:
            api = {
                "alarm": "cloudwatch:DescribeAlarms",
                "health": "http:GET",
            }.get(r.signal, "cloudwatch:GetMetricData")
            observed = {
                "signal": r.signal,
                "target": r.target,
                "value": r.value,
                "threshold": r.threshold,
                "rounds": self.rounds,
            }
            # A failure that did not (yet) reach its threshold is reported, not failed.
            found.append(evidence(api, observed, not r.breach, r.detail))
        return found


class Watcher:
    """Reads every signal in rounds for a duration; ends early on a breach or a stop."""

    def __init__(
        self,
        signals: Sequence[Signal],
        spec: SignalSpec,
        *,
        timing: Timing | None = None,
        now: Now = utc_now,
    ) -> None:
        self.signals = list(signals)
        self.spec = spec
        self.timing = timing or Timing()
        self.now = now

    def watch(
        self, duration_s: float, what: str, should_stop: ShouldStop = lambda: None
    ) -> WatchOutcome:
        """Watch for `duration_s` (at least one round); never raises for a signal's failure.

        The stop check comes before each round, so a stop is seen within one
        interval. Sleeping goes through `timing.sleep` (the CLI's wakes on a
        signal) and every wait is reported to `timing.on_wait`.
        """
        clock = self.timing.clock
        start = clock()
        rounds = 0
        last: dict[tuple[str, str], Reading] = {}
        while True:
            stop = should_stop()
            if stop is not None:
                return self._outcome(
                    "stopped", what, duration_s, clock() - start, rounds, last, stop=stop
                )
            at = _iso(self.now())
            rounds += 1
            breach = None
            for signal in self.signals:
                for reading in signal.read(at):
                    last[(reading.signal, reading.target)] = reading
                    if reading.breach and breach is None:
                        breach = Breach(
                            reading.signal,
                            reading.target,
                            reading.value,
                            reading.threshold,
                            reading.at,
                            reading.detail,
                        )
            elapsed = clock() - start
            if breach is not None:
                log.warning("breach during %s: %s", what, breach.sentence)
                return self._outcome(
                    "breach", what, duration_s, elapsed, rounds, last, breach=breach
                )
            if elapsed >= duration_s:
                return self._outcome("clean", what, duration_s, elapsed, rounds, last)
            if self.timing.on_wait:
                self.timing.on_wait(what, elapsed, duration_s, _last_seen(last))
            confirming = any(s.confirming for s in self.signals)
            pause = self.spec.confirm_interval_s if confirming else self.spec.interval_s
            self.timing.sleep(max(0.0, min(pause, duration_s - elapsed)))

    @staticmethod
    def _outcome(
        result: str,
        what: str,
        duration_s: float,
        waited_s: float,
        rounds: int,
        last: dict[tuple[str, str], Reading],
        *,
        breach: Breach | None = None,
        stop: StopReason | None = None,
    ) -> WatchOutcome:
        return WatchOutcome(
            result,
            what,
            duration_s,
            waited_s,
            rounds,
            tuple(last.values()),
            breach=breach,
            stop=stop,
        )


class WatchStep:
    """A watch as a Step: apply changes nothing, verify watches for the duration.

    `watch()` returns the structured outcome the cutover loop acts on;
    `verify()` turns it into evidence (a breach is a not-ok evidence).
    """

    kind = "watch"

    def __init__(
        self, watcher: Watcher, duration_s: float, what: str, should_stop: ShouldStop = lambda: None
    ) -> None:
        self.watcher = watcher
        self.duration_s = duration_s
        self.what = what
        self.should_stop = should_stop
        self.outcome: WatchOutcome | None = None

    def describe(self) -> StepDescription:
        names = [s.name for s in self.watcher.signals] or ["no signals"]
        return StepDescription(
            kind=self.kind,
            summary=f"watch {'; '.join(names)} for {self.duration_s:g}s ({self.what})",
            changes={"duration_s": self.duration_s, "signals": names},
            reason="a breach sends traffic back to the previous colour",
            expected_seconds=self.duration_s,
        )

    def apply(self) -> Applied:
        """Nothing to change: a watch only reads."""
        return Applied(changed=False)

    def watch(self) -> WatchOutcome:
        self.outcome = self.watcher.watch(self.duration_s, self.what, self.should_stop)
        return self.outcome

    def verify(self) -> list[Evidence]:
        outcome = self.watch()
        found = outcome.evidence()
        if outcome.result == "stopped" and outcome.stop is not None:
            found.append(
                evidence("rollback:stop", outcome.stop.to_dict(), False, outcome.stop.reason)
            )
        return found

    def compensate(self, prior: dict[str, Any]) -> None:
        """Nothing to put back."""


# -- `rollback watch` --------------------------------------------------------

RollbackTo = Callable[[str, str], Any]
"""rollback_to(target_version, reason) -> an object with `.ok` and `.to_dict()` (a RunResult)."""


def previous_stable(registry: Registry, current: str) -> str:
    """The newest release marked stable other than `current`; raises NotFound when there is none."""
    for version in registry.versions():
        if version != current and registry.show(version).status == "stable":
            return version
    raise NotFound(
        f"no release of {registry.stack} other than {current} is marked stable, so there is nothing "
        "to roll back to; mark one with `rollback release mark VERSION --stable` or pass --to.",
    )


@dataclass(frozen=True)
class WatchSpec:
    """`rollback watch`: how long, what, where to roll back to, whether to promote."""

    window_s: float = 600.0
    signals: SignalSpec = field(default_factory=SignalSpec)
    to_version: str | None = None
    promote: bool = False


@dataclass(frozen=True)
class WatchResult:
    """The end of `rollback watch`. `result`: passed | rolled-back | rollback-failed | stopped."""

    stack: str
    version: str
    color: str
    result: str
    message: str
    window_s: float
    watched_s: float
    target_version: str
    outcome: WatchOutcome
    rollback: dict[str, Any] | None = None
    promoted: bool = False

    @property
    def ok(self) -> bool:
        return self.result == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "version": self.version,
            "color": self.color,
            "result": self.result,
            "ok": self.ok,
            "message": self.message,
            "window_s": self.window_s,
            "watched_s": round(self.watched_s, 3),
            "target_version": self.target_version,
            "breach": self.outcome.breach.to_dict() if self.outcome.breach else None,
            "stop": self.outcome.stop.to_dict() if self.outcome.stop else None,
            "readings": [r.to_dict() for r in self.outcome.readings],
            "rollback": self.rollback,
            "promoted": self.promoted,
        }


def watch_release(
    registry: Registry,
    apis: CloudApis,
    spec: WatchSpec,
    rollback_to: RollbackTo,
    *,
    timing: Timing | None = None,
    now: Now = utc_now,
    should_stop: ShouldStop = lambda: None,
    actor: str = "",
) -> WatchResult:
    """Watch the current release for what is left of its window; roll back on a breach.

    The window starts when the current release was recorded. The stack lock
    is held while watching (LockHeld, exit 3, when another run holds it) and
    released before `rollback_to`, which takes it itself. Raises NotFound
    when there is no current release or nothing to roll back to (checked
    before watching), UsageError for a missing alarm.
    """
    from rollback.plan import new_run_id
    from rollback.store.lock import HeldLock

    store, stack = registry.store, registry.stack
    current = registry.current()
    if current is None:
        raise NotFound(
            f"no release of {stack} is current; record the deployed release with `rollback release record`."
        )
    release = registry.show(current).release
    topology = registry.topology(release)
    color = release.color or topology.live_color
    target = (
        registry.resolve(spec.to_version) if spec.to_version else previous_stable(registry, current)
    )
    recorded = datetime.fromisoformat(release.created_at)
    if recorded.tzinfo is None:
        recorded = recorded.replace(tzinfo=UTC)
    left = max(0.0, spec.window_s - (now() - recorded).total_seconds())
    signals_spec = spec.signals.with_topology(topology, color)
    run_id = f"watch-{new_run_id(now())}"
    lock = HeldLock(
        store, stack, run_id, lease_seconds=int(left + 900), owner=actor or None
    ).acquire()
    try:
        signals = build_signals(signals_spec, topology, color, apis, since=recorded, now=now)
        watcher = Watcher(signals, signals_spec, timing=timing, now=now)
        outcome = watcher.watch(left, f"watch of {current} on {color}", should_stop)
    finally:
        lock.release()
    base: dict[str, Any] = {
        "stack": stack,
        "version": current,
        "color": color,
        "window_s": spec.window_s,
        "watched_s": outcome.waited_s,
        "target_version": target,
        "outcome": outcome,
    }
    if outcome.result == "stopped":
        assert outcome.stop is not None
        return WatchResult(
            result="stopped",
            message=(
                f"The watch of {current} stopped ({_stop_words(outcome.stop)}) before its window ended; "
                "nothing was rolled back and the release was not promoted."
            ),
            **base,
        )
    if outcome.result == "breach":
        assert outcome.breach is not None
        reason = f"watch of {current}: {outcome.breach.sentence}"
        result = rollback_to(target, reason)
        rolled = bool(getattr(result, "ok", False))
        return WatchResult(
            result="rolled-back" if rolled else "rollback-failed",
            message=(
                f"{outcome.breach.sentence[:1].upper()}{outcome.breach.sentence[1:]} at {outcome.breach.at}; "
                + (
                    f"rolled {stack} back from {current} to {target}."
                    if rolled
                    else f"the rollback to {target} did not succeed: {getattr(result, 'message', 'see its report')}"
                )
            ),
            rollback=result.to_dict(),
            **base,
        )
    promoted = False
    if spec.promote:
        registry.mark(
            current, "stable", f"watched {spec.window_s:g}s clean by {actor or 'rollback watch'}"
        )
        promoted = True
    return WatchResult(
        result="passed",
        message=(
            f"Release {current} of {stack} on {color} passed its {spec.window_s:g}s window with every signal clean"
            + ("; marked stable." if promoted else ".")
        ),
        promoted=promoted,
        **base,
    )


def _stop_words(stop: StopReason) -> str:
    if stop.kind == "emergency":
        return f"emergency stop requested by {stop.by or 'someone'} at {stop.at}: {stop.reason or 'no reason given'}"
    return stop.reason


__all__ = [
    "AlarmSignal",
    "Breach",
    "CloudApis",
    "HealthSignal",
    "MetricSignal",
    "Reading",
    "SignalSpec",
    "StopReason",
    "WatchOutcome",
    "WatchResult",
    "WatchSpec",
    "WatchStep",
    "Watcher",
    "build_signals",
    "clear_stop",
    "parse_duration",
    "parse_rate",
    "previous_stable",
    "request_stop",
    "stop_checker",
    "stop_requested",
    "watch_release",
]
