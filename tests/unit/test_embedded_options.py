"""Pulumi's resource options in the embedded engine, one test per option (tests/programs/options).

Each test states the Pulumi rule it checks (the source file is cited in
rollback/engine/embedded/options.py) and reads the cloud back with boto3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.errors import EngineError, UsageError
from rollback.store.local import LocalStore

PROGRAM = Path(__file__).parent.parent / "programs" / "options"
URN = "urn:pulumi:dev::opts::aws:s3/bucket:Bucket::"
READ_ONLY = ("Describe", "List", "Get", "Head")


@dataclass
class Calls:
    """Every mutating AWS call, in order, with the bucket it names."""

    made: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if not model.name.startswith(READ_ONLY):
            self.made.append((model.name, str(params.get("Bucket", ""))))

    def names(self) -> list[str]:
        return [name for name, _ in self.made]


@dataclass
class World:
    clients: Clients
    calls: Calls
    engine: EmbeddedEngine
    store: LocalStore

    def up(self, **values: str) -> dict[str, Any]:
        config = StackConfig(values={f"opts:{k}": v for k, v in values.items()})
        self.engine.up(PROGRAM, "dev", config)
        return self.checkpoint()

    def checkpoint(self) -> dict[str, Any]:
        raw = json.loads(self.store.get_doc(checkpoint_key("opts", "dev")))
        return {r["urn"]: r for r in raw["deployment"]["resources"]}

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.clients("s3").list_buckets()["Buckets"])

    def tags(self, bucket: str) -> dict[str, str]:
        tagging = self.clients("s3").get_bucket_tagging(Bucket=bucket)
        return {t["Key"]: t["Value"] for t in tagging["TagSet"]}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    import boto3

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        calls = Calls()
        session.events.register("before-parameter-build.*.*", calls)
        clients = Clients(session)
        store = LocalStore(tmp_path / "store")
        yield World(clients, calls, EmbeddedEngine(store, clients, "opts"), store)


# -- ignore_changes ----------------------------------------------------------


def test_ignore_changes_keeps_the_old_input_and_the_live_value(world: World) -> None:
    """Pulumi: an ignored path takes its old input before the diff (processIgnoreChanges)."""
    world.up(bucket="bkt-one", env="dev", ignore="tags.env")
    world.calls.made.clear()
    state = world.up(bucket="bkt-one", env="prod", ignore="tags.env")
    assert world.calls.made == []  # only the ignored value changed: no update at all
    assert state[URN + "main"]["inputs"]["tags"]["env"] == "dev"
    assert state[URN + "main"]["ignoreChanges"] == ["tags.env"]

    # Another change updates in place and leaves the ignored tag as it is live.
    world.clients("s3").put_bucket_tagging(
        Bucket="bkt-one",
        Tagging={"TagSet": [{"Key": "env", "Value": "moved"}, {"Key": "team", "Value": "a"}]},
    )
    state = world.up(bucket="bkt-one", env="prod", team="b", ignore="tags.env")
    assert world.tags("bkt-one") == {"env": "moved", "team": "b"}
    assert state[URN + "main"]["inputs"]["tags"] == {"env": "dev", "team": "b"}


def test_ignore_changes_does_not_apply_to_a_create(world: World) -> None:
    """Pulumi: with no old state there is nothing to keep; the program's value is created."""
    state = world.up(bucket="bkt-one", env="prod", ignore="tags.env")
    assert world.tags("bkt-one")["env"] == "prod"
    assert state[URN + "main"]["inputs"]["tags"]["env"] == "prod"


def test_ignored_drift_is_not_put_back(world: World) -> None:
    world.up(bucket="bkt-one", ignore="tags")
    world.clients("s3").put_bucket_tagging(
        Bucket="bkt-one", Tagging={"TagSet": [{"Key": "env", "Value": "changed-live"}]}
    )
    world.calls.made.clear()
    world.up(bucket="bkt-one", env="other", ignore="tags")
    assert world.calls.made == []
    assert world.tags("bkt-one") == {"env": "changed-live"}


