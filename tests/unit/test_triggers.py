"""Triggers and the cutover loop against an in-process moto ALB, Route53 zone and CloudWatch,
with real loopback HTTP servers as the colours' health endpoints and a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from rollback.aws.cloudwatch import Alarms, Metrics
from rollback.aws.elbv2 import LoadBalancing
from rollback.aws.route53 import Dns
from rollback.cutover import Cutover, CutoverSpec, is_cutover, parse_steps
from rollback.errors import CheckFailed, LockHeld, NotFound, UsageError
from rollback.journal import Journal, list_runs
from rollback.releases import Attachments, Registry
from rollback.report import build_report, render_markdown
from rollback.steps.traffic import TrafficStep
from rollback.store import open_store
from rollback.store.lock import acquire_lock, read_lock
from rollback.triggers import (
    CloudApis,
    MetricSignal,
    SignalSpec,
    WatchSpec,
    alb_dimensions,
    clear_stop,
    parse_duration,
    parse_rate,
    request_stop,
    stop_requested,
    watch_release,
)
from rollback.waiting import Timing
from tests.unit.healthserver import HealthServer
from tests.unit.test_releases import commit, make_repo
from tests.unit.test_step_traffic import Alb, alb, network  # noqa: F401  (the moto ALB fixtures)

STACK = "webapp/prod"


@dataclass
class Clock:
    """Fake monotonic time that moves only when the code sleeps; runs `at` actions when reached."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)
    actions: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        due = [a for a in self.actions if a[0] <= self.now]
        self.actions = [a for a in self.actions if a[0] > self.now]
        for _, action in due:
            action()

    def at(self, when: float, action: Callable[[], None]) -> None:
        self.actions.append((when, action))

    def timing(self) -> Timing:
        return Timing(sleep=self.sleep, clock=lambda: self.now)


@dataclass
class Stage:
    """Blue runs stable 1.4.0 with all traffic; green runs the current release 1.5.0."""

    alb: Alb
    route53: Any
    cloudwatch: Any
    registry: Registry
    apis: CloudApis
    blue: HealthServer
    green: HealthServer
    clock: Clock
    events: list[Any] = field(default_factory=list)
    hooks: list[Callable[[Any], None]] = field(default_factory=list)

    @property
    def topology(self) -> Any:
        return self.alb.topology

    def weights(self) -> dict[str, int]:
        return self.alb.weights()

    def rule_weights(self) -> dict[str, int]:
        return self.alb.weights(self.topology.rule_arns[0])

    def dns_weights(self) -> dict[str, int]:
        listed = self.route53.list_resource_record_sets(HostedZoneId=self.topology.zone_id)
        return {
            r["SetIdentifier"]: r["Weight"]
            for r in listed["ResourceRecordSets"]
            if "SetIdentifier" in r
        }

    def when(self, step: str, state: str, action: Callable[[], None]) -> None:
        """Run `action` once when the journal records `step` reaching `state`."""

        def hook(event: Any) -> None:
            if event.step == step and event.state == state:
                action()

        self.hooks.append(hook)

    def on_event(self, event: Any) -> None:
        self.events.append(event)
        for hook in list(self.hooks):
            hook(event)

    def alarm(self, name: str) -> None:
        self.cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=10,
            ComparisonOperator="GreaterThanThreshold",
        )

    def put_requests(self, color: str, requests: float, errors: float) -> None:
        dims = alb_dimensions(self.topology, color)
        self.cloudwatch.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {
                    "MetricName": "RequestCount",
                    "Dimensions": dims,
                    "Value": requests,
                    "Unit": "Count",
                },
                {
                    "MetricName": "HTTPCode_Target_5XX_Count",
                    "Dimensions": dims,
                    "Value": errors,
                    "Unit": "Count",
                },
            ],
        )


