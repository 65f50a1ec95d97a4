"""Resource options in the shapes real programs use them, beyond one option on one bucket.

Each case (tests/programs/probes) runs its steps on in-process moto and reads
the cloud back with boto3. The rules are Pulumi's: a child without its own
`protect` takes its parent's, and a parent's `providers` reach its children
(sdk/python/lib/pulumi/resource.py, `Resource.__init__`); an alias may be a
whole URN or another type (sdk/go/common/resource/alias.go); `ignore_changes`
paths reach into maps (sdk/go/common/resource/properties_path.go).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine
from rollback.errors import EngineError
from rollback.store.local import LocalStore

PROGRAM = Path(__file__).parent.parent / "programs" / "probes"
READ_ONLY = ("Describe", "List", "Get", "Head")


@dataclass
class Probe:
    clients: Clients
    engine: EmbeddedEngine
    mutations: list[str] = field(default_factory=list)

    def up(self, case: str, step: int) -> None:
        self.mutations.clear()
        values = {"aws:region": "us-east-1", "probes:case": case, "probes:step": str(step)}
        self.engine.up(PROGRAM, "dev", StackConfig(values=values))

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.clients("s3").list_buckets()["Buckets"])

    def tags(self, bucket: str) -> dict[str, str]:
        tag_set = self.clients("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
        return {t["Key"]: t["Value"] for t in tag_set}


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Probe]:
    import boto3

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        clients = Clients(session)
        found = Probe(clients, EmbeddedEngine(LocalStore(tmp_path / "store"), clients, "probes"))

        def count(model: Any, **_: Any) -> None:
            if not model.name.startswith(READ_ONLY):
                found.mutations.append(model.name)

        session.events.register("before-call.*.*", count)
        yield found


def test_ignore_changes_on_a_map_key_keeps_only_that_key(probe: Probe) -> None:
    probe.up("nested_ignore", 0)
    probe.up("nested_ignore", 1)

    assert probe.tags("probe-nested") == {"env": "e0", "team": "t1"}


def test_a_child_of_a_protected_component_is_protected(probe: Probe) -> None:
    probe.up("protect_inherit", 0)

    with pytest.raises(EngineError, match="protected"):
        probe.up("protect_inherit", 1)

    assert probe.buckets() == ["probe-inherit"] and probe.mutations == []


@pytest.mark.parametrize("case", ["alias_urn", "alias_type"])
def test_an_alias_by_urn_or_by_type_moves_state_and_touches_nothing(
    probe: Probe, case: str
) -> None:
    probe.up(case, 0)
    (bucket,) = probe.buckets()

    probe.up(case, 1)

    assert probe.buckets() == [bucket] and probe.mutations == []
    assert {c.op for c in probe.engine.last_changes if "Bucket" in c.urn} == {"same"}


def test_a_components_providers_reach_its_children(probe: Probe) -> None:
    probe.up("provider_inherit", 0)

    location = probe.clients("s3").get_bucket_location(Bucket="probe-west")
    assert location["LocationConstraint"] == "us-west-2"


def test_a_provider_with_half_a_key_pair_is_refused_before_any_change(probe: Probe) -> None:
    with pytest.raises(EngineError, match="only one of accessKey and secretKey") as caught:
        probe.up("provider_half_keys", 0)

    assert "Nothing was changed" in caught.value.message
    assert probe.buckets() == [] and probe.mutations == []
