"""SIGKILL `rollback cutover` at random instants, then recover as an operator would.

test_crash_random_cli.py kills rollbacks; this kills cutovers (blue/green in
steps 10,50,100), a clean one (sometimes with --promote) or one whose new
colour fails its health check (a breach: the cutover reverts), and every other
time the `rollback resume` that follows. Recovery uses `status`, `lock show`
and `resume` only. The end state is read back from the cloud and the store:
users all on the colour the cutover was to end on (the new one, or the old one
after a breach), the desired traffic the same, no lock, the cutover run
finished with the result a clean one has, a promoted release stable; and while the killed
cutover and its recovery ran, users never moved backwards (towards the old
colour in a clean cutover, towards the new one again once a revert began).

ROLLBACK_TEST_CRASH_SEED and ROLLBACK_TEST_CRASH_KILLS as in
test_crash_random_cli.py.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.rollbackworld import World, built_world, killer_env
from tests.functional.test_crash_integrity_cli import lock_doc
from tests.functional.test_crash_random_cli import GreenWatch, killed_after

SEED = int(os.environ.get("ROLLBACK_TEST_CRASH_SEED") or 20261202)
KILLS = int(os.environ.get("ROLLBACK_TEST_CRASH_KILLS") or 4)
DESIRED = Path("traffic") / "webapp" / "dev.json"  # the stack's desired traffic (ownership.py)
STEPS = ("--steps", "10,50,100", "--pause", "0", "--bake", "0", "--health-failures", "1")


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(moto_server, tmp_path_factory.mktemp("crash-cutover")) as w:
        w.run("to", "last-stable", "--yes")  # 1.0.0 current on both colours, users on blue
        yield w


def on(colour: str) -> dict[str, dict[str, int]]:
    other = "green" if colour == "blue" else "blue"
    return {"alb": {colour: 100, other: 0}, "dns": {colour: 100, other: 0}}


def backwards(samples: list[dict[str, dict[str, int]]], new: str, breach: bool) -> list[str]:
    """Moves of users against the cutover's course: the new colour's share falling in a
    clean cutover; rising again, once it fell, when a breach reverts it."""
    found: list[str] = []
    for layer in ("alb", "dns"):
        shares = [s[layer].get(new, 0) for s in samples]
        fell = False
        for before, after in zip(shares, shares[1:], strict=False):
            if after < before:
                fell = True
                if not breach:
                    found.append(f"{layer}: {new} {before} -> {after}")
            elif after > before and fell:
                found.append(f"{layer}: {new} back up {before} -> {after} after the revert")
    return found


def recover(world: World, runs_before: list[str], cutover: list[str], log: list[str]) -> str:
    """As an operator: status and lock, resume what they name; the cutover run to check."""
    for _ in range(3):  # a lock cleared for a run killed before its journal: look again
        status = world.json("status")
        lock = world.json("lock", "show")
        run = status["run"]
        log.append(f"status {run and (run['run_id'], run['result'])}, lock {lock['holder']}")
        holder = (lock["holder"] or {}).get("run_id") if lock["locked"] else None
        if holder and not (world.runs_dir() / holder / "run.json").exists():
            log.append(world.run("resume", holder).stdout.strip())  # killed before its journal
            continue
        ran = run["run_id"] if run and run["run_id"] not in runs_before else None
        target = holder or ran
        if target is None:  # nothing was started: start again
            log.append(f"cutover again: exit {world.run(*cutover, expect=None).returncode}")
            return str(world.json("status")["run"]["run_id"])
        if holder is None and run["result"] not in (None, "unfinished"):
            return str(target)  # it finished and unlocked before the kill
        resumed = world.run("resume", target, expect=None)
        log.append(f"resume {target}: exit {resumed.returncode} {resumed.stdout.strip()[:300]}")
        return str(target)
    raise AssertionError("the lock kept coming back")


def test_cutovers_killed_at_random_instants_then_resumed(world: World) -> None:
    started = time.monotonic()
    world.run("cutover", "green", *STEPS)  # a clean one: how long it takes
    duration = time.monotonic() - started
    assert world.weights() == on("green")

    rng = random.Random(SEED)
    for i in range(KILLS):
        old = "green" if world.weights() == on("green") else "blue"
        new = "blue" if old == "green" else "green"
        breach = rng.random() < 0.4
        promote = not breach and rng.random() < 0.5
        delay = rng.uniform(0.0, 0.3) if i == 0 else rng.uniform(0.0, duration)
        resume_delay = rng.uniform(0.0, duration) if i % 2 else None
        case = (
            f"seed {SEED}, kill {i}: `cutover {new}`{' (breach)' if breach else ''}"
            f"{' --promote' if promote else ''} killed at "
            f"{delay:.3f}s" + (f", its resume at {resume_delay:.3f}s" if resume_delay else "")
        )
        servers = {"blue": world.blue, "green": world.green}
        servers[new].status = 500 if breach else 200
        log: list[str] = []
        cutover = ["cutover", new, *STEPS, *(["--promote"] if promote else [])]
        if promote:
            world.registry().mark("1.0.0", "candidate", "test: to be promoted again")
        runs_before = world.run_ids()
        try:
            with GreenWatch(world) as watch:
                log.append(f"cutover: exit {killed_after(world, delay, *cutover)}")
                fresh = [r for r in world.run_ids() if r not in runs_before]
                if resume_delay is not None and fresh and lock_doc(world) is not None:
                    code = killed_after(world, resume_delay, "resume", fresh[0])
                    log.append(f"resume: exit {code}")
                run_id = recover(world, runs_before, cutover, log)
        except AssertionError as exc:
            raise AssertionError(f"{case}: {exc}\n" + json.dumps(log, indent=1)) from exc
        finally:
            servers[new].status = 200
        wrong = []
        end = old if breach else new
        if world.weights() != on(end):
            wrong.append(f"weights {world.weights()}, expected users on {end}")
        if lock_doc(world) is not None:
            wrong.append(f"lock left: {lock_doc(world)}")
        desired = json.loads((world.store / DESIRED).read_text())["weights"]
        if desired != on(end)["alb"]:
            wrong.append(f"desired traffic {desired}, expected users on {end}")
        status = world.json("status")
        result = "failed" if breach else "succeeded"
        if status["run"]["run_id"] != run_id or status["run"]["result"] != result:
            wrong.append(f"status {status['run']}, expected {run_id} {result}")
        if promote and world.registry().show("1.0.0").status != "stable":
            wrong.append("--promote did not mark 1.0.0 stable")
        wrong += backwards(watch.samples, new, breach)
        assert not wrong, f"{case}: {'; '.join(wrong)}\n" + json.dumps(log, indent=1)


# -- exact kill points ---------------------------------------------------------------


def _colours(world: World) -> tuple[str, str]:
    """(the colour users are on, the other one)."""
    old = "green" if world.weights() == on("green") else "blue"
    return old, "blue" if old == "green" else "green"


def test_a_cutover_killed_after_its_last_shift_then_resumed_owns_the_new_traffic(
    world: World, tmp_path: Path
) -> None:
    # Killed after the last shift moved the listener, before it was verified and recorded as
    # the stack's desired traffic: the resume finds it done, and must record it all the same.
    # Otherwise the desired traffic stays the previous step's, `stack verify` reports drift
    # and the next `stack up` or re-apply puts users back there.
    old, new = _colours(world)
    runs_before = world.run_ids()
    killer = killer_env(tmp_path / "k", "traffic-100:applying+1")
    killed = world.run("cutover", new, *STEPS, env=killer, expect=None)
    assert killed.returncode == -9, killed.stderr
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    assert world.weights()["alb"] == on(new)["alb"]  # the listener moved before the kill

    world.run("resume", run_id)
    assert world.weights() == on(new) and lock_doc(world) is None
    assert json.loads((world.store / DESIRED).read_text())["weights"] == on(new)["alb"]
    assert world.json("stack", "verify")["ok"]


def test_a_promoting_cutover_killed_after_unlocking_leaves_the_release_stable(
    world: World, tmp_path: Path
) -> None:
    # `--promote` marks the release stable once the bake passed. Done after the lock is
    # released, a kill in between left a succeeded cutover, nothing to resume, and a
    # release never promoted.
    old, new = _colours(world)
    world.registry().mark("1.0.0", "candidate", "test: a release not yet promoted")
    runs_before = world.run_ids()
    killer = killer_env(tmp_path / "k", "unlocked")
    killed = world.run("cutover", new, *STEPS, "--promote", env=killer, expect=None)
    assert killed.returncode == -9, killed.stderr
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    assert lock_doc(world) is None and world.weights() == on(new)
    status = world.json("status")["run"]
    assert status["run_id"] == run_id and status["result"] == "succeeded", status
    assert world.registry().show("1.0.0").status == "stable"


def new_release_on_green(world: World) -> None:
    """2.0.0 deployed to green, current and a candidate, with users still on blue."""
    if world.weights() != on("blue"):
        world.run("cutover", "blue", *STEPS)
    world.run("stack", "reapply", "2.0.0")
    registry = world.registry()
    registry.mark("2.0.0", "candidate", "test: a new release")
    registry.set_current("2.0.0", "test: a new release")


def test_a_cutover_killed_before_its_rollback_on_breach_is_resumed_into_it(
    world: World, tmp_path: Path
) -> None:
    # `--rollback-on-breach`: once the breach reverted the cutover and it released the lock,
    # the rollback to the previous stable release follows. Killed in between, the cutover
    # was finished and reverted, nothing to resume, and that rollback never ran: 2.0.0
    # stayed current and its stack applied. `resume` of the cutover now runs it.
    new_release_on_green(world)
    world.green.status = 500
    try:
        runs_before = world.run_ids()
        killer = killer_env(tmp_path / "k", "unlocked")
        args = ("cutover", "green", *STEPS, "--rollback-on-breach")
        killed = world.run(*args, env=killer, expect=None)
        assert killed.returncode == -9, killed.stderr
        (run_id,) = [r for r in world.run_ids() if r not in runs_before]
        assert world.json("status")["run"]["result"] == "failed"  # the cutover, reverted
        assert world.weights() == on("blue") and world.registry().current() == "2.0.0"

        resumed = world.run("resume", run_id, expect=1)  # reverted, as the cutover exits
        assert "Then rolled back to 1.0.0" in resumed.stdout, resumed.stdout
    finally:
        world.green.status = 200
    assert world.registry().current() == "1.0.0"
    assert world.registry().show("2.0.0").status == "bad"
    status = world.json("status")["run"]
    assert status["run_id"] not in (*runs_before, run_id) and status["result"] == "succeeded"
    assert world.weights() == on("blue") and lock_doc(world) is None
    world.run("resume", run_id, expect=2)  # owed no more: a run came after it


def test_an_emergency_after_a_killed_cutover_keeps_its_stop_for_the_resume(
    world: World, tmp_path: Path
) -> None:
    # A cutover of a new release killed during its pause holds the lock with users split.
    # `emergency` used to wait 120 s for a lock a dead process never releases, fail, and
    # clear its stop request: the cutover's resume then carried users on to the new release.
    # Now it fails at once, the stop stays, the resume sends users back, and the next
    # emergency rolls back.
    new_release_on_green(world)
    runs_before = world.run_ids()
    killer = killer_env(tmp_path / "k", "watch-50:applying")
    killed = world.run(
        "cutover", "green", "--steps", "50,100", "--pause", "60s", env=killer, expect=None
    )
    assert killed.returncode == -9, killed.stderr
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    assert world.weights()["alb"] == {"blue": 50, "green": 50}

    stop = world.store / "stops" / "webapp" / "dev.json"
    refused = world.run("emergency", "--reason", "pager", expect=3, timeout=60)
    assert f"`rollback resume {run_id}`" in refused.stderr, refused.stderr
    assert stop.exists()

    world.run("resume", run_id, expect=1)  # stopped by the request: users back on blue
    assert world.weights() == on("blue") and world.json("status")["run"]["result"] == "stopped"
    world.run("emergency", "--reason", "pager")
    assert not stop.exists() and lock_doc(world) is None
    assert world.weights() == on("blue") and world.registry().current() == "1.0.0"
