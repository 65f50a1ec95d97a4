"""One program run per `up`, steps in parallel, each waiting only on its dependencies.

As Pulumi's step executor (pkg/resource/deploy/step_executor.go): the
language host sends a registration once what it depends on is done, so
independent steps overlap and dependent ones follow. What the embedded engine
adds (rollback/engine/embedded/gate.py): nothing changes before every
resource the program can declare is known and checked. Creates are timed
through a wrapper of the real appliers; the cloud is read back with boto3.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.engine.embedded.resources import resource_types
from rollback.errors import EngineError
from rollback.store.local import LocalStore

PROJECT = "par"
URN = f"urn:pulumi:dev::{PROJECT}::"
READ_ONLY = ("Describe", "List", "Get", "Head")


@dataclass
class Timeline:
    """When each create started and ended, by the resource's logical name; the most at once."""

    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    running: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TimedApplier:
    """A real applier whose creates take `delay` seconds (and fail for `failing` names)."""

    def __init__(self, real: Any, timeline: Timeline, delay: float, failing: set[str]) -> None:
        self._real = real
        self._timeline = timeline
        self._delay = delay
        self._failing = failing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        timeline = self._timeline
        with timeline.lock:
            timeline.running += 1
            timeline.most = max(timeline.most, timeline.running)
        start = time.monotonic()
        try:
            time.sleep(self._delay)
            if name in self._failing:
                raise RuntimeError(f"injected failure creating {name}")
            result: tuple[str, dict[str, Any]] = self._real.create(name, inputs)
            return result
        finally:
            with timeline.lock:
                timeline.running -= 1
                timeline.spans[name] = (start, time.monotonic())


