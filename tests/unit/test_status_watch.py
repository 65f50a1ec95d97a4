"""`rollback status --watch`: blocks until the latest run ends (or its process died),
reporting each step state as the journal records it; exit 0 only for a success."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollback.cli import main as root
from rollback.follow import follow_run
from rollback.journal import Journal, Run
from rollback.store.local import LocalStore
from rollback.store.lock import acquire_lock
from rollback.waiting import Timing
from tests.unit.test_journal import STACK, make_plan

RUN_ID = "20261129T120000Z-0001"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    monkeypatch.chdir(tmp_path)
    return LocalStore(tmp_path / "artifacts")


def started(store: LocalStore) -> Journal:
    journal = Journal.create(store, make_plan(RUN_ID, "traffic", "stack"), actor="ana", options={})
    journal.append("started", data={"actor": "ana"})
    return journal


def test_follow_waits_for_the_result_and_reports_each_change(store: LocalStore) -> None:
    journal = started(store)
    acquire_lock(store, STACK, RUN_ID)
    script = [
        lambda: journal.append("step", step="traffic", state="applying"),
        lambda: journal.append(
            "step",
            step="traffic",
            state="applied",
            data={"changed": True, "prior": {}, "detail": {}},
        ),
        lambda: journal.append("finished", data={"result": "succeeded"}),
    ]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the run moves on while we "sleep"
        sleeps.append(seconds)
        script.pop(0)()

    seen: list[int] = []

    def on_change(run: Run) -> None:
        seen.append(len(run.events))

    followed = follow_run(
        store, STACK, timing=Timing(sleep=sleep), interval_s=2, on_change=on_change
    )
    assert followed.how == "ended" and followed.run is not None
    assert followed.run.result == "succeeded"
    assert sleeps == [2, 2, 2] and seen == [1, 2, 3, 4]


def test_an_unfinished_run_nobody_locks_is_abandoned_after_two_reads(store: LocalStore) -> None:
    started(store)
    sleeps: list[float] = []
    followed = follow_run(store, STACK, timing=Timing(sleep=sleeps.append), interval_s=1)
    assert followed.how == "abandoned" and sleeps == [1]


def test_no_run_at_all(store: LocalStore) -> None:
    assert follow_run(store, STACK, timing=Timing(sleep=pytest.fail)).how == "none"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        root.main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("result", "code"), [("succeeded", 0), ("failed", 1)])
def test_watch_of_an_ended_run_prints_the_status_and_exits_by_its_result(
    store: LocalStore, capsys: pytest.CaptureFixture[str], result: str, code: int
) -> None:
    journal = started(store)
    journal.append("step", step="traffic", state="applying")
    journal.append("finished", data={"result": result})
    got, out, err = run_cli(capsys, "status", "--watch", "-o", "json")
    assert got == code
    doc = json.loads(out)
    assert doc["run"]["result"] == result and doc["run"]["run_id"] == RUN_ID
    assert f"{RUN_ID}  traffic: applying" in err  # progress on stderr, the document alone on stdout


def test_plain_status_still_exits_0_for_a_failed_run(
    store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = started(store)
    journal.append("finished", data={"result": "failed"})
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and f"run {RUN_ID} (failed)" in out
