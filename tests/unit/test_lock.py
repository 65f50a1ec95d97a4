"""Stack locks on both backends, process races, and `rollback lock`."""

from __future__ import annotations

import json
import multiprocessing
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