@dataclass
class World:
    clients: Clients
    mutating: list[str]
    store: LocalStore
    timeline: Timeline
    program: Path

    def engine(self, failing: set[str] | None = None, delay: float = 0.05) -> EmbeddedEngine:
        appliers = {
            token: TimedApplier(applier, self.timeline, delay, failing or set())
            for token, applier in resource_types(self.clients).items()
        }
        return EmbeddedEngine(self.store, self.clients, PROJECT, appliers=appliers)

    def write(self, body: str) -> None:
        self.program.mkdir(parents=True, exist_ok=True)
        (self.program / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
        runs = self.program.parent / "runs.txt"
        (self.program / "__main__.py").write_text(
            "import pulumi\nimport pulumi_aws as aws\n"
            f"with open({str(runs)!r}, 'a') as runs:\n    runs.write('run\\n')\n" + body
        )

    def runs(self) -> int:
        path = self.program.parent / "runs.txt"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def checkpoint(self) -> dict[str, Any]:
        raw: dict[str, Any] = json.loads(self.store.get_doc(checkpoint_key(PROJECT, "dev")))
        return raw["deployment"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    import boto3

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        mutating: list[str] = []

        def count(model: Any, **_: Any) -> None:
            if not model.name.startswith(READ_ONLY):
                mutating.append(model.name)

        session.events.register("before-call.*.*", count)
        clients = Clients(session)
        store = LocalStore(tmp_path / "store")
        yield World(clients, mutating, store, Timeline(), tmp_path / "program")


CHAIN_AND_FAN = """
first = aws.s3.Bucket("first", bucket="first-bucket")
second = aws.s3.Bucket("second", bucket=first.bucket.apply(lambda b: b + "-second"))
third = aws.sns.Topic("third", name="third-topic", opts=pulumi.ResourceOptions(depends_on=[second]))
for i in range(6):
    aws.sqs.Queue(f"queue-{i}", name=f"queue-{i}")
"""


def test_one_program_run_steps_overlap_and_each_waits_for_its_dependencies(world: World) -> None:
    world.write(CHAIN_AND_FAN)
    world.engine().up(world.program, "dev", StackConfig(values={}))

    assert world.runs() == 1  # no preview pass before the update
    spans = world.timeline.spans
    # An input taken from an output, and depends_on: the dependent starts after the end.
    assert spans["second"][0] >= spans["first"][1]
    assert spans["third"][0] >= spans["second"][1]
    assert world.timeline.most > 1  # independent creates ran at once
    resources = [r["urn"] for r in world.checkpoint()["resources"]]
    order = [
        resources.index(URN + t)
        for t in (
            "aws:s3/bucket:Bucket::first",
            "aws:s3/bucket:Bucket::second",
            "aws:sns/topic:Topic::third",
        )
    ]
    assert order == sorted(order)
    queues = world.clients("sqs").list_queues()["QueueUrls"]
    assert len(queues) == 6
    assert sorted(b["Name"] for b in world.clients("s3").list_buckets()["Buckets"]) == [
        "first-bucket",
        "first-bucket-second",
    ]


def test_a_no_change_up_runs_the_program_once_and_mutates_nothing(world: World) -> None:
    world.write(CHAIN_AND_FAN)
    world.engine().up(world.program, "dev", StackConfig(values={}))
    before = world.checkpoint()["resources"]
    world.mutating.clear()

    engine = world.engine()
    engine.up(world.program, "dev", StackConfig(values={}))

    assert world.runs() == 2
    assert world.mutating == []
    assert {c.op for c in engine.last_changes} == {"same"}
    # The same program writes its resources in the same order, whichever step finished first.
    assert [r["urn"] for r in world.checkpoint()["resources"]] == [r["urn"] for r in before]


def test_a_failure_in_one_branch_keeps_what_the_others_did_and_leaves_it_pending(
    world: World,
) -> None:
    world.write(
        """
good = aws.s3.Bucket("good", bucket="good-bucket")
bad = aws.s3.Bucket("bad", bucket="bad-bucket")
after_bad = aws.sns.Topic("after-bad", name="after-bad", opts=pulumi.ResourceOptions(depends_on=[bad]))
"""
    )
    engine = world.engine(failing={"bad"}, delay=0.2)
    with pytest.raises(EngineError, match="injected failure creating bad"):
        engine.up(world.program, "dev", StackConfig(values={}))

    deployment = world.checkpoint()
    recorded = {r["urn"] for r in deployment["resources"]}
    assert URN + "aws:s3/bucket:Bucket::good" in recorded
    assert URN + "aws:s3/bucket:Bucket::bad" not in recorded
    assert [(op["type"], op["resource"]["urn"]) for op in deployment["pending_operations"]] == [
        ("creating", URN + "aws:s3/bucket:Bucket::bad")
    ]
    # The dependent of the failed create never started; the cloud holds only the good branch.
    assert "after-bad" not in world.timeline.spans
    assert world.clients("sns").list_topics()["Topics"] == []
    assert [b["Name"] for b in world.clients("s3").list_buckets()["Buckets"]] == ["good-bucket"]


def test_unsupported_types_declared_after_an_output_are_refused_before_any_change(
    world: World,
) -> None:
    world.write(
        """
bucket = aws.s3.Bucket("bucket", bucket="refused-bucket")
pulumi.CustomResource("aws:nope/first:First", "first", {"bucket": bucket.bucket})
pulumi.CustomResource("aws:nope/second:Second", "second", {})
"""
    )
    with pytest.raises(EngineError) as refused:
        world.engine().up(world.program, "dev", StackConfig(values={}))

    message = str(refused.value)
    assert "aws:nope/first:First, aws:nope/second:Second" in message
    assert "nothing was changed" in message
    assert world.mutating == []
    assert not world.store.has_doc(checkpoint_key(PROJECT, "dev"))
    assert world.runs() == 1


def test_a_type_declared_only_once_a_step_ran_is_refused_when_it_arrives(world: World) -> None:
    world.write(
        """
bucket = aws.s3.Bucket("bucket", bucket="late-bucket")
bucket.arn.apply(lambda _: pulumi.CustomResource("aws:nope/late:Late", "late", {}))
"""
    )
    with pytest.raises(EngineError, match="aws:nope/late:Late .*only after other resources"):
        world.engine().up(world.program, "dev", StackConfig(values={}))

    # What was done before is in the checkpoint, as after any failure half way.
    recorded = {r["urn"] for r in world.checkpoint()["resources"]}
    assert URN + "aws:s3/bucket:Bucket::bucket" in recorded


def test_a_name_taken_outside_the_stack_is_refused_before_any_change(world: World) -> None:
    world.clients("s3").create_bucket(Bucket="taken-bucket")
    world.mutating.clear()
    world.write(
        """
for i in range(4):
    aws.sqs.Queue(f"queue-{i}", name=f"queue-{i}")
aws.s3.Bucket("taken", bucket="taken-bucket")
"""
    )
    with pytest.raises(EngineError, match="'taken-bucket', which already exists outside"):
        world.engine().up(world.program, "dev", StackConfig(values={}))

    # The name is read while registrations arrive, before the gate lets any step change the cloud.
    assert world.mutating == []
    assert world.clients("sqs").list_queues().get("QueueUrls", []) == []
    assert not world.store.has_doc(checkpoint_key(PROJECT, "dev"))
