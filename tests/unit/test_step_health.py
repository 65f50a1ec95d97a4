"""HealthStep against a real loopback HTTP server and in-process moto CloudWatch alarms."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.aws.cloudwatch import Alarms
from rollback.steps.health import HealthStep
from rollback.waiting import Timing
from tests.unit import healthserver
from tests.unit.healthserver import HealthServer

health_server = healthserver.health_server  # the fixture, shared with the smoke tests


@dataclass
class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def timing(self) -> Timing:
        return Timing(sleep=self.sleep, clock=lambda: self.now)


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        for name in ("green-5xx", "green-latency"):
            client.put_metric_alarm(
                AlarmName=name,
                MetricName="HTTPCode_Target_5XX_Count",
                Namespace="AWS/ApplicationELB",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
            client.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="quiet")
        yield client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_three_consecutive_passes(health_server: HealthServer) -> None:
    clock = FakeTime()
    step = HealthStep([health_server.url], passes=3, timing=clock.timing())
    (found,) = step.verify()
    assert found.ok
    assert found.observed["status"] == 200
    assert found.observed["consecutive_passes"] == 3
    assert len(health_server.requests) == 3
    assert clock.slept == [2.0, 2.0]


def test_a_failure_resets_the_count(health_server: HealthServer) -> None:
    health_server.script = [200, 500, 200, 200]
    step = HealthStep([health_server.url], passes=2, timing=FakeTime().timing())
    (found,) = step.verify()
    assert found.ok
    assert found.observed["rounds"] == 4


def test_persistent_500_fails_at_the_deadline(health_server: HealthServer) -> None:
    health_server.status = 500
    clock = FakeTime()
    step = HealthStep([health_server.url], deadline_s=10, timing=clock.timing())
    (found,) = step.verify()
    assert not found.ok
    assert found.observed["status"] == 500
    assert "status 500 Internal Server Error, expected 200" in found.note
    assert "gave up" in found.note
    assert clock.now == pytest.approx(10)


def test_body_must_contain_the_version(health_server: HealthServer) -> None:
    health_server.body = b"ok version=1.5.0"
    step = HealthStep(
        [health_server.url],
        body_contains="1.4.0",
        passes=1,
        deadline_s=4,
        timing=FakeTime().timing(),
    )
    (found,) = step.verify()
    assert not found.ok
    assert found.observed["body_matched"] is False
    health_server.body = b"ok version=1.4.0"
    (found,) = step.verify()
    assert found.ok


def test_slow_answer_breaks_the_latency_bound(health_server: HealthServer) -> None:
    health_server.delay_s = 0.25
    step = HealthStep(
        [health_server.url], max_latency_ms=100, passes=1, deadline_s=1, timing=FakeTime().timing()
    )
    (found,) = step.verify()
    assert not found.ok
    assert found.observed["latency_ms"] >= 250
    assert "more than 100 ms" in found.note


def test_hung_backend_is_a_timeout_not_a_crash(health_server: HealthServer) -> None:
    health_server.delay_s = 30
    step = HealthStep(
        [health_server.url],
        request_timeout_s=0.2,
        passes=1,
        deadline_s=1,
        timing=FakeTime().timing(),
    )
    (found,) = step.verify()
    assert not found.ok
    assert found.observed["status"] is None
    assert "timed out" in found.note


def test_unreachable_url_is_failed_evidence(health_server: HealthServer) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/health"
    step = HealthStep([health_server.url, dead], passes=2, deadline_s=6, timing=FakeTime().timing())
    live, gone = step.verify()
    assert live.ok
    assert not gone.ok
    assert "unreachable" in gone.note
    assert gone.observed["error"]


def test_alarm_in_alarm_fails_and_ok_passes(health_server: HealthServer, cloudwatch: Any) -> None:
    cloudwatch.set_alarm_state(AlarmName="green-5xx", StateValue="ALARM", StateReason="5xx burst")
    step = HealthStep(
        [health_server.url],
        Alarms(cloudwatch),
        ["green-5xx", "green-latency"],
        passes=2,
        deadline_s=4,
        timing=FakeTime().timing(),
    )
    url, bad, fine = step.verify()
    assert url.ok and fine.ok
    assert not bad.ok
    assert bad.observed["state"] == "ALARM"
    assert "5xx burst" in bad.note
    cloudwatch.set_alarm_state(AlarmName="green-5xx", StateValue="OK", StateReason="recovered")
    assert all(e.ok for e in step.verify())


def test_missing_alarm_fails(cloudwatch: Any) -> None:
    step = HealthStep(
        [],
        Alarms(cloudwatch),
        ["no-such-alarm"],
        passes=1,
        deadline_s=2,
        timing=FakeTime().timing(),
    )
    (found,) = step.verify()
    assert not found.ok
    assert "does not exist" in found.note


def test_apply_changes_nothing(health_server: HealthServer) -> None:
    step = HealthStep([health_server.url], timing=FakeTime().timing())
    assert not step.apply().changed
    assert health_server.requests == []
    assert "3 times in a row" in step.describe().summary