@pytest.fixture
def stage(alb: Alb, tmp_path: Path) -> Iterator[Stage]:  # noqa: F811
    route53 = boto3.client("route53", region_name="us-east-1")
    zone = route53.create_hosted_zone(Name="example.com", CallerReference=tmp_path.name)[
        "HostedZone"
    ]["Id"]
    route53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "app.example.com",
                        "Type": "CNAME",
                        "SetIdentifier": colour,
                        "Weight": weight,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": f"{colour}.example.com"}],
                    },
                }
                for colour, weight in (("blue", 100), ("green", 0))
            ]
        },
    )
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    with HealthServer() as blue, HealthServer() as green:
        alb.topology = replace(
            alb.topology,
            zone_id=zone,
            health_urls={"blue": [blue.url], "green": [green.url]},
            versions={"blue": "1.4.0", "green": "1.5.0"},
            live_color="green",
        )
        store = open_store(str(tmp_path / "store"))
        registry = Registry(store, STACK)
        repo = make_repo(tmp_path / "iac")
        artifact = tmp_path / "app.tgz"
        artifact.write_bytes(b"app")
        for version, colour in (("1.4.0", "blue"), ("1.5.0", "green")):
            commit(repo, "main.py", version, f"chore: {version}")
            topology = replace(alb.topology, live_color=colour)
            registry.record(
                version,
                artifact,
                Path(repo.working_dir),
                attachments=Attachments(
                    topology=json.dumps(topology.to_dict()).encode(), color=colour
                ),
            )
            if version == "1.4.0":
                registry.mark(version, "stable", "baked")
        apis = CloudApis(
            LoadBalancing(alb.client), Dns(route53), Alarms(cloudwatch), Metrics(cloudwatch)
        )
        stage = Stage(alb, route53, cloudwatch, registry, apis, blue, green, Clock())
        yield stage


def cutover_of(stage: Stage, **kwargs: Any) -> Cutover:
    return Cutover(
        stage.registry.store,
        STACK,
        stage.apis,
        timing=stage.clock.timing(),
        actor="ci",
        on_event=stage.on_event,
        **kwargs,
    )


SPEC = CutoverSpec(
    "green", steps=(10, 50, 100), pause_s=60, bake_s=600, signals=SignalSpec(interval_s=10)
)


# -- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("45", 45),
        ("1.5m", 90),
        ("1m30s", 90),
        ("1h30m", 5400),
        ("2h0m5s", 7205),
        (" 5M ", 300),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ten minutes",
        "10d",
        "-5s",
        "5 m s",
        "1m30",
        "30s1m",
        "nan",
        "inf",
        "1e3s",
        "١٢s",
        "9" * 400,
    ],
)
def test_a_bad_duration_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="is not a duration"):
        parse_duration(text, "--bake")


@pytest.mark.parametrize("text", ["169h", "9" * 30 + "h", "604801", "10081m"])
def test_a_duration_longer_than_a_week_is_refused(text: str) -> None:
    # Finite, but a lease or a wait that long overflows the clock (exit 70 later).
    with pytest.raises(UsageError, match="is longer than a week; write at most 168h"):
        parse_duration(text, "--window")
    assert parse_duration("168h") == 604800


@pytest.mark.parametrize("text", ["\u0665%", "0.\u0665", "1_0%", "nan", "nan%", "0x1"])
def test_a_rate_in_other_digits_or_nan_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="must be a fraction 0..1"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["\u0661\u0660,\u0661\u0660\u0660", "1_0,100", "10,,100", ""])
def test_steps_in_other_digits_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="must be comma-separated percentages"):
        parse_steps(text)


def test_rates_and_steps() -> None:
    assert parse_rate("5%") == 0.05 and parse_rate("0.1") == 0.1
    with pytest.raises(UsageError):
        parse_rate("150%")
    assert parse_steps("10,50,100") == (10, 50, 100)
    for bad in ("10,50", "50,10,100", "0,100"):
        with pytest.raises(UsageError):
            replace(SPEC, steps=parse_steps(bad)).check()


# -- stop requests -------------------------------------------------------------


