"""The executor against in-process moto: every outcome is read back from S3 and the journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.errors import LockHeld, NotFound, UsageError
from rollback.executor import DisplayExecutor, Executor
from rollback.journal import Event, Journal, list_runs
from rollback.models import StepDescription
from rollback.plan import Plan, PlannedStep, StepBuilder
from rollback.steps import Applied
from rollback.store.local import LocalStore
from rollback.store.lock import acquire_lock, read_lock
from tests.unit.run_steps import (
    CRASH_ENV,
    KILL_ENV,
    ObjectStep,
    SimulatedCrash,
    builder_for,
    colour_healthy,
    object_step,
    read_object,
)

STACK = "webapp/dev"
BUCKET = "cloud-under-test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def put(s3: Any, key: str, value: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=value.encode())


def cloud(s3: Any, *keys: str) -> dict[str, str | None]:
    return {k: read_object(s3, BUCKET, k) for k in keys}


def plan_of(run_id: str, *steps: PlannedStep) -> Plan:
    return Plan(
        run_id=run_id,
        stack=STACK,
        from_version="1.5.0",
        to_version="1.4.0",
        steps=steps,
        created_by="ana",
        reason="5xx after deploy",
    )


def rollback_plan(run_id: str = "20261129T120000Z-0001") -> Plan:
    """Traffic first, then the snapshot, then the stack: the happy order."""
    return plan_of(
        run_id,
        object_step("traffic", "live", "blue", kind="traffic"),
        object_step("snapshot", "snapshot", "taken", kind="db-snapshot"),
        object_step("stack", "app", "1.4.0", kind="stack"),
    )


FINAL = {"live": "blue", "snapshot": "taken", "app": "1.4.0"}


def seed(s3: Any) -> None:
    """The broken deploy: green takes traffic and runs 1.5.0."""
    put(s3, "live", "green")
    put(s3, "app", "1.5.0")
    put(s3, "health/blue", "ok")


def states(store: LocalStore, run_id: str) -> dict[str, str]:
    return {r.name: r.state for r in Journal.load(store, STACK, run_id).steps}


def peeking(s3: Any, look: Callable[[ObjectStep], None]) -> Callable[[PlannedStep], Any]:
    """The plain builder's steps, each calling `look(step)` as its apply starts."""

    class Peek(ObjectStep):
        def apply(self) -> Applied:
            look(self)
            return super().apply()

    plain = builder_for(s3, BUCKET)

    def build(planned: PlannedStep) -> Any:
        step = plain(planned)
        return Peek(s3, step.name, step.kind, BUCKET, step.key, step.value, None)

    return build


def test_happy_path_verifies_every_step_against_the_cloud(s3: Any, store: LocalStore) -> None:
    seed(s3)
    seen: list[Event] = []
    executor = Executor(store, STACK, builder_for(s3, BUCKET), on_event=seen.append)

    result = executor.execute(rollback_plan(), actor="ana", confirmation="--yes")

    assert result.result == "succeeded" and result.ok
    assert cloud(s3, *FINAL) == FINAL
    run = Journal.load(store, STACK, result.run_id)
    assert [r.state for r in run.steps] == ["verified"] * 3
    assert run.result == "succeeded" and run.traffic_restored_at is not None
    assert run.last("confirmed") is not None and run.last("confirmed").data["how"] == "--yes"
    assert [e.seq for e in seen] == [e.seq for e in run.events]  # progress saw every record
    evidence = result.steps[2].evidence[0]
    assert evidence.api == "s3:GetObject" and evidence.observed["content"] == "1.4.0"
    assert "every step verified" in result.message
    assert set(result.state) == {"traffic", "stack", "database"}
    assert "done and verified" in result.state["traffic"]
    assert read_lock(store, STACK) is None


