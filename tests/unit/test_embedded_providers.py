"""Explicit aws providers and the random provider in the embedded engine (tests/programs/providers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.engine.embedded.secrets import SECRET_SIG, SIG_KEY
from rollback.errors import EngineError
from rollback.store.local import LocalStore
from tests.unit.test_embedded_options import Calls

PROGRAM = Path(__file__).parent.parent / "programs" / "providers"
PREFIX = "urn:pulumi:dev::prov::"


@dataclass
class World:
    clients: Clients
    calls: Calls
    engine: EmbeddedEngine
    store: LocalStore

    def up(self, **values: str) -> dict[str, Any]:
        self.engine.up(
            PROGRAM, "dev", StackConfig(values={f"prov:{k}": v for k, v in values.items()})
        )
        raw = json.loads(self.store.get_doc(checkpoint_key("prov", "dev")))
        return {r["urn"]: r for r in raw["deployment"]["resources"]}

    def revealed(self, urn: str) -> dict[str, Any]:
        deployment = self.engine._previous("dev")
        assert deployment is not None
        return deployment.managed()[urn].outputs

    def region_of(self, bucket: str) -> str:
        location = self.clients("s3").get_bucket_location(Bucket=bucket)["LocationConstraint"]
        return location or "us-east-1"

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.clients("s3").list_buckets()["Buckets"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    import boto3

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        calls = Calls()
        session.events.register("before-parameter-build.*.*", calls)
        clients = Clients(session)
        store = LocalStore(tmp_path / "store")
        yield World(clients, calls, EmbeddedEngine(store, clients, "prov"), store)


def test_an_explicit_provider_sets_the_region_and_is_referenced_as_pulumi_does(
    world: World,
) -> None:
    state = world.up()
    far = state[PREFIX + "aws:s3/bucket:Bucket::far"]
    near = state[PREFIX + "aws:s3/bucket:Bucket::near"]
    assert world.region_of(far["id"]) == "us-west-2"
    assert world.region_of(near["id"]) == "us-east-1"
    west = state[PREFIX + "pulumi:providers:aws::west"]
    assert west["custom"] is True and west["inputs"]["region"] == "us-west-2"
    assert far["provider"] == f"{west['urn']}::{west['id']}"
    default = next(
        r for r in state.values() if r["urn"].startswith(PREFIX + "pulumi:providers:aws::default_")
    )
    assert near["provider"] == f"{default['urn']}::{default['id']}"
    # Providers come before the resources that use them.
    order = list(state)
    assert order.index(west["urn"]) < order.index(far["urn"])

    # A second up changes nothing.
    world.calls.made.clear()
    world.up()
    assert world.calls.made == []


def test_random_values_are_kept_across_updates_and_passwords_stay_secret(world: World) -> None:
    state = world.up()
    password_urn = PREFIX + "random:index/randomPassword:RandomPassword::db-password"
    stored = state[password_urn]["outputs"]["result"]
    assert stored[SIG_KEY] == SECRET_SIG and "ciphertext" in stored
    assert (
        state[PREFIX + "pulumi:pulumi:Stack::prov-dev"]["outputs"]["password"][SIG_KEY]
        == SECRET_SIG
    )
    random_provider = next(r for r in state.values() if r["type"] == "pulumi:providers:random")
    assert state[password_urn]["provider"] == f"{random_provider['urn']}::{random_provider['id']}"
    password = world.revealed(password_urn)["result"]["value"]
    assert len(password) == 24 and sum(not c.isalnum() for c in password) >= 2
    pet = state[PREFIX + "random:index/randomPet:RandomPet::pet"]["id"]
    first_buckets = world.buckets()

    world.calls.made.clear()
    state = world.up()
    assert world.calls.made == []
    assert world.revealed(password_urn)["result"]["value"] == password
    assert state[PREFIX + "random:index/randomPet:RandomPet::pet"]["id"] == pet
    assert world.buckets() == first_buckets

    # A keeper changes: a new pet, so the bucket named after it is replaced.
    state = world.up(keeper="two")
    new_pet = state[PREFIX + "random:index/randomPet:RandomPet::pet"]["id"]
    assert new_pet != pet
    assert world.revealed(password_urn)["result"]["value"] == password
    far = state[PREFIX + "aws:s3/bucket:Bucket::far"]["id"]
    assert new_pet in far and world.region_of(far) == "us-west-2"
    assert not any(pet in b for b in world.buckets())


def test_a_provider_endpoint_outside_the_embedded_cloud_is_refused_before_any_change(
    world: World,
) -> None:
    with pytest.raises(
        EngineError, match=r"s3=https://s3.amazonaws.com outside the embedded cloud"
    ):
        world.up(endpoint="https://s3.amazonaws.com")
    assert world.calls.made == []
    assert not world.store.has_doc(checkpoint_key("prov", "dev"))