# -- protect -----------------------------------------------------------------


def test_protect_refuses_delete_and_replace_and_is_in_the_checkpoint(world: World) -> None:
    """Pulumi: deleting a protected resource fails (step.go); so does replacing it (step_generator.go)."""
    state = world.up(bucket="bkt-one", protect="true")
    assert state[URN + "main"]["protect"] is True
    world.calls.made.clear()
    with pytest.raises(EngineError, match=r"protected.*::main"):
        world.up(present="false", protect="true")
    with pytest.raises(EngineError, match=r"::main is protected and cannot be replaced"):
        world.up(bucket="bkt-two", protect="true")
    assert world.calls.made == []
    assert world.buckets() == ["bkt-one"]
    assert URN + "main" in world.checkpoint()

    # Unprotecting in the same run as the replacement is allowed, as in Pulumi.
    world.up(bucket="bkt-two", protect="false")
    assert world.buckets() == ["bkt-two"]


# -- aliases -----------------------------------------------------------------


def test_an_alias_moves_state_and_touches_nothing_in_the_cloud(world: World) -> None:
    world.up(bucket="bkt-one", name="main")
    world.calls.made.clear()
    state = world.up(bucket="bkt-one", name="renamed", alias="main")
    assert world.calls.made == []
    assert world.buckets() == ["bkt-one"]
    assert URN + "main" not in state
    assert state[URN + "renamed"]["id"] == "bkt-one"
    assert state[URN + "renamed"]["aliases"] == [URN + "main"]


# -- delete_before_replace -----------------------------------------------------


def test_delete_before_replace_deletes_the_old_resource_first(world: World) -> None:
    world.up(env="dev", replaceOn="tags.env", dbr="true")
    (old,) = world.buckets()
    world.calls.made.clear()
    world.up(env="prod", replaceOn="tags.env", dbr="true")
    names = world.calls.names()
    assert names.index("DeleteBucket") < names.index("CreateBucket")
    assert old not in world.buckets() and len(world.buckets()) == 1


def test_without_delete_before_replace_the_new_resource_comes_first(world: World) -> None:
    world.up(env="dev", replaceOn="tags.env")
    (old,) = world.buckets()
    world.calls.made.clear()
    world.up(env="prod", replaceOn="tags.env")
    names = world.calls.names()
    assert names.index("CreateBucket") < names.index("DeleteBucket")
    assert old not in world.buckets() and len(world.buckets()) == 1


# -- replace_on_changes --------------------------------------------------------


def test_replace_on_changes_replaces_only_for_changes_under_its_paths(world: World) -> None:
    state = world.up(env="dev", team="a", replaceOn="tags.team")
    first = state[URN + "main"]["id"]
    state = world.up(env="prod", team="a", replaceOn="tags.team")
    assert state[URN + "main"]["id"] == first  # tags.env: updated in place
    assert world.tags(first)["env"] == "prod"
    state = world.up(env="prod", team="b", replaceOn="tags.team")
    second = state[URN + "main"]["id"]
    assert second != first
    assert world.buckets() == [second]


# -- retain_on_delete ----------------------------------------------------------


def test_retain_on_delete_forgets_the_resource_and_keeps_it_in_the_cloud(world: World) -> None:
    world.up(bucket="bkt-one", retain="true")
    world.calls.made.clear()
    state = world.up(present="false")
    assert world.calls.made == []
    assert world.buckets() == ["bkt-one"]
    assert URN + "main" not in state


# -- depends_on ----------------------------------------------------------------


def test_depends_on_is_recorded_and_orders_creates_and_deletes(world: World) -> None:
    state = world.up(bucket="bkt-one", dependent="bkt-zero")
    assert URN + "main" in state[URN + "dependent"]["dependencies"]
    creates = [b for op, b in world.calls.made if op == "CreateBucket"]
    assert creates == ["bkt-one", "bkt-zero"]
    world.calls.made.clear()
    world.up(present="false")
    deletes = [b for op, b in world.calls.made if op == "DeleteBucket"]
    assert deletes == ["bkt-zero", "bkt-one"]
    assert world.buckets() == []