def test_stop_request_round_trip(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert stop_requested(store, STACK) is None
    request_stop(store, STACK, "5xx storm", "ana")
    doc = stop_requested(store, STACK)
    assert doc is not None and (doc["reason"], doc["by"], doc["stack"]) == (
        "5xx storm",
        "ana",
        STACK,
    )
    assert store.has_doc("stops/webapp/prod.json")
    assert clear_stop(store, STACK) == doc
    assert stop_requested(store, STACK) is None and clear_stop(store, STACK) is None


# -- cutover ---------------------------------------------------------------------


def test_clean_cutover_in_steps_bakes_and_promotes(stage: Stage) -> None:
    seen: dict[str, dict[str, int]] = {}
    for p in (10, 50):
        stage.when(
            f"traffic-{p}", "verified", lambda p=p: seen.__setitem__(f"alb-{p}", stage.weights())
        )
        stage.when(
            f"dns-{p}", "verified", lambda p=p: seen.__setitem__(f"dns-{p}", stage.dns_weights())
        )
    result = cutover_of(stage).run(replace(SPEC, promote=True))
    assert result.ok, result.message
    assert seen == {
        "alb-10": {"blue": 90, "green": 10},
        "dns-10": {"blue": 90, "green": 10},
        "alb-50": {"blue": 50, "green": 50},
        "dns-50": {"blue": 50, "green": 50},
    }
    assert stage.weights() == {"blue": 0, "green": 100}
    assert stage.rule_weights() == {"blue": 0, "green": 100}
    assert stage.dns_weights() == {"blue": 0, "green": 100}
    assert stage.registry.show("1.5.0").status == "stable" and result.promoted
    # The bake really watched 600 s of (fake) time after two 60 s pauses, every 10 s.
    assert sum(stage.clock.slept) == pytest.approx(720)
    assert len(stage.green.requests) >= 60
    run = Journal.load(stage.registry.store, STACK, result.run_id)
    assert is_cutover(run) and run.result == "succeeded"
    assert [r.state for r in run.steps] == ["verified"] * 9
    assert read_lock(stage.registry.store, STACK) is None


def test_green_failing_in_the_second_step_sends_traffic_back_to_blue(stage: Stage) -> None:
    stage.when("traffic-50", "verified", lambda: setattr(stage.green, "status", 503))
    result = cutover_of(stage).run(SPEC)
    assert result.result == "reverted" and not result.ok
    assert stage.weights() == {"blue": 100, "green": 0}
    assert stage.rule_weights() == {"blue": 100, "green": 0}
    assert stage.dns_weights() == {"blue": 100, "green": 0}
    assert result.breach is not None and result.breach["signal"] == "health"
    assert result.breach["target"] == stage.green.url
    assert "failed 3 times in a row" in result.breach["sentence"]
    run = Journal.load(stage.registry.store, STACK, result.run_id)
    states = {r.name: r.state for r in run.steps}
    assert states["watch-50"] == "failed" and states["traffic-100"] == "pending"
    assert states["traffic-10"] == states["traffic-50"] == "compensated"
    assert run.result == "failed" and run.traffic_restored_at is not None
    # history and report see the cutover like any run
    summary = list_runs(stage.registry.store, STACK)[-1]
    assert (summary.run_id, summary.result, summary.to_version) == (
        result.run_id,
        "failed",
        "1.5.0",
    )
    assert "watch-50" in render_markdown(build_report(run))
    # Confirmation probes come faster than the interval: detection took well under 3 intervals.
    assert stage.clock.now < 60 + 10 + 1
    assert stage.registry.show("1.5.0").status == "candidate"


def test_alarm_in_alarm_during_the_bake_reverts(stage: Stage) -> None:
    stage.alarm("green-5xx")
    stage.clock.at(
        300,
        lambda: stage.cloudwatch.set_alarm_state(
            AlarmName="green-5xx", StateValue="ALARM", StateReason="5xx above 10"
        ),
    )
    spec = replace(SPEC, steps=(100,), signals=SignalSpec(alarms=("green-5xx",), interval_s=10))
    result = cutover_of(stage).run(spec)
    assert result.result == "reverted"
    assert stage.weights() == {"blue": 100, "green": 0}
    assert result.breach is not None
    assert (result.breach["signal"], result.breach["target"], result.breach["value"]) == (
        "alarm",
        "green-5xx",
        "ALARM",
    )
    assert 300 <= stage.clock.now <= 310


def test_a_missing_alarm_is_refused_before_traffic_moves(stage: Stage) -> None:
    spec = replace(SPEC, signals=SignalSpec(alarms=("no-such-alarm",)))
    with pytest.raises(UsageError, match="no-such-alarm does not exist"):
        cutover_of(stage).run(spec)
    assert stage.weights() == {"blue": 100, "green": 0}
    assert stage.alb.mutating == []


def test_5xx_rate_above_the_threshold_reverts(stage: Stage) -> None:
    stage.put_requests("green", requests=200, errors=30)
    stage.put_requests("blue", requests=1000, errors=900)  # blue's errors are not green's
    spec = replace(SPEC, signals=SignalSpec(max_5xx_rate=0.05, interval_s=10))
    result = cutover_of(stage).run(spec)
    assert result.result == "reverted"
    assert result.breach is not None and result.breach["signal"] == "5xx-rate"
    assert result.breach["value"] == {"errors": 30.0, "requests": 200.0, "rate": 0.15}
    assert stage.weights() == {"blue": 100, "green": 0}


def test_5xx_rate_below_the_threshold_passes(stage: Stage) -> None:
    stage.put_requests("green", requests=200, errors=2)
    spec = replace(SPEC, signals=SignalSpec(max_5xx_rate=0.05, interval_s=10))
    result = cutover_of(stage).run(spec)
    assert result.ok, result.message
    assert stage.weights() == {"blue": 0, "green": 100}


def test_p99_cannot_be_read_from_moto_and_unreadable_rounds_are_a_breach(
    stage: Stage, moto_server: str
) -> None:
    # Moto's GetMetricData answers HTTP 500 for a percentile statistic.
    client = boto3.client(
        "cloudwatch",
        region_name="us-east-1",
        endpoint_url=moto_server,
        config=Config(retries={"total_max_attempts": 1}),
    )
    client.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": alb_dimensions(stage.topology, "green"),
                "Value": 0.9,
            }
        ],
    )
    signal = MetricSignal(
        Metrics(client),
        stage.topology,
        "green",
        since=datetime.now(UTC),
        max_p99_ms=500,
        failures=2,
    )
    first = signal.read("t1")[0]
    assert first.unreadable and not first.breach and signal.confirming
    second = signal.read("t2")[0]
    assert second.breach and "could not read p99 of green" in second.detail


