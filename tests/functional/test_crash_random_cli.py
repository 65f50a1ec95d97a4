"""SIGKILL at random instants, then recover as an operator would (issue 9, item 5).

test_crash_integrity_cli.py kills at exact journal boundaries; this kills
`rollback to last-stable` (and, every other time, the `rollback resume` that
follows) after a delay drawn from the whole length of a normal run, then
recovers with `status`, `lock show` and `resume` only, and reads the end
state a user cares about back from the cloud and the store: users on blue,
1.0.0 current, no lock, no git worktree, the run succeeded with its outcome
verified, the cloud as a clean rollback leaves it; and green never got users
back while the killed run and its recovery ran.

The instants come from a seeded generator: ROLLBACK_TEST_CRASH_SEED picks
another seed, ROLLBACK_TEST_CRASH_KILLS how many kills (4); every failure
names the seed and the instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.rollbackworld import World, built_world
from tests.functional.test_crash_integrity_cli import ON_BLUE, _dead_checkouts, lock_doc, worktrees

SEED = int(os.environ.get("ROLLBACK_TEST_CRASH_SEED") or 20261201)
# With the clean run, about two minutes: each kill costs one rollback and its recovery.
KILLS = int(os.environ.get("ROLLBACK_TEST_CRASH_KILLS") or 4)


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(moto_server, tmp_path_factory.mktemp("crash-random"), green_failing=True) as w:
        yield w


class GreenWatch:
    """Reads the weights every 50 ms from a thread; green's share must never grow."""

    def __init__(self, world: World) -> None:
        self.world = World(world.root, world.endpoint, world.blue, world.green)  # own clients
        self.samples: list[dict[str, dict[str, int]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.is_set():
            # A read racing a write fails now and then: the next one counts.
            with contextlib.suppress(Exception):
                self.samples.append(self.world.weights())
            self.stop.wait(0.05)

    def __enter__(self) -> GreenWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def regained(self) -> list[str]:
        found: list[str] = []
        before: dict[str, int] = {}
        for sample in self.samples:
            for layer in ("alb", "dns"):
                green = sample[layer].get("green", 0)
                if green > before.get(layer, green):
                    found.append(f"{layer}: green {before[layer]} -> {green}")
                before[layer] = green
        return found


def killed_after(world: World, delay: float, *args: str) -> int | None:
    """Start the command, SIGKILL it after `delay` s; its exit code (-9 when killed)."""
    process = world.popen(*args)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    return process.returncode


def recover(world: World, runs_before: list[str], log: list[str]) -> str:
    """As an operator: read the status and the lock, resume what they name; the run to check."""
    status = world.json("status")
    lock = world.json("lock", "show")
    log.append(f"status {status['run'] and status['run']['result']}, lock {lock['holder']}")
    holder = (lock["holder"] or {}).get("run_id") if lock["locked"] else None
    if holder and not (world.runs_dir() / holder / "run.json").exists():
        log.append(world.run("resume", holder).stdout.strip())  # killed before its journal
        holder = None
    ran = status["run"]["run_id"] if status["run"] else None
    target = holder or (ran if ran not in runs_before else None)
    if target is None:  # nothing was started: start again
        log.append("to again")
        world.run("to", "last-stable", "--yes")
        return str(world.json("status")["run"]["run_id"])
    if holder is None and status["run"]["result"] == "succeeded":
        return str(target)  # it finished and unlocked before the kill
    log.append(f"resume {target}")
    world.run("resume", target)
    return str(target)


def end_state(world: World, run_id: str, clean: dict[str, Any]) -> list[str]:
    """What differs from a clean rollback's end, read from the cloud and the store."""
    wrong = []
    if world.weights() != ON_BLUE:
        wrong.append(f"weights {world.weights()}")
    if world.registry().current() != "1.0.0":
        wrong.append(f"current release {world.registry().current()}")
    if lock_doc(world) is not None:
        wrong.append(f"lock left: {lock_doc(world)}")
    if worktrees(world) != [str(world.repo_dir)] or _dead_checkouts(world):
        wrong.append(f"worktrees left: {worktrees(world)} {_dead_checkouts(world)}")
    status = world.json("status")
    if status["run"]["run_id"] != run_id or status["run"]["result"] != "succeeded":
        wrong.append(f"status {status['run']}")
    report = world.runs_dir() / run_id / "report.md"
    text = report.read_text() if report.is_file() else ""
    if "## Outcome" not in text or "**Verified**" not in text:
        wrong.append("no report with a verified outcome")
    steps = [(s["name"], s["state"]) for s in status["steps"]]
    if steps != clean["steps"]:
        wrong.append(f"steps {steps}")
    if world.inventory() != clean["inventory"]:
        wrong.append("the cloud differs from a clean rollback's")
    registry = world.registry()
    if {v: registry.show(v).status for v in ("1.0.0", "2.0.0")} != clean["statuses"]:
        wrong.append("release statuses differ from a clean rollback's")
    return wrong


def test_killed_at_random_instants_then_resumed(world: World) -> None:
    # A clean rollback first: how long it takes, and what it leaves.
    world.back_to_v2()
    started = time.monotonic()
    world.run("to", "last-stable", "--yes")
    duration = time.monotonic() - started
    status = world.json("status")
    registry = world.registry()
    clean = {
        "steps": [(s["name"], s["state"]) for s in status["steps"]],
        "inventory": world.inventory(),
        "statuses": {v: registry.show(v).status for v in ("1.0.0", "2.0.0")},
    }

    rng = random.Random(SEED)
    for i in range(KILLS):
        # One instant in the first 300 ms (start-up, the lock, the journal), the rest anywhere.
        delay = rng.uniform(0.0, 0.3) if i == 0 else rng.uniform(0.0, duration)
        resume_delay = rng.uniform(0.0, duration) if i % 2 else None
        case = f"seed {SEED}, kill {i}: `to` killed at {delay:.3f}s" + (
            f", its resume at {resume_delay:.3f}s" if resume_delay is not None else ""
        )
        log: list[str] = []
        try:
            wrong = kill_and_recover(world, delay, resume_delay, clean, log)
        except AssertionError as exc:  # a recovery command failed: say which instant
            raise AssertionError(f"{case}: {exc}\n" + json.dumps(log, indent=1)) from exc
        assert not wrong, f"{case}: {'; '.join(wrong)}\n" + json.dumps(log, indent=1)


def kill_and_recover(
    world: World,
    delay: float,
    resume_delay: float | None,
    clean: dict[str, Any],
    log: list[str],
) -> list[str]:
    """From 2.0.0 on green: the rollback killed (and its resume), recovered; what is wrong."""
    world.back_to_v2()
    runs_before = world.run_ids()
    with GreenWatch(world) as watch:
        log.append(f"to: exit {killed_after(world, delay, 'to', 'last-stable', '--yes')}")
        new = [r for r in world.run_ids() if r not in runs_before]
        if resume_delay is not None and new and lock_doc(world) is not None:
            log.append(f"resume: exit {killed_after(world, resume_delay, 'resume', new[0])}")
        run_id = recover(world, runs_before, log)
    wrong = end_state(world, run_id, clean)
    return wrong + [f"green got users back ({r})" for r in watch.regained()]
