"""DnsStep against an in-process moto hosted zone with blue/green weighted CNAME records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from rollback.aws.route53 import Dns
from rollback.errors import CheckFailed, UsageError
from rollback.models import Topology
from rollback.steps.dns import DnsStep
from rollback.waiting import Timing

NAME = "app.example.com"


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


@dataclass
class Zone:
    client: Any
    topology: Topology
    mutating: list[str]

    def records(self) -> dict[str, dict[str, Any]]:
        listed = self.client.list_resource_record_sets(HostedZoneId=self.topology.zone_id)
        return {r["SetIdentifier"]: r for r in listed["ResourceRecordSets"] if "SetIdentifier" in r}

    def weights(self) -> dict[str, int]:
        return {sid: r["Weight"] for sid, r in self.records().items()}

    def set_weights(self, **weights: int) -> None:
        records = self.records()
        changes = [
            {"Action": "UPSERT", "ResourceRecordSet": {**records[sid], "Weight": w}}
            for sid, w in weights.items()
        ]
        self.client.change_resource_record_sets(
            HostedZoneId=self.topology.zone_id, ChangeBatch={"Changes": changes}
        )


@pytest.fixture
def zone() -> Iterator[Zone]:
    with mock_aws():
        client = boto3.client("route53", region_name="us-east-1")
        zone_id = client.create_hosted_zone(Name="example.com", CallerReference="t")["HostedZone"][
            "Id"
        ]
        changes = [
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": NAME,
                    "Type": "CNAME",
                    "SetIdentifier": colour,
                    "Weight": weight,
                    "TTL": ttl,
                    "ResourceRecords": [{"Value": f"{colour}-lb.example.com"}],
                },
            }
            for colour, weight, ttl in (("blue", 100, 60), ("green", 0, 30))
        ]
        client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        topology = Topology(
            listener_arn="",
            target_groups={},
            zone_id=zone_id,
            record_name=NAME,
            record_type="CNAME",
            set_identifiers={"blue": "blue", "green": "green"},
            db_instance_id="db",
            health_urls={},
            alarms={},
            live_color="blue",
            versions={},
        )
        mutating: list[str] = []

        def count(model: Any, **_: Any) -> None:
            if not model.name.startswith(("Describe", "List", "Get", "Head")):
                mutating.append(model.name)

        client.meta.events.register("before-call.route-53", count)
        yield Zone(client, topology, mutating)


def _pending(times: int) -> Any:
    """A GetChange answer of PENDING for the first `times` calls, then moto's own answer."""
    calls = {"n": 0}

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        calls["n"] += 1
        if calls["n"] > times:
            return None
        info = {"Id": params["url_path"].rsplit("/", 1)[-1], "Status": "PENDING"}
        return AWSResponse("https://route53", 200, {}, None), {
            "ChangeInfo": info,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    return answer


def test_apply_sets_weights_in_one_batch_keeping_other_values(zone: Zone) -> None:
    clock = FakeTime()
    step = DnsStep(Dns(zone.client), zone.topology, {"green": 100}, clock.timing())
    applied = step.apply()
    assert applied.changed
    assert zone.mutating == ["ChangeResourceRecordSets"]
    records = zone.records()
    assert zone.weights() == {"blue": 0, "green": 100}
    assert records["green"]["TTL"] == 30
    assert records["green"]["ResourceRecords"] == [{"Value": "green-lb.example.com"}]
    (found,) = step.verify()
    assert found.ok
    assert found.observed["stale_for_s"] == 60
    assert "60s" in found.note


def test_apply_polls_until_insync_with_backoff(zone: Zone) -> None:
    zone.client.meta.events.register_first("before-call.route-53.GetChange", _pending(3))
    clock = FakeTime()
    DnsStep(Dns(zone.client), zone.topology, {"green": 100}, clock.timing()).apply()
    assert clock.slept == [2.0, 3.0, 4.5]
    assert zone.weights() == {"blue": 0, "green": 100}


def test_change_that_never_syncs_fails_with_a_described_state(zone: Zone) -> None:
    stuck = _pending(10_000)
    zone.client.meta.events.register_first("before-call.route-53.GetChange", stuck)
    clock = FakeTime()
    step = DnsStep(
        Dns(zone.client), zone.topology, {"green": 100}, clock.timing(), insync_timeout_s=30
    )
    with pytest.raises(CheckFailed, match="INSYNC") as raised:
        step.apply()
    # The wait says what Route53 last answered, in progress and in the failure.
    assert "last: Route53 says PENDING" in raised.value.message
    assert clock.now == pytest.approx(30)
    assert raised.value.fields["change_id"]
    prior = raised.value.fields["prior"]
    assert prior == {"weights": {"blue": 100, "green": 0}}
    assert zone.weights() == {"blue": 0, "green": 100}  # accepted, as the message says
    zone.client.meta.events.unregister("before-call.route-53.GetChange", stuck)
    step.compensate(prior)
    assert zone.weights() == {"blue": 100, "green": 0}


def test_second_apply_makes_no_mutating_call(zone: Zone) -> None:
    step = DnsStep(Dns(zone.client), zone.topology, {"blue": 50, "green": 50}, FakeTime().timing())
    step.apply()
    zone.mutating.clear()
    assert not step.apply().changed
    assert zone.mutating == []


def test_verify_catches_a_change_behind_its_back(zone: Zone) -> None:
    step = DnsStep(Dns(zone.client), zone.topology, {"green": 100}, FakeTime().timing())
    step.apply()
    zone.set_weights(blue=10)
    (found,) = step.verify()
    assert not found.ok
    assert found.observed["weights"] == {"blue": 10, "green": 100}


def test_compensate_restores_the_prior_weights(zone: Zone) -> None:
    zone.set_weights(blue=90, green=10)
    step = DnsStep(Dns(zone.client), zone.topology, {"green": 100}, FakeTime().timing())
    applied = step.apply()
    step.compensate(applied.prior)
    assert zone.weights() == {"blue": 90, "green": 10}
    assert zone.records()["blue"]["TTL"] == 60


def test_missing_set_identifier_changes_nothing(zone: Zone) -> None:
    topology = replace(zone.topology, set_identifiers={"blue": "blue", "green": "green-2"})
    with pytest.raises(UsageError, match="green-2"):
        DnsStep(Dns(zone.client), topology, {"green": 100}, FakeTime().timing()).apply()
    assert zone.weights() == {"blue": 100, "green": 0}
    assert zone.mutating == []


def test_describe_reports_the_ttl_as_the_stale_window(zone: Zone) -> None:
    described = DnsStep(Dns(zone.client), zone.topology, {"green": 100}).describe()
    assert described.changes["from"] == {"blue": 100, "green": 0}
    assert described.changes["stale_for_s"] == 60
    assert "60s" in described.summary


def test_bad_weights_are_usage_errors(zone: Zone) -> None:
    with pytest.raises(UsageError):
        DnsStep(Dns(zone.client), zone.topology, {"green": 256})
    with pytest.raises(UsageError):
        DnsStep(Dns(zone.client), zone.topology, {"purple": 1})