def test_an_emergency_stop_halts_the_cutover_with_traffic_back_on_blue(stage: Stage) -> None:
    store = stage.registry.store
    stage.when(
        "watch-10",
        "applying",
        lambda: stage.clock.at(30, lambda: request_stop(store, STACK, "pager", "ana")),
    )
    result = cutover_of(stage).run(SPEC)
    assert result.result == "stopped" and not result.ok
    assert result.stop is not None and (result.stop["kind"], result.stop["by"]) == (
        "emergency",
        "ana",
    )
    assert stage.weights() == {"blue": 100, "green": 0}
    run = Journal.load(store, STACK, result.run_id)
    assert run.result == "stopped" and run.last("stopped") is not None
    assert read_lock(store, STACK) is None  # the emergency rollback can take it


def test_a_pending_stop_request_refuses_a_new_cutover(stage: Stage) -> None:
    request_stop(stage.registry.store, STACK, "incident", "ana")
    with pytest.raises(CheckFailed, match="emergency stop .* requested by ana"):
        cutover_of(stage).run(SPEC)
    assert stage.alb.mutating == []


def test_an_interrupt_leaves_the_verified_step_and_resume_finishes(stage: Stage) -> None:
    flag: dict[str, str | None] = {"signal": None}
    stage.when(
        "watch-50",
        "applying",
        lambda: stage.clock.at(stage.clock.now + 20, lambda: flag.update(signal="SIGTERM")),
    )
    result = cutover_of(stage, interrupted=lambda: flag["signal"]).run(SPEC)
    assert result.result == "interrupted"
    assert stage.weights() == {"blue": 50, "green": 50}  # where traffic-50 left it, verified
    store = stage.registry.store
    run = Journal.load(store, STACK, result.run_id)
    assert not run.finished and run.in_flight is not None and run.in_flight.name == "watch-50"
    assert run.last("stopped") is not None and run.last("stopped").data["weights"] == {
        "blue": 50,
        "green": 50,
    }
    assert read_lock(store, STACK) is None

    resumed = cutover_of(stage).resume(result.run_id)
    assert resumed.ok, resumed.message
    assert stage.weights() == {"blue": 0, "green": 100}
    assert stage.dns_weights() == {"blue": 0, "green": 100}
    run = Journal.load(store, STACK, result.run_id)
    assert run.result == "succeeded" and run.last("resumed") is not None
    with pytest.raises(UsageError, match="nothing to resume"):
        cutover_of(stage).resume(result.run_id)


