"""Stack locks on both backends, process races, and `rollback lock`."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rollback.cli.main import cli, main
from rollback.errors import LockHeld
from rollback.store import Store, open_store
from rollback.store.lock import acquire_lock, break_lock, read_lock, release_lock
from tests.unit.store_backends import BACKENDS, BUCKET, open_backend, raw_key, stored_objects

STACK = "webapp/prod"
KEY = "locks/webapp/prod.lock"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def clock(at: float) -> Any:
    return lambda: at


def stored_lock(store: Store) -> dict[str, Any]:
    return dict(json.loads(stored_objects(store)[raw_key(store, KEY)]))


def test_acquire_then_release(store: Store) -> None:
    info = acquire_lock(store, STACK, "run-1", lease_seconds=600, now=clock(T0), owner="alice")

    assert stored_lock(store) == info.to_dict()
    assert info.owner == "alice" and info.run_id == "run-1" and info.stack == STACK
    assert info.acquired_at == "2023-11-14T22:13:20+00:00"
    assert info.expires_at == "2023-11-14T22:23:20+00:00"
    assert read_lock(store, STACK) == info

    release_lock(store, STACK, "run-1")

    assert stored_objects(store) == {}
    assert read_lock(store, STACK) is None


def test_second_taker_is_told_who_holds_the_lock(store: Store) -> None:
    held = acquire_lock(store, STACK, "run-1", now=clock(T0), owner="alice")

    with pytest.raises(LockHeld) as raised:
        acquire_lock(store, STACK, "run-2", now=clock(T0 + 60), owner="bob")

    message = raised.value.message
    for part in ("alice", held.host, str(held.pid), "run-1", held.acquired_at, held.expires_at):
        assert part in message
    assert "wait for that run to finish" in message
    assert raised.value.exit_code == 3
    assert raised.value.fields["holder"] == held.to_dict()
    assert stored_lock(store) == held.to_dict()


def test_release_by_another_run_changes_nothing(store: Store) -> None:
    held = acquire_lock(store, STACK, "run-1", now=clock(T0))
    release_lock(store, STACK, "run-2")
    assert stored_lock(store) == held.to_dict()


def test_expired_lease_is_refused_without_break_and_replaced_with_it(store: Store) -> None:
    old = acquire_lock(store, STACK, "run-1", lease_seconds=60, now=clock(T0), owner="alice")

    with pytest.raises(LockHeld) as raised:
        acquire_lock(store, STACK, "run-2", now=clock(T0 + 61))
    assert "expired" in raised.value.message and "--break-lock" in raised.value.message
    assert stored_lock(store) == old.to_dict()

    new = acquire_lock(store, STACK, "run-2", break_expired=True, now=clock(T0 + 61), owner="bob")

    assert stored_lock(store) == new.to_dict()
    assert new.run_id == "run-2" and new.owner == "bob"
    broken = [k for k in store.list_docs("locks/") if k != KEY]
    assert len(broken) == 1 and broken[0].startswith(f"{KEY}.broken/")
    record = json.loads(store.get_doc(broken[0]))
    assert record["lock"] == old.to_dict() and record["broken_by_run"] == "run-2"


def test_a_live_lease_is_never_broken(store: Store) -> None:
    held = acquire_lock(store, STACK, "run-1", lease_seconds=60, now=clock(T0))

    with pytest.raises(LockHeld, match="never broken"):
        acquire_lock(store, STACK, "run-2", break_expired=True, now=clock(T0 + 59))
    with pytest.raises(LockHeld):
        break_lock(store, STACK, now=clock(T0 + 59))

    assert stored_objects(store) == {
        raw_key(store, KEY): stored_objects(store)[raw_key(store, KEY)]
    }
    assert stored_lock(store) == held.to_dict()


def test_two_runs_breaking_one_expired_lock_one_wins(store: Store) -> None:
    acquire_lock(store, STACK, "run-1", lease_seconds=60, now=clock(T0))
    winner = acquire_lock(store, STACK, "run-2", break_expired=True, now=clock(T0 + 100))

    with pytest.raises(LockHeld, match="run-2"):
        acquire_lock(store, STACK, "run-3", break_expired=True, now=clock(T0 + 100))
    assert stored_lock(store) == winner.to_dict()


def test_break_lock_removes_only_an_expired_lock(store: Store) -> None:
    assert break_lock(store, STACK, now=clock(T0)) is None
    held = acquire_lock(store, STACK, "run-1", lease_seconds=60, now=clock(T0))

    assert break_lock(store, STACK, now=clock(T0 + 60)) == held

    assert read_lock(store, STACK) is None
    assert acquire_lock(store, STACK, "run-2", now=clock(T0 + 61)).run_id == "run-2"


# races between processes

ROUNDS = 20


def _race(url: str, name: str, barrier: Any, results: Any) -> None:
    store = open_store(url)
    for round_ in range(ROUNDS):
        barrier.wait()
        try:
            acquire_lock(store, f"race/r{round_}", name)
            results.put((round_, name))
        except LockHeld:
            results.put((round_, None))


def _run_race(url: str) -> dict[int, list[str]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    racers = [ctx.Process(target=_race, args=(url, name, barrier, results)) for name in "AB"]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for racer in racers:
        racer.join(timeout=30)
        assert racer.exitcode == 0
    winners: dict[int, list[str]] = {r: [] for r in range(ROUNDS)}
    for round_, name in outcomes:
        if name:
            winners[round_].append(name)
    return winners


def _assert_one_winner_each_round(store: Store, winners: dict[int, list[str]]) -> None:
    for round_, names in winners.items():
        assert len(names) == 1, f"round {round_}: winners {names}"
        assert read_lock(store, f"race/r{round_}").run_id == names[0]  # type: ignore[union-attr]


def test_processes_racing_on_a_local_store_one_wins(tmp_path: Path) -> None:
    url = str(tmp_path / "artifacts")
    winners = _run_race(url)
    _assert_one_winner_each_round(open_store(url), winners)


def test_processes_racing_on_s3_one_wins(moto_endpoint: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=BUCKET)
    url = f"s3://{BUCKET}/race"
    winners = _run_race(url)
    _assert_one_winner_each_round(open_store(url), winners)


# the command line


def test_lock_show_prints_the_holder_or_unlocked(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    runner = CliRunner()

    free = runner.invoke(cli, ["--store", str(root), "--stack", STACK, "lock", "show"])
    assert free.exit_code == 0, free.output
    assert free.output.strip() == f"{STACK}: unlocked"
    assert not root.exists()

    held = acquire_lock(open_store(str(root)), STACK, "run-7", owner="carol")
    text = runner.invoke(cli, ["--store", str(root), "--stack", STACK, "lock", "show"])
    as_json = runner.invoke(
        cli, ["--store", str(root), "--stack", STACK, "-o", "json", "lock", "show"]
    )

    assert "locked by run run-7 (owner carol" in text.output
    assert json.loads(as_json.output) == {
        "stack": STACK,
        "locked": True,
        "expired": False,
        "holder": held.to_dict(),
    }


def test_lock_break_of_a_live_lock_exits_3_and_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(str(tmp_path / "artifacts"))
    held = acquire_lock(store, STACK, "run-7", owner="carol")

    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "artifacts"), "--stack", STACK, "lock", "break"])

    assert exited.value.code == 3
    assert "locked by run run-7 (owner carol" in capsys.readouterr().err
    assert read_lock(store, STACK) == held


def test_lock_break_removes_an_expired_lock(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "artifacts"))
    acquire_lock(store, STACK, "run-7", lease_seconds=60, now=clock(T0), owner="carol")

    result = CliRunner().invoke(
        cli, ["--store", str(tmp_path / "artifacts"), "--stack", STACK, "lock", "break"]
    )

    assert result.exit_code == 0, result.output
    assert "broke the expired lock of run run-7" in result.output
    assert read_lock(store, STACK) is None


# compare-and-swap, stale holders, the heartbeat (issue 9, item 5)


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plan(run_id: str, stack: str = STACK) -> Any:
    from rollback.models import StepDescription
    from rollback.plan import Plan, PlannedStep

    return Plan(
        run_id=run_id,
        stack=stack,
        from_version="2.0.0",
        to_version="1.0.0",
        steps=(PlannedStep("a", "stack", StepDescription("stack", "do a"), {}),),
        warnings=(),
        created_at="2026-11-29T12:00:00.000+00:00",
        created_by="ana",
        data_loss_window_s=None,
        reason="test",
    )


def _journal(store: Store, run_id: str, *, finished: bool) -> None:
    from rollback.journal import Journal

    journal = Journal.create(store, _plan(run_id), actor="ana", options={})
    journal.append("started")
    if finished:
        journal.append("finished", data={"result": "succeeded"})


def _held_by(store: Store, run_id: str, pid: int) -> bytes:
    """A lock document as the process `pid` on this host would have written it."""
    info = acquire_lock(store, STACK, run_id, now=clock(T0 + 10_000_000))
    raw = store.get_doc(KEY)
    doc = {**json.loads(raw), "pid": pid}
    assert store.swap_doc(KEY, raw, json.dumps(doc).encode())
    assert info.run_id == run_id
    return store.get_doc(KEY)


def test_swap_doc_replaces_or_deletes_only_what_it_read(store: Store) -> None:
    assert not store.swap_doc("locks/a/b.lock", b"x", b"y")  # absent: nothing happens
    store.put_doc("locks/a/b.lock", b"one", create_only=True)

    assert not store.swap_doc("locks/a/b.lock", b"other", b"two")
    assert store.get_doc("locks/a/b.lock") == b"one"
    assert store.swap_doc("locks/a/b.lock", b"one", b"two")
    assert store.get_doc("locks/a/b.lock") == b"two"
    assert not store.swap_doc("locks/a/b.lock", b"one", None)
    assert store.swap_doc("locks/a/b.lock", b"two", None)
    assert not store.has_doc("locks/a/b.lock")
    assert stored_objects(store) == {}


def test_a_lock_of_a_finished_run_is_taken_over_without_being_asked(store: Store) -> None:
    _journal(store, "run-1", finished=True)
    acquire_lock(store, STACK, "run-1", now=clock(T0))  # our own pid: alive, lease live

    new = acquire_lock(store, STACK, "run-2", now=clock(T0 + 5))

    assert read_lock(store, STACK) == new
    (marker,) = [k for k in store.list_docs("locks/") if k != KEY]
    record = json.loads(store.get_doc(marker))
    assert record["lock"]["run_id"] == "run-1" and record["broken_by_run"] == "run-2"
    assert "run-1 finished (succeeded)" in record["why"]


def test_a_lock_of_a_killed_run_without_journal_is_taken_over_on_this_host(store: Store) -> None:
    _held_by(store, "run-1", _dead_pid())

    new = acquire_lock(store, STACK, "run-2", now=clock(T0 + 10_000_005))

    assert read_lock(store, STACK) == new
    (marker,) = [k for k in store.list_docs("locks/") if k != KEY]
    assert "killed before it changed anything" in json.loads(store.get_doc(marker))["why"]


def test_a_killed_unfinished_run_keeps_its_lock_for_its_resume(store: Store) -> None:
    from rollback.store.lock import acquire_for_resume, clear_left_lock

    _journal(store, "run-1", finished=False)
    raw = _held_by(store, "run-1", _dead_pid())

    with pytest.raises(LockHeld, match="`rollback resume run-1` finishes it"):
        acquire_lock(store, STACK, "run-2", now=clock(T0 + 10_000_005))
    with pytest.raises(LockHeld):
        break_lock(store, STACK, now=clock(T0 + 10_000_005))
    assert clear_left_lock(store, STACK, "run-1") is None  # resume takes it over itself
    assert store.get_doc(KEY) == raw

    dead = acquire_for_resume(store, STACK, "run-1")
    assert dead is not None and read_lock(store, STACK).pid == os.getpid()  # type: ignore[union-attr]


def test_a_live_holder_without_journal_keeps_its_lock(store: Store) -> None:
    from rollback.store.lock import clear_left_lock

    held = acquire_lock(store, STACK, "run-1", now=clock(T0 + 10_000_000))  # alive: us

    with pytest.raises(LockHeld, match="has not written its journal yet"):
        clear_left_lock(store, STACK, "run-1", now=clock(T0 + 10_000_005))
    assert read_lock(store, STACK) == held
    assert clear_left_lock(store, STACK, "run-2") is None


def test_resume_clears_the_lock_of_a_run_killed_before_its_journal(store: Store) -> None:
    from rollback.store.lock import clear_left_lock

    _held_by(store, "run-1", _dead_pid())

    said = clear_left_lock(store, STACK, "run-1")

    assert said is not None
    assert said.startswith("run run-1 was killed before it changed anything")
    assert said.endswith("its lock is cleared")
    assert read_lock(store, STACK) is None


def test_resume_clears_the_lock_a_finished_run_left(store: Store) -> None:
    from rollback.store.lock import clear_left_lock

    _journal(store, "run-1", finished=True)
    acquire_lock(store, STACK, "run-1")

    said = clear_left_lock(store, STACK, "run-1")

    assert said is not None and "finished (succeeded)" in said and read_lock(store, STACK) is None


def test_a_tampered_journal_of_the_holder_is_an_integrity_error(store: Store) -> None:
    from rollback.errors import IntegrityError
    from rollback.journal import run_key

    _journal(store, "run-1", finished=False)
    acquire_lock(store, STACK, "run-1")
    key = run_key(STACK, "run-1", "events/000001.json")
    doc = json.loads(store.get_doc(key))
    store.delete_doc(key)
    store.put_doc(
        key, json.dumps({**doc, "type": "finished", "data": {"result": "succeeded"}}).encode()
    )

    with pytest.raises(IntegrityError, match="run run-1: journal record 000001"):
        acquire_lock(store, STACK, "run-2")
    assert read_lock(store, STACK) is not None


def test_the_heartbeat_renews_the_lease_and_stops_when_the_lock_is_not_ours(
    store: Store,
) -> None:
    from rollback.store.lock import Heartbeat

    info = acquire_lock(store, STACK, "run-1", lease_seconds=600, now=clock(T0))
    at = [T0 + 200]
    beat = Heartbeat(store, info, now=lambda: at[0])

    assert beat.interval_s == 200 and beat.renew()
    assert read_lock(store, STACK).expires_at == "2023-11-14T22:26:40+00:00"  # type: ignore[union-attr]
    assert beat.renewals == 1

    # The lease ran out anyway (a frozen host); another run broke it and took the stack.
    other = acquire_lock(store, STACK, "run-2", break_expired=True, now=clock(T0 + 900))
    at[0] = T0 + 901
    assert not beat.renew() and beat.lost
    assert read_lock(store, STACK) == other  # a late renewal never steals the lock back


def test_the_heartbeat_thread_renews_every_third_of_the_lease(store: Store) -> None:
    import threading

    from rollback.store.lock import Heartbeat

    info = acquire_lock(store, STACK, "run-1", lease_seconds=90, now=clock(T0))
    ticks = iter([T0 + 30, T0 + 60, T0 + 90])
    asked: list[float] = []
    done = threading.Event()

    def wait(seconds: float) -> bool:  # a fake timer: three beats, then "stop"
        asked.append(seconds)
        if len(asked) > 3:
            done.set()
            return True
        return False

    beat = Heartbeat(store, info, now=lambda: next(ticks), wait=wait).start()
    assert done.wait(10)
    beat.stop()

    assert asked == [30.0] * 4 and beat.renewals == 3
    assert read_lock(store, STACK).expires_at == "2023-11-14T22:16:20+00:00"  # type: ignore[union-attr]


def test_held_lock_renews_while_held_and_releases_on_exit(store: Store) -> None:
    from rollback.store.lock import HeldLock

    with HeldLock(store, STACK, "run-1", lease_seconds=600) as held:
        assert held.heartbeat is not None and held.heartbeat._thread is not None
        assert read_lock(store, STACK).run_id == "run-1"  # type: ignore[union-attr]
        assert not held.lost
    assert read_lock(store, STACK) is None
    assert held.heartbeat._thread is not None and not held.heartbeat._thread.is_alive()


def test_lock_break_clears_the_lock_of_a_finished_run(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "artifacts"))
    _journal(store, "run-1", finished=True)
    acquire_lock(store, STACK, "run-1")

    result = CliRunner().invoke(
        cli, ["--store", str(tmp_path / "artifacts"), "--stack", STACK, "lock", "break"]
    )

    assert result.exit_code == 0, result.output
    assert (
        "broke the lock of run run-1" in result.output and "finished (succeeded)" in result.output
    )
    assert read_lock(store, STACK) is None


def test_takeable_when_free_or_held_by_a_stale_run(store: Store) -> None:
    from rollback.store.lock import takeable

    assert takeable(store, STACK)
    acquire_lock(store, STACK, "run-1")
    assert not takeable(store, STACK)  # alive: this very process
    release_lock(store, STACK, "run-1")
    _journal(store, "run-2", finished=True)
    acquire_lock(store, STACK, "run-2")
    assert takeable(store, STACK)


def test_a_dead_pid_counts_only_on_this_machine_in_this_boot(store: Store) -> None:
    from rollback.store.lock import boot_id

    raw = _held_by(store, "run-1", _dead_pid())
    assert json.loads(raw)["boot_id"] == boot_id()
    other_boot = {**json.loads(raw), "boot_id": "another-machine-same-hostname"}
    assert store.swap_doc(KEY, raw, json.dumps(other_boot).encode())

    # A runner elsewhere with our hostname: its pid means nothing here, nothing is taken over.
    with pytest.raises(LockHeld, match="wait for that run to finish"):
        acquire_lock(store, STACK, "run-2", now=clock(T0 + 10_000_005))
    assert read_lock(store, STACK).run_id == "run-1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (b"[]", "not a JSON object"),
        (
            b'{"stack": "webapp/dev"}',
            r"the lock document of webapp/dev is malformed \(it lacks owner\)",
        ),
        (
            b'{"run_id": 5, "pid": "x"}',
            r"the lock document of the stack is malformed \(it lacks stack\)",
        ),
    ],
)
def test_an_edited_lock_document_is_one_integrity_sentence(
    store: Store, doc: bytes, says: str
) -> None:
    from rollback.errors import IntegrityError

    store.put_doc("locks/webapp/dev.lock", doc)
    with pytest.raises(IntegrityError, match=says) as raised:
        read_lock(store, "webapp/dev")
    assert raised.value.exit_code == 4 and "\n" not in raised.value.message


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (b"{x", "it is not JSON"),
        (b"[1]", "it holds no colour weights"),
        (b'{"weights": {"blue": "all"}}', "it holds no colour weights"),
    ],
)
def test_an_edited_desired_traffic_record_is_one_integrity_sentence(
    store: Store, doc: bytes, says: str
) -> None:
    from rollback.errors import IntegrityError
    from rollback.ownership import desired_key, read_desired

    store.put_doc(desired_key("webapp/dev"), doc)
    with pytest.raises(
        IntegrityError, match=f"the desired traffic of webapp/dev is unreadable \\({says}"
    ) as raised:
        read_desired(store, "webapp/dev")
    assert raised.value.message.endswith("let the next verified traffic step record it again.")