def test_the_applying_record_is_in_the_store_before_apply_runs(s3: Any, store: LocalStore) -> None:
    def look(step: ObjectStep) -> None:
        state = Journal.load(store, STACK, "20261129T120000Z-0002").step(step.name).state
        put(s3, f"seen/{step.name}", state)

    build = peeking(s3, look)
    plan = plan_of(
        "20261129T120000Z-0002", object_step("one", "a", "1"), object_step("two", "b", "2")
    )
    Executor(store, STACK, build).execute(plan, actor="ana")

    assert cloud(s3, "seen/one", "seen/two") == {"seen/one": "applying", "seen/two": "applying"}


def test_a_killed_runs_worktree_is_removed_once_the_steps_are_done_not_before_traffic(
    s3: Any, store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    leftover = tmp_path / f"rollback-reapply-{dead.pid}-abcd"
    leftover.mkdir()
    seen: dict[str, bool] = {}

    build = peeking(s3, lambda step: seen.__setitem__(step.name, leftover.exists()))
    seed(s3)
    result = Executor(store, STACK, build).execute(rollback_plan(), actor="ana")

    assert result.ok and seen["traffic"] is True  # users moved before the clean-up
    assert not leftover.exists()


def test_a_failure_stops_forward_undoes_nothing_and_abort_undoes_in_reverse(
    s3: Any, store: LocalStore
) -> None:
    put(s3, "config", "new")
    before = cloud(s3, "config", "artifact", "app")
    plan = plan_of(
        "20261129T120000Z-0003",
        object_step("config", "config", "old"),
        object_step("artifact", "artifact", "app-1.4.0.zip", kind="artifact"),
        object_step("stack", "app", "1.4.0", expect="something else"),
    )

    result = Executor(store, STACK, builder_for(s3, BUCKET)).execute(plan, actor="ana")

    assert result.result == "failed" and not result.ok
    assert (
        "failed at step stack" in result.message and "expected 'something else'" in result.message
    )
    assert f"rollback resume {plan.run_id}" in result.message
    assert f"rollback abort {plan.run_id}" in result.message
    # Failing forward: the cloud stays on the last verified state, nothing is compensated.
    assert cloud(s3, "config", "artifact", "app") == {
        "config": "old",
        "artifact": "app-1.4.0.zip",
        "app": "1.4.0",
    }
    run = Journal.load(store, STACK, result.run_id)
    assert not any(e.state == "compensating" for e in run.events)
    assert [r.state for r in run.steps] == ["verified", "verified", "failed"]
    assert run.step("stack").error.startswith("s3:GetObject: content is '1.4.0'")
    assert run.result == "failed"

    aborted = Executor(store, STACK, builder_for(s3, BUCKET)).abort(plan.run_id, actor="bob")

    assert aborted.result == "aborted" and not aborted.ok
    assert cloud(s3, "config", "artifact", "app") == before
    run = Journal.load(store, STACK, result.run_id)
    undone = [e.step for e in run.events if e.state == "compensating"]
    assert undone == ["stack", "artifact", "config"]
    assert [r.state for r in run.steps] == ["compensated"] * 3
    assert run.result == "aborted"
    with pytest.raises(UsageError, match="nothing to abort"):
        Executor(store, STACK, builder_for(s3, BUCKET)).abort(plan.run_id, actor="bob")
    with pytest.raises(UsageError, match="nothing to resume"):
        Executor(store, STACK, builder_for(s3, BUCKET)).resume(plan.run_id, actor="bob")


def test_a_failed_run_is_resumed_forward_once_the_cause_is_fixed(
    s3: Any, store: LocalStore
) -> None:
    seed(s3)
    plan = rollback_plan("20261129T120000Z-0f0f")
    plain = builder_for(s3, BUCKET)

    def broken(planned: PlannedStep) -> Any:
        step = plain(planned)
        if planned.name == "stack":
            step.bucket = "no-such-bucket"  # the cause: apply meets a real NoSuchBucket
        return step

    failed = Executor(store, STACK, broken).execute(plan, actor="ana")
    assert failed.result == "failed"
    assert cloud(s3, *FINAL) == {"live": "blue", "snapshot": "taken", "app": "1.5.0"}

    result = Executor(store, STACK, plain).resume(plan.run_id, actor="bob")

    assert result.result == "succeeded", result.message
    assert cloud(s3, *FINAL) == FINAL
    run = Journal.load(store, STACK, plan.run_id)
    assert [r.state for r in run.steps] == ["verified"] * 3
    assert run.result == "succeeded"
    assert sum(e.type == "traffic-restored" for e in run.events) == 1


def test_a_step_whose_apply_raises_fails_and_abort_undoes_the_earlier_ones(
    s3: Any, store: LocalStore
) -> None:
    plan = plan_of(
        "20261129T120000Z-0004",
        object_step("first", "a", "1"),
        object_step("broken", "b", "2"),
    )
    plain = builder_for(s3, BUCKET)

    def build(planned: PlannedStep) -> Any:
        step = plain(planned)
        if planned.name == "broken":
            step.bucket = "no-such-bucket"  # apply meets a real NoSuchBucket
        return step

    result = Executor(store, STACK, build).execute(plan, actor="ana")

    assert result.result == "failed"
    assert cloud(s3, "a") == {"a": "1"}
    assert states(store, plan.run_id) == {"first": "verified", "broken": "failed"}
    assert "apply raised NoSuchBucket" in result.steps[1].error
    Executor(store, STACK, build).abort(plan.run_id, actor="ana")
    assert cloud(s3, "a") == {"a": None}
    assert states(store, plan.run_id) == {"first": "compensated", "broken": "failed"}


def test_a_snapshot_is_never_undone(s3: Any, store: LocalStore) -> None:
    seed(s3)
    plan = plan_of(
        "20261129T120000Z-0005",
        object_step("snapshot", "snapshot", "taken", kind="db-snapshot"),
        object_step("stack", "app", "1.4.0", expect="nope"),
    )

    Executor(store, STACK, builder_for(s3, BUCKET)).execute(plan, actor="ana")
    result = Executor(store, STACK, builder_for(s3, BUCKET)).abort(plan.run_id, actor="ana")

    assert cloud(s3, "snapshot", "app") == {"snapshot": "taken", "app": "1.5.0"}
    snapshot = Journal.load(store, STACK, plan.run_id).step("snapshot")
    assert snapshot.state == "compensation-skipped" and "never undone" in snapshot.note
    assert "never undone" in result.state["database"]


@pytest.mark.parametrize("green_health", ["ok", "failing"])
def test_a_failed_rollback_keeps_users_and_abort_sends_them_back_only_to_a_healthy_colour(
    s3: Any, store: LocalStore, green_health: str
) -> None:
    seed(s3)
    put(s3, "health/green", green_health)
    plan = plan_of(
        f"20261129T120000Z-{'aaaa' if green_health == 'ok' else 'bbbb'}",
        object_step("traffic", "live", "blue", kind="traffic"),
        object_step("stack", "app", "1.4.0", expect="nope"),
    )
    executor = Executor(
        store,
        STACK,
        builder_for(s3, BUCKET),
        health_check=lambda colour: colour_healthy(s3, BUCKET, colour),
    )

    result = executor.execute(plan, actor="ana")

    assert result.result == "failed"
    assert cloud(s3, "live") == {"live": "blue"}  # never back to the release rolled away from
    assert Journal.load(store, STACK, plan.run_id).step("traffic").state == "verified"

    aborted = executor.abort(plan.run_id, actor="ana")

    traffic = Journal.load(store, STACK, plan.run_id).step("traffic")
    if green_health == "ok":
        assert cloud(s3, "live") == {"live": "green"}
        assert traffic.state == "compensated"
    else:
        assert cloud(s3, "live") == {"live": "blue"}  # stays on the verified colour
        assert traffic.state == "compensation-skipped"
        assert "colour green" in traffic.note and "not healthy" in traffic.note
        assert "traffic stays where the rollback put it" in aborted.state["traffic"]


def test_without_a_health_check_abort_does_not_send_traffic_back(
    s3: Any, store: LocalStore
) -> None:
    seed(s3)
    put(s3, "health/green", "ok")
    plan = plan_of(
        "20261129T120000Z-0006",
        object_step("traffic", "live", "blue", kind="traffic"),
        object_step("stack", "app", "1.4.0", expect="nope"),
    )
    Executor(store, STACK, builder_for(s3, BUCKET)).execute(plan, actor="ana")
    Executor(store, STACK, builder_for(s3, BUCKET)).abort(plan.run_id, actor="ana")
    assert cloud(s3, "live") == {"live": "blue"}
    assert "no health check" in Journal.load(store, STACK, plan.run_id).step("traffic").note


def test_a_skip_is_recorded_with_who_and_why(s3: Any, store: LocalStore) -> None:
    seed(s3)
    executor = Executor(store, STACK, builder_for(s3, BUCKET))

    result = executor.execute(
        rollback_plan(), actor="ana", skips={"stack": "done by hand, see INC-42"}
    )

    assert result.result == "succeeded"
    assert cloud(s3, "app") == {"app": "1.5.0"}  # the skipped step never ran
    run = Journal.load(store, STACK, result.run_id)
    assert run.skips == {"stack": {"reason": "done by hand, see INC-42", "by": "ana"}}
    record = run.step("stack")
    assert (record.state, record.skipped_by, record.skip_reason) == (
        "skipped",
        "ana",
        "done by hand, see INC-42",
    )
    assert "skipped by ana: done by hand, see INC-42" in result.state["stack"]


def test_bad_skips_are_refused_before_anything_is_journaled(s3: Any, store: LocalStore) -> None:
    guarded = PlannedStep(
        "snapshot", "db-snapshot", StepDescription("db-snapshot", "snapshot db"), {}, False
    )
    plan = plan_of("20261129T120000Z-0007", guarded, object_step("stack", "app", "1.4.0"))
    executor = Executor(store, STACK, builder_for(s3, BUCKET))
    with pytest.raises(UsageError, match="cannot be skipped"):
        executor.execute(plan, actor="ana", skips={"snapshot": "slow"})
    with pytest.raises(NotFound, match="no step 'nope'"):
        executor.execute(plan, actor="ana", skips={"nope": "why not"})
    with pytest.raises(UsageError, match="needs a reason"):
        executor.execute(plan, actor="ana", skips={"stack": " "})
    assert list_runs(store, STACK) == []


def test_a_held_lock_raises_lock_held_and_nothing_is_journaled(s3: Any, store: LocalStore) -> None:
    seed(s3)
    acquire_lock(store, STACK, "20261129T110000Z-beef", lease_seconds=600)

    with pytest.raises(LockHeld, match="20261129T110000Z-beef"):
        Executor(store, STACK, builder_for(s3, BUCKET)).execute(rollback_plan(), actor="ana")

    assert list_runs(store, STACK) == []
    assert cloud(s3, "live", "app") == {"live": "green", "app": "1.5.0"}
    held = read_lock(store, STACK)
    assert held is not None and held.run_id == "20261129T110000Z-beef"


def test_stop_ends_on_the_verified_state_and_resume_carries_it_forward(
    s3: Any, store: LocalStore
) -> None:
    seed(s3)
    builder = builder_for(s3, BUCKET)
    # The stop arrives once the traffic step is verified (e.g. SIGTERM sets a flag).
    stop = lambda: read_object(s3, BUCKET, "live") == "blue"  # noqa: E731
    executor = Executor(store, STACK, builder, should_stop=stop)

    result = executor.execute(rollback_plan(), actor="ana")

    assert result.result == "stopped" and not result.ok
    assert cloud(s3, *FINAL) == {"live": "blue", "snapshot": None, "app": "1.5.0"}
    run = Journal.load(store, STACK, result.run_id)
    assert run.last("stopped") is not None and run.last("stopped").data["before"] == "snapshot"
    assert [r.state for r in run.steps] == ["verified", "pending", "pending"]
    assert run.result == "stopped"
    resumed = Executor(store, STACK, builder).resume(result.run_id, actor="ana")
    assert resumed.result == "succeeded"
    assert cloud(s3, *FINAL) == FINAL


BOUNDARIES = [
    (step, point)
    for step in ("traffic", "snapshot", "stack")
    for point in ("apply-start", "apply-end", "verify-start")
]


@pytest.mark.parametrize(("step", "point"), BOUNDARIES)
def test_resume_after_a_crash_at_any_boundary_ends_like_an_uninterrupted_run(
    s3: Any, store: LocalStore, monkeypatch: pytest.MonkeyPatch, step: str, point: str
) -> None:
    seed(s3)
    plan = rollback_plan()
    monkeypatch.setenv(CRASH_ENV, f"{step}:{point}")
    with pytest.raises(SimulatedCrash):
        Executor(store, STACK, builder_for(s3, BUCKET)).execute(plan, actor="ana")
    in_flight = Journal.load(store, STACK, plan.run_id).in_flight
    assert in_flight is not None and in_flight.name == step
    monkeypatch.delenv(CRASH_ENV)

    # A fresh executor with freshly built steps, as a new process would have.
    result = Executor(store, STACK, builder_for(s3, BUCKET)).resume(plan.run_id, actor="bob")

    assert result.result == "succeeded"
    assert cloud(s3, *FINAL) == FINAL
    run = Journal.load(store, STACK, plan.run_id)
    assert [r.state for r in run.steps] == ["verified"] * 3
    resumed = run.last("resumed")
    assert resumed is not None and resumed.data["in_flight"] == step
    assert sum(e.type == "traffic-restored" for e in run.events) == 1
    with pytest.raises(UsageError, match="nothing to resume"):
        Executor(store, STACK, builder_for(s3, BUCKET)).resume(plan.run_id, actor="bob")


def test_resume_of_an_unknown_run_is_not_found(s3: Any, store: LocalStore) -> None:
    with pytest.raises(NotFound):
        Executor(store, STACK, builder_for(s3, BUCKET)).resume("20261129T120000Z-0bad", actor="a")


@pytest.mark.parametrize("finish", ["abort", "resume"])
def test_abort_again_after_a_crash_during_compensation_finishes_it(
    s3: Any, store: LocalStore, monkeypatch: pytest.MonkeyPatch, finish: str
) -> None:
    put(s3, "config", "new")
    plan = plan_of(
        "20261129T120000Z-0008",
        object_step("config", "config", "old"),
        object_step("stack", "app", "1.4.0", expect="nope"),
    )

    class DiesCompensating(ObjectStep):
        def compensate(self, prior: dict[str, Any]) -> None:
            if os.environ.get(CRASH_ENV) == "compensate":
                raise SimulatedCrash("compensate")
            super().compensate(prior)

    def builder() -> StepBuilder:
        plain = builder_for(s3, BUCKET)

        def build(planned: PlannedStep) -> Any:
            s = plain(planned)
            return DiesCompensating(s3, s.name, s.kind, BUCKET, s.key, s.value, s.expect)

        return build

    Executor(store, STACK, builder()).execute(plan, actor="ana")
    monkeypatch.setenv(CRASH_ENV, "compensate")
    with pytest.raises(SimulatedCrash):
        Executor(store, STACK, builder()).abort(plan.run_id, actor="ana")
    assert states(store, plan.run_id) == {"config": "verified", "stack": "compensating"}
    monkeypatch.delenv(CRASH_ENV)

    # `abort` again, or `resume` (what the dead run's lock tells an operator to run): the
    # undo asked for is finished, not refused, nor carried forward against it.
    again = Executor(store, STACK, builder())
    result = (again.abort if finish == "abort" else again.resume)(plan.run_id, actor="ana")

    assert result.result == "aborted"
    assert cloud(s3, "config", "app") == {"config": "new", "app": None}
    assert states(store, plan.run_id) == {"config": "compensated", "stack": "compensated"}
    assert read_lock(store, STACK) is None


def test_resume_in_a_new_process_after_sigkill(moto_endpoint: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    seed(s3)
    plan = rollback_plan("20261129T120000Z-9999")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan.to_dict()))
    store_dir = tmp_path / "store"
    script = [sys.executable, "-m", "tests.unit.run_steps"]
    env = {**os.environ, CRASH_ENV: "snapshot:apply-end", KILL_ENV: "1"}

    killed = subprocess.run(
        [*script, "execute", str(store_dir), BUCKET, str(plan_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    store = LocalStore(store_dir)
    assert states(store, plan.run_id) == {
        "traffic": "verified",
        "snapshot": "applying",
        "stack": "pending",
    }
    assert cloud(s3, "snapshot") == {"snapshot": "taken"}  # written, then the process died
    held = read_lock(store, STACK)
    assert held is not None and held.run_id == plan.run_id  # the dead run's lock remains

    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, KILL_ENV)}
    resumed = subprocess.run(
        [*script, "resume", str(store_dir), BUCKET, plan.run_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )

    assert resumed.returncode == 0, resumed.stderr.decode()
    assert json.loads(resumed.stdout)["result"] == "succeeded"
    assert cloud(s3, *FINAL) == FINAL
    run = Journal.load(store, STACK, plan.run_id)
    assert [r.state for r in run.steps] == ["verified"] * 3
    assert "took over the lock" in str(run.last("resumed").data["lock_taken_over"])  # type: ignore[union-attr]
    assert read_lock(store, STACK) is None


def test_a_dry_run_describes_and_changes_nothing(s3: Any, store: LocalStore) -> None:
    seed(s3)
    result = DisplayExecutor(STACK, builder_for(s3, BUCKET)).execute(
        rollback_plan(), actor="ana", skips={"stack": "by hand"}
    )
    assert result.result == "dry-run" and result.ok
    # The steps' own describe() (which may read the cloud), not the planner's words.
    assert [s.state for s in result.steps] == ["would-apply", "would-apply", "would-skip"]
    assert result.state == {
        "traffic": f"set s3://{BUCKET}/live to blue: would be applied and verified.",
        "stack": f"set s3://{BUCKET}/app to 1.4.0: would be skipped.",
        "database": f"set s3://{BUCKET}/snapshot to taken: would be applied and verified.",
    }
    assert cloud(s3, "live", "app", "snapshot") == {
        "live": "green",
        "app": "1.5.0",
        "snapshot": None,
    }
    assert list_runs(store, STACK) == []


@pytest.mark.parametrize(
    ("first_kind", "paused_in_first"),
    [("traffic", True), ("stack", False), ("db-snapshot", False)],
)
def test_a_paused_collector_runs_again_once_the_first_change_is_applied(
    s3: Any, store: LocalStore, first_kind: str, paused_in_first: bool
) -> None:
    """rollback.collector: paused by the CLI's start, running again after a traffic step's
    apply, and before any other change (a stack program is collected as it runs)."""
    import gc

    from rollback import collector

    seed(s3)
    seen: dict[str, bool] = {}

    build = peeking(s3, lambda step: seen.__setitem__(step.name, gc.isenabled()))
    plan = plan_of(
        "20261129T120000Z-0077",
        object_step("first", "live", "blue", kind=first_kind),
        object_step("second", "app", "1.4.0", kind="stack"),
    )
    collector.pause()
    try:
        assert not gc.isenabled()
        result = Executor(store, STACK, build).execute(plan, actor="ana")
        assert result.ok
        assert seen == {"first": not paused_in_first, "second": True}
        assert gc.isenabled()
    finally:
        collector.resume()
        gc.enable()


def test_resume_never_starts_a_collector_it_did_not_pause() -> None:
    import gc

    from rollback import collector

    gc.disable()
    try:
        collector.pause()  # already off: not ours
        collector.resume()
        assert not gc.isenabled()
    finally:
        gc.enable()