def test_rollback_on_breach_calls_rollback_to_the_previous_stable_release(stage: Stage) -> None:
    calls: list[tuple[str, str]] = []
    stage.green.status = 500

    @dataclass
    class Done:
        ok: bool = True

        def to_dict(self) -> dict[str, Any]:
            return {"ok": self.ok, "result": "succeeded"}

    def rollback_to(version: str, reason: str) -> Done:
        calls.append((version, reason))
        assert read_lock(stage.registry.store, STACK) is None  # released before the rollback
        return Done()

    result = cutover_of(stage, rollback_to=rollback_to).run(replace(SPEC, rollback_on_breach=True))
    assert result.result == "reverted" and result.rollback == {"ok": True, "result": "succeeded"}
    assert [v for v, _ in calls] == ["1.4.0"] and stage.green.url in calls[0][1]


def test_a_held_lock_refuses_the_cutover(stage: Stage) -> None:
    acquire_lock(stage.registry.store, STACK, "other-run")
    with pytest.raises(LockHeld):
        cutover_of(stage).run(SPEC)
    assert stage.weights() == {"blue": 100, "green": 0}


# -- watch -----------------------------------------------------------------------


def traffic_rollback(stage: Stage) -> Callable[[str, str], Any]:
    """A real rollback_to for watch: send all traffic to the target's colour, verified, and make it current."""

    @dataclass
    class Moved:
        ok: bool
        version: str

        def to_dict(self) -> dict[str, Any]:
            return {"ok": self.ok, "to_version": self.version}

    def rollback_to(version: str, reason: str) -> Moved:
        colour = stage.registry.show(version).release.color
        assert colour is not None
        step = TrafficStep(stage.apis.elbv2, stage.topology, {colour: 100})
        step.apply()
        ok = all(e.ok for e in step.verify())
        stage.registry.set_current(version, reason)
        return Moved(ok, version)

    return rollback_to


def put_green_live(stage: Stage) -> None:
    TrafficStep(stage.apis.elbv2, stage.topology, {"green": 100}).apply()


def test_watch_rolls_a_bad_release_back(stage: Stage) -> None:
    put_green_live(stage)
    stage.clock.at(120, lambda: setattr(stage.green, "status", 500))
    result = watch_release(
        stage.registry,
        stage.apis,
        WatchSpec(window_s=600, signals=SignalSpec(interval_s=10), promote=True),
        traffic_rollback(stage),
        timing=stage.clock.timing(),
    )
    assert result.result == "rolled-back" and not result.ok
    assert stage.weights() == {"blue": 100, "green": 0}
    assert stage.registry.current() == "1.4.0"
    assert result.target_version == "1.4.0" and result.rollback == {
        "ok": True,
        "to_version": "1.4.0",
    }
    assert stage.registry.show("1.5.0").status == "candidate"


def test_watch_passes_a_good_release_and_promotes_it(stage: Stage) -> None:
    put_green_live(stage)
    result = watch_release(
        stage.registry,
        stage.apis,
        WatchSpec(window_s=600, signals=SignalSpec(interval_s=10), promote=True),
        traffic_rollback(stage),
        timing=stage.clock.timing(),
    )
    assert result.result == "passed" and result.ok and result.promoted
    assert stage.weights() == {"blue": 0, "green": 100}
    assert stage.registry.show("1.5.0").status == "stable"
    assert 590 <= result.watched_s <= 600


def test_watch_without_a_stable_release_to_go_back_to_refuses_first(stage: Stage) -> None:
    stage.registry.mark("1.4.0", "bad", "broken")
    with pytest.raises(NotFound, match="nothing to roll back to"):
        watch_release(stage.registry, stage.apis, WatchSpec(), traffic_rollback(stage))
    assert stage.green.requests == []
