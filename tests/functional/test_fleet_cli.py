"""Fleet mode end to end: `rollback --stack A --stack B ... to|emergency` against the moto server.

Each stack of the fleet has its own listener and blue/green target groups on
one shared load balancer, and a registry of two releases (1.4.0 on green,
marked stable; 1.5.0 on blue, current) recorded without a checkpoint, so
the plans skip the stack step and the fleet stays cheap. Assertions read the
listeners back with boto3 and the registries and locks from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from rollback.aws.session import Clients
from rollback.models import Topology
from rollback.releases import Registry
from rollback.store import open_store
from rollback.store.lock import acquire_lock, read_lock
from tests.functional.conftest import RunCli, describe, parse_json
from tests.unit.test_fleet import build_stacks, listener_weights


@dataclass
class Fleet:
    """Stacks' listeners and registries over one moto load balancer."""

    root: Path
    elbv2: Any
    topologies: dict[str, Topology]

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def stacks(self) -> list[str]:
        return list(self.topologies)

    def weights(self, stack: str) -> dict[str, int]:
        return listener_weights(self.elbv2, self.topologies[stack])

    def current(self, stack: str) -> str | None:
        return Registry(open_store(str(self.store)), stack).current()

    def empty_green(self, stack: str) -> None:
        """Break a stack: its receiving (green) target group loses every target."""
        arn = self.topologies[stack].target_groups["green"]
        targets = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        self.elbv2.deregister_targets(
            TargetGroupArn=arn, Targets=[{"Id": t["Target"]["Id"]} for t in targets]
        )


@pytest.fixture
def fleet(moto_endpoint: str, tmp_path: Path, request: pytest.FixtureRequest) -> Fleet:
    """Stacks shop/s0..s9 (or as many as an indirect parameter says), each at 1.5.0 on blue
    with 1.4.0 (stable) still on green."""
    aws = Clients(boto3.Session(region_name="us-east-1"), endpoint_url=moto_endpoint)
    store = open_store(str(tmp_path / "store"))
    topologies = build_stacks(aws, store, tmp_path, getattr(request, "param", 10))
    return Fleet(tmp_path, aws("elbv2"), topologies)


def _stack_args(stacks: list[str]) -> list[str]:
    return [arg for stack in stacks for arg in ("--stack", stack)]


def test_a_fleet_of_ten_with_one_broken_rolls_back_the_other_nine(
    fleet: Fleet, run_cli: RunCli
) -> None:
    broken = "shop/s3"
    fleet.empty_green(broken)
    # Half the fleet from --stack, half from a stacks file with a comment and a blank line.
    (fleet.root / "fleet.txt").write_text(
        "# the rest of the shop\n\n" + "\n".join(f"{s}  # web" for s in fleet.stacks[5:]) + "\n"
    )
    args = [
        "--store",
        str(fleet.store),
        "--output",
        "json",
        *_stack_args(fleet.stacks[:5]),
        "--stacks-file",
        "fleet.txt",
        "to",
        "1.4.0",
        "--yes",
        "--parallel",
        "5",
    ]
    result = run_cli(*args, timeout=180)
    # The broken stack is refused by preflight (exit 2), the fleet's most severe code.
    assert result.returncode == 2, describe(result, args)
    document = parse_json(result)
    entries = {e["stack"]: e for e in document["stacks"]}
    assert [e["stack"] for e in document["stacks"]] == fleet.stacks  # all ten, in order named
    assert document["counts"]["total"] == 10 and document["counts"]["ok"] == 9
    assert (document["exit_code"], document["parallel"]) == (2, 5)
    for stack in fleet.stacks:
        entry = entries[stack]
        if stack == broken:
            continue
        assert fleet.weights(stack) == {"blue": 0, "green": 100}, stack
        assert fleet.current(stack) == "1.4.0"
        assert (entry["ok"], entry["result"], entry["exit_code"]) == (True, "succeeded", 0)
        assert (entry["from_version"], entry["to_version"]) == ("1.5.0", "1.4.0")
        assert entry["time_to_traffic_restored_s"] is not None
        assert Path(entry["report"]).exists()
    # The broken stack: refused before anything changed (green, which would receive the
    # traffic, has no routable target), traffic stays on blue, the registry still says 1.5.0.
    assert fleet.weights(broken) == {"blue": 100, "green": 0}
    assert fleet.current(broken) == "1.5.0"
    entry = entries[broken]
    assert (entry["ok"], entry["result"], entry["exit_code"]) == (False, "refused", 2)
    assert "colour green would receive traffic first but has no routable target" in str(
        entry["message"]
    ), entry
    assert not (fleet.store / "runs" / broken).exists()  # no run was started
    # Each other stack journalled its own run under its own name.
    for stack in fleet.stacks:
        if stack != broken:
            assert len(list((fleet.store / "runs" / stack).iterdir())) == 1, stack


@pytest.mark.parametrize("fleet", [3], indirect=True)
def test_a_held_lock_is_that_stacks_exit_3_and_the_others_roll_back(
    fleet: Fleet, run_cli: RunCli
) -> None:
    stacks = fleet.stacks
    held = stacks[1]
    acquire_lock(open_store(str(fleet.store)), held, "run-elsewhere", owner="alice")
    args = ["--store", str(fleet.store), *_stack_args(stacks), "to", "1.4.0", "--yes"]
    result = run_cli(*args)
    assert result.returncode == 3, describe(result, args)
    assert fleet.weights(held) == {"blue": 100, "green": 0}
    assert fleet.current(held) == "1.5.0"
    lock = read_lock(open_store(str(fleet.store)), held)
    assert lock is not None and lock.run_id == "run-elsewhere"  # never broken, never released
    for stack in (stacks[0], stacks[2]):
        assert fleet.weights(stack) == {"blue": 0, "green": 100}
        assert fleet.current(stack) == "1.4.0"
    # One summary on stdout: a row per stack, then the locked stack's sentence.
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:4]}
    assert rows == {stacks[0]: "succeeded", held: "locked", stacks[2]: "succeeded"}
    assert f"{held}: stack {held} is locked by run run-elsewhere" in result.stdout
    assert "2 of 3 stacks ok, 1 not (exit 3)" in result.stdout
    # Progress on stderr names the stack of every line it prints about a run.
    step_lines = [line for line in result.stderr.splitlines() if " traffic " in line]
    assert {line.split(":")[0] for line in step_lines} == {stacks[0], stacks[2]}


@pytest.mark.parametrize("fleet", [2], indirect=True)
def test_emergency_rolls_every_stack_back_to_last_stable(fleet: Fleet, run_cli: RunCli) -> None:
    stacks = fleet.stacks
    args = ["--store", str(fleet.store), "-o", "json", *_stack_args(stacks), "emergency"]
    result = run_cli(*args, env={"ROLLBACK_ENGINE": "embedded"})
    assert result.returncode == 0, describe(result, args)
    document = parse_json(result)
    assert [(e["stack"], e["result"]) for e in document["stacks"]] == [
        (s, "succeeded") for s in stacks
    ]
    for stack in stacks:
        assert fleet.weights(stack) == {"blue": 0, "green": 100}
        assert fleet.current(stack) == "1.4.0"
        assert read_lock(open_store(str(fleet.store)), stack) is None
