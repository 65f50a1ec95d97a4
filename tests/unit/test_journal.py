"""The run journal: create-only records, folding events back into a run, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def test_run_ids_sort_by_time_to_the_millisecond() -> None:
    early = new_run_id(datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC))
    late = new_run_id(datetime(2026, 11, 29, 12, 0, 1, tzinfo=UTC))
    assert early.startswith("20261129T120000000Z-")
    assert len(early) == len("20261129T120000000Z-") + 4
    assert sorted([late, early]) == [early, late]
    # A cutover and the rollback right after it start in the same second: whatever
    # the random suffixes, the later start sorts last (a CI run found status
    # showing the cutover after the rollback).
    for _ in range(200):
        cutover = new_run_id(datetime(2026, 12, 1, 8, 47, 26, 21000, tzinfo=UTC))
        rollback = new_run_id(datetime(2026, 12, 1, 8, 47, 26, 330000, tzinfo=UTC))
        assert sorted([rollback, cutover]) == [cutover, rollback]


def test_latest_run_is_the_last_started_within_one_second(store: LocalStore) -> None:
    second = datetime(2026, 12, 1, 8, 47, 26, tzinfo=UTC)
    ids = [new_run_id(second.replace(microsecond=ms * 1000)) for ms in (21, 330, 999)]
    for run_id in ids:
        Journal.create(store, make_plan(run_id, "a"), actor="ana", options={"skips": {}})
    latest = latest_run(store, STACK)
    assert latest is not None and latest.run_id == ids[-1]


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


# the hash chain (issue 9, item 6)


def _chained_run(store: LocalStore) -> str:
    plan = make_plan("20261129T120000Z-0042", "a", "b")
    journal = Journal.create(store, plan, actor="ana", options={})
    journal.append("started", data={"actor": "ana"})
    journal.append("step", step="a", state="applying")
    journal.append("step", step="a", state="verified", data={"evidence": []})
    journal.append("finished", data={"result": "failed"})
    return plan.run_id


def _event(store: LocalStore, run_id: str, seq: int) -> Path:
    return store.root / run_key(STACK, run_id, f"events/{seq:06d}.json")


def test_each_record_holds_the_digest_of_the_one_before(store: LocalStore) -> None:
    import hashlib

    run_id = _chained_run(store)
    previous = (store.root / run_key(STACK, run_id, "run.json")).read_bytes()
    assert json.loads(previous)["schema"] == 2
    for seq in range(1, 5):
        raw = _event(store, run_id, seq).read_bytes()
        assert json.loads(raw)["prev"] == hashlib.sha256(previous).hexdigest()
        previous = raw
    run = Journal.load(store, STACK, run_id)
    assert run.result == "failed" and run.step("a").state == "verified"


def test_reopen_continues_the_chain(store: LocalStore) -> None:
    plan = make_plan("20261129T120000Z-0043", "a")
    Journal.create(store, plan, actor="ana", options={}).append("started")
    Journal.reopen(store, STACK, plan.run_id).append("resumed", data={"by": "bo"})
    assert [e.type for e in Journal.load(store, STACK, plan.run_id).events] == [
        "started",
        "resumed",
    ]


@pytest.mark.parametrize("seq", [1, 3, 4])
def test_an_edited_record_that_stays_valid_json_is_an_integrity_error(
    store: LocalStore, seq: int
) -> None:
    run_id = _chained_run(store)
    path = _event(store, run_id, seq)
    doc = json.loads(path.read_bytes())
    doc["state" if doc["type"] == "step" else "type"] = "verified" if seq == 3 else "stopped"
    if seq == 3:
        doc["state"] = "failed"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    with pytest.raises(IntegrityError) as raised:
        Journal.load(store, STACK, run_id)
    assert f"run {run_id}: journal record {seq:06d}" in raised.value.message
    assert raised.value.exit_code == 4 and raised.value.fields["record"] == f"{seq:06d}"
    with pytest.raises(IntegrityError):
        list_runs(store, STACK)  # history refuses too


def test_an_edited_record_resealed_by_hand_breaks_the_next_link(store: LocalStore) -> None:
    from rollback.journal import _sealed

    run_id = _chained_run(store)
    path = _event(store, run_id, 3)
    doc = json.loads(path.read_bytes())
    path.write_bytes(_sealed({**doc, "state": "failed"}))

    with pytest.raises(IntegrityError, match="record 000004 breaks .* does not follow"):
        Journal.load(store, STACK, run_id)


@pytest.mark.parametrize(
    "doc",
    [
        {"seq": 1, "type": "started", "at": "2026-11-29T12:00:00Z", "data": {}},
        {"prev": "ab" * 32, "step": "traffic", "state": "applying", "data": {"a": [1, {}, []]}},
        {"zz": 1},  # every key after sha256
        {"aa": None},  # every key before it
        {"sha256": "stale", "state": "x"},  # a seal already there is replaced
        {"s": 'line\n  "fake": 1,\n  "', "t": ["\u00e9t\u00e9", {"sha": 2, "sha3": [[]]}]},
        {"sh": 1, "sha256a": 2, "sha25": 3, "S": 4, "\u00e9": 5, 'with "quote': 6},
    ],
)
def test_a_sealed_record_is_written_exactly_as_dumping_it_with_its_seal(
    doc: dict[str, Any],
) -> None:
    from rollback.journal import _digest, _dump, _sealed

    plain = {k: v for k, v in doc.items() if k != "sha256"}
    assert _sealed(doc) == _dump({**plain, "sha256": _digest(_dump(plain))})


def test_an_edited_run_json_is_an_integrity_error(store: LocalStore) -> None:
    run_id = _chained_run(store)
    path = store.root / run_key(STACK, run_id, "run.json")
    doc = json.loads(path.read_bytes())
    path.write_text(json.dumps({**doc, "actor": "mallory"}, indent=2, sort_keys=True))

    with pytest.raises(IntegrityError, match=f"run {run_id}: run.json breaks"):
        Journal.load(store, STACK, run_id)


def test_a_removed_or_reordered_record_is_an_integrity_error(store: LocalStore) -> None:
    run_id = _chained_run(store)
    second, third = _event(store, run_id, 2), _event(store, run_id, 3)
    a, b = second.read_bytes(), third.read_bytes()
    second.write_bytes(b)
    third.write_bytes(a)
    with pytest.raises(IntegrityError, match="record 000002 .* record 3"):
        Journal.load(store, STACK, run_id)

    second.write_bytes(a)
    third.unlink()
    with pytest.raises(IntegrityError, match="record 000004 .* record 000003 before it is missing"):
        Journal.load(store, STACK, run_id)


def test_a_schema_1_run_is_read_unchained(store: LocalStore) -> None:
    plan = make_plan("20261129T120000Z-0044", "a")
    root = store.root / run_key(STACK, plan.run_id, "run.json")
    root.parent.mkdir(parents=True)
    doc = {
        "schema": 1,
        "run_id": plan.run_id,
        "stack": STACK,
        "plan": plan.to_dict(),
        "actor": "ana",
        "started_at": "2026-11-29T12:00:00.000+00:00",
        "reason": "",
        "options": {},
    }
    root.write_text(json.dumps(doc))
    journal = Journal.reopen(store, STACK, plan.run_id)
    journal.append("started")
    raw = json.loads(_event(store, plan.run_id, 1).read_bytes())
    assert "prev" not in raw and "sha256" not in raw
    assert Journal.load(store, STACK, plan.run_id).events[0].type == "started"