# -- custom_timeouts -----------------------------------------------------------


def test_custom_timeouts_are_kept_in_seconds_and_malformed_ones_refused(world: World) -> None:
    """Pulumi parses Go durations and stores seconds (source_eval.go, custom_timeouts.go)."""
    with pytest.raises(UsageError, match="unable to parse customTimeout Value 5 minutes"):
        world.up(bucket="bkt-one", timeout="5 minutes")
    assert world.buckets() == []
    state = world.up(bucket="bkt-one", timeout="1h2m30s")
    assert state[URN + "main"]["customTimeouts"] == {"create": 3750}


# -- import --------------------------------------------------------------------


def test_import_adopts_an_existing_resource_without_creating_it(world: World) -> None:
    s3 = world.clients("s3")
    s3.create_bucket(Bucket="legacy")
    s3.put_bucket_tagging(
        Bucket="legacy",
        Tagging={"TagSet": [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "a"}]},
    )
    world.calls.made.clear()
    with pytest.raises(EngineError, match="do not match the existing resource.*tags"):
        world.up(bucket="legacy", env="prod", **{"import": "legacy"})
    state = world.up(bucket="legacy", **{"import": "legacy"})
    assert world.calls.made == []
    assert state[URN + "main"]["id"] == "legacy"
    assert state[URN + "main"]["importID"] == "legacy"
    with pytest.raises(EngineError, match="import"):
        world.up(bucket="legacy", **{"import": "missing-bucket"}, name="other")
    assert world.buckets() == ["legacy"]


def test_protect_refuses_a_destroy(world: World) -> None:
    world.up(bucket="bkt-one", protect="true")
    world.calls.made.clear()
    with pytest.raises(EngineError, match=r"protected.*::main.*cannot be deleted"):
        world.engine.destroy("dev")
    assert world.calls.made == []
    assert world.buckets() == ["bkt-one"]


def test_an_alias_to_another_parent_and_name_moves_state(world: World, tmp_path: Path) -> None:
    """A full-URN alias (here: the old name) claims the old state even across a rename and a tag change."""
    world.up(bucket="bkt-one", name="main", env="dev")
    state = world.up(bucket="bkt-one", name="moved", alias="main", env="prod")
    assert [op for op in world.calls.names() if op in {"CreateBucket", "DeleteBucket"}] == [
        "CreateBucket"
    ]
    assert world.tags("bkt-one")["env"] == "prod"
    assert list(u for u in state if u.startswith(URN)) == [URN + "moved"]


def test_a_create_left_pending_is_finished_by_the_next_up(world: World) -> None:
    """The bucket exists but its create failed half-way (tagging): the next up finishes it."""
    from botocore.exceptions import ClientError

    failures = [1]

    def fail_once(**_: Any) -> None:
        if failures:
            failures.pop()
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "boom"}}, "PutBucketTagging"
            )

    world.clients.session.events.register("before-call.s3.PutBucketTagging", fail_once)
    with pytest.raises(EngineError, match="boom"):
        world.up(bucket="bkt-one")  # CreateBucket works, PutBucketTagging fails
    raw = json.loads(world.store.get_doc(checkpoint_key("opts", "dev")))
    assert [op["type"] for op in raw["deployment"]["pending_operations"]] == ["creating"]
    assert world.buckets() == ["bkt-one"]
    state = world.up(bucket="bkt-one")
    assert state[URN + "main"]["id"] == "bkt-one" and world.tags("bkt-one")["env"] == "dev"
    raw = json.loads(world.store.get_doc(checkpoint_key("opts", "dev")))
    assert "pending_operations" not in raw["deployment"]
