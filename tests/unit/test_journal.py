"""The run journal: create-only records, folding events back into a run, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollback.errors import AlreadyExists, IntegrityError, NotFound, UsageError
from rollback.journal import Journal, latest_run, list_runs, run_key
from rollback.models import StepDescription
from rollback.plan import Plan, PlannedStep, new_run_id
from rollback.store.local import LocalStore

STACK = "webapp/dev"


class Clock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, start: datetime, step: float = 1.0) -> None:
        self.at, self.step = start, timedelta(seconds=step)

    def __call__(self) -> datetime:
        self.at += self.step
        return self.at


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def make_plan(run_id: str, *names: str) -> Plan:
    return Plan(
        run_id=run_id,
        stack=STACK,
        from_version="1.5.0",
        to_version="1.4.0",
        steps=tuple(
            PlannedStep(n, "stack", StepDescription("stack", f"do {n}"), {"n": n}) for n in names
        ),
        warnings=("restoring loses 300 s of writes",),
        created_at="2026-11-29T12:00:00.000+00:00",
        created_by="ana",
        data_loss_window_s=300.0,
        reason="errors after deploy",
    )


def test_plan_round_trips_and_refuses_duplicate_names() -> None:
    plan = make_plan("20261129T120000Z-abcd", "a", "b")
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    with pytest.raises(IntegrityError, match="names a step twice"):
        make_plan("x", "a", "a")
    with pytest.raises(IntegrityError, match="schema"):
        Plan.from_dict({**plan.to_dict(), "schema": 99})


def test_run_ids_sort_by_time() -> None:
    early = new_run_id(datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC))
    late = new_run_id(datetime(2026, 11, 29, 12, 0, 1, tzinfo=UTC))
    assert early.startswith("20261129T120000Z-") and len(early) == len("20261129T120000Z-") + 4
    assert sorted([late, early]) == [early, late]


def test_events_are_written_once_each_in_order_and_fold_into_step_states(
    store: LocalStore,
) -> None:
    plan = make_plan("20261129T120000Z-0001", "a", "b", "c")
    journal = Journal.create(store, plan, actor="ana", options={"skips": {}})
    journal.append("started", data={"actor": "ana"})
    journal.append("step", step="a", state="applying")
    journal.append(
        "step", step="a", state="applied", data={"changed": True, "prior": {"w": 1}, "detail": {}}
    )
    journal.append(
        "step",
        step="a",
        state="verified",
        data={"evidence": [{"api": "s3:GetObject", "at": "t", "observed": {"x": 1}, "ok": True}]},
    )
    journal.append("step", step="b", state="applying")

    keys = store.list_docs(run_key(STACK, plan.run_id, "events/"))
    assert [k.rsplit("/", 1)[1] for k in keys] == [f"{n:06d}.json" for n in range(1, 6)]
    with pytest.raises(AlreadyExists):  # a record is never rewritten
        store.put_doc(keys[0], b"{}", create_only=True)

    run = Journal.load(store, STACK, plan.run_id)
    assert [r.state for r in run.steps] == ["verified", "applying", "pending"]
    assert run.step("a").prior == {"w": 1} and run.step("a").changed
    assert run.step("a").evidence[0].observed == {"x": 1}
    assert run.in_flight is not None and run.in_flight.name == "b"
    assert not run.finished and run.result is None
    assert run.plan == plan


def test_reopen_continues_the_sequence(store: LocalStore) -> None:
    plan = make_plan("20261129T120000Z-0002", "a")
    Journal.create(store, plan, actor="ana", options={}).append("started")
    again = Journal.reopen(store, STACK, plan.run_id)
    assert again.append("resumed").seq == 2
    with pytest.raises(NotFound):
        Journal.reopen(store, STACK, "20261129T120000Z-ffff")


def test_a_run_id_is_created_once(store: LocalStore) -> None:
    plan = make_plan("20261129T120000Z-0003", "a")
    Journal.create(store, plan, actor="ana", options={})
    with pytest.raises(UsageError, match="already exists"):
        Journal.create(store, plan, actor="bob", options={})
    assert json.loads(store.get_doc(run_key(STACK, plan.run_id, "run.json")))["actor"] == "ana"


def test_load_of_an_unknown_run_is_not_found(store: LocalStore) -> None:
    with pytest.raises(NotFound, match="rollback history"):
        Journal.load(store, STACK, "20261129T120000Z-dead")


def test_history_lists_runs_oldest_first_with_durations(store: LocalStore) -> None:
    clock = Clock(datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC), step=2.0)
    for run_id in ("20261129T120000Z-0001", "20261129T130000Z-0002"):
        journal = Journal.create(store, make_plan(run_id, "a"), actor="ana", options={}, now=clock)
        journal.append("started")  # +2 s
        journal.append("traffic-restored", data={"step": "a"})  # +4 s
        if run_id.endswith("0001"):
            journal.append("finished", data={"result": "succeeded"})  # +6 s

    runs = list_runs(store, STACK)
    assert [r.run_id for r in runs] == ["20261129T120000Z-0001", "20261129T130000Z-0002"]
    first, second = runs
    assert (first.result, first.duration_s, first.time_to_traffic_restored_s) == (
        "succeeded",
        6.0,
        4.0,
    )
    assert (first.from_version, first.to_version, first.actor) == ("1.5.0", "1.4.0", "ana")
    assert second.result == "unfinished" and second.duration_s is None
    latest = latest_run(store, STACK)
    assert latest is not None and latest.run_id == "20261129T130000Z-0002"
    assert latest_run(store, "webapp/prod") is None
    assert list_runs(store, "webapp/prod") == []
