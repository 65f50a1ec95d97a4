"""The incident report, built from a real run's journal against in-process moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.executor import Executor
from rollback.journal import Journal
from rollback.plan import Plan
from rollback.report import build_report, render_markdown, store_report
from rollback.store.local import LocalStore
from tests.unit.run_steps import builder_for, colour_healthy, object_step

STACK = "webapp/dev"
BUCKET = "cloud"


class Clock:
    """Moves one second per reading, so durations in the report are exact."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="live", Body=b"green")
        yield client


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def run_rollback(s3: Any, store: LocalStore, *, fail: bool) -> str:
    plan = Plan(
        run_id="20261129T120000Z-0001",
        stack=STACK,
        from_version="1.5.0",
        to_version="1.4.0",
        steps=(
            object_step("traffic", "live", "blue", kind="traffic"),
            object_step("snapshot", "snapshot", "taken", kind="db-snapshot"),
            object_step("smoke", "smoke", "ran", kind="smoke"),
            object_step("stack", "app", "1.4.0", expect="nope" if fail else None),
        ),
        warnings=("restoring the snapshot loses up to 300 s of writes",),
        created_by="ana",
        data_loss_window_s=300.0,
        reason="5xx rate above 5% after deploy",
    )
    executor = Executor(
        store,
        STACK,
        builder_for(s3, BUCKET),
        now=Clock(),
        health_check=lambda c: colour_healthy(s3, BUCKET, c),
    )
    executor.execute(
        plan, actor="ana", skips={"smoke": "smoke suite is down, INC-7"}, confirmation="--yes"
    )
    return plan.run_id


def test_the_report_of_a_failed_run_tells_what_when_why_and_where(
    s3: Any, store: LocalStore
) -> None:
    run_id = run_rollback(s3, store, fail=True)
    report = build_report(Journal.load(store, STACK, run_id))

    summary = report["summary"]
    assert (summary["who"], summary["from_version"], summary["to_version"]) == (
        "ana",
        "1.5.0",
        "1.4.0",
    )
    assert (summary["result"], summary["reason"]) == ("failed", "5xx rate above 5% after deploy")
    assert report["decisions"]["skips"] == [
        {"step": "smoke", "reason": "smoke suite is down, INC-7", "by": "ana"}
    ]
    assert report["decisions"]["confirmations"][0]["how"] == "--yes"
    assert report["data_loss_window_s"] == 300.0
    # One second per journal record with the test clock: exact, not approximate.
    # run.json, then started, confirmed, skipped, applying, applied, verified, traffic-restored.
    assert report["time_to_traffic_restored_s"] == 7.0
    assert report["total_s"] == len(report["timeline"])
    stack_evidence = [e for e in report["evidence"] if e["step"] == "stack"]
    assert stack_evidence[0]["api"] == "s3:GetObject" and stack_evidence[0]["ok"] is False
    assert stack_evidence[0]["observed"]["content"] == "1.4.0"
    # Failing forward: users stay on blue where the verified traffic step put them.
    assert "done and verified" in report["final_state"]["traffic"]
    assert "done and verified" in report["final_state"]["database"]  # the snapshot is kept
    assert report["outcome"] is None  # the run failed before the outcome stage
    assert "skipped by ana" in report["final_state"]["checks"]  # smoke, stated once present
    durations = {s["name"]: s["duration_s"] for s in report["steps"]}
    assert durations["traffic"] == 2.0  # applying -> applied -> verified


def test_the_markdown_has_every_section_of_the_runbook(s3: Any, store: LocalStore) -> None:
    run_id = run_rollback(s3, store, fail=False)
    text = render_markdown(build_report(Journal.load(store, STACK, run_id)))

    for heading in (
        "## Summary",
        "## Timeline",
        "## Decisions",
        "## Evidence",
        "## Final state",
        "## Lessons learned",
        "### Root cause",
        "### Monitoring",
        "## Documentation",
    ):
        assert heading in text, heading
    assert "**Result:** succeeded" in text
    assert "skipped by ana because smoke suite is down, INC-7" in text
    assert "| traffic | `s3:GetObject` |" in text
    assert "300 s of writes" in text


def test_an_unfinished_run_is_reported_as_such(
    s3: Any, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.run_steps import CRASH_ENV, SimulatedCrash

    monkeypatch.setenv(CRASH_ENV, "stack:apply-end")
    with pytest.raises(SimulatedCrash):
        run_rollback(s3, store, fail=False)
    report = build_report(Journal.load(store, STACK, "20261129T120000Z-0001"))
    assert report["summary"]["result"] == "unfinished"
    assert "rollback resume 20261129T120000Z-0001" in report["summary"]["message"]
    assert "in flight" in report["final_state"]["stack"]


def test_store_report_writes_both_documents_beside_the_run(s3: Any, store: LocalStore) -> None:
    run_id = run_rollback(s3, store, fail=False)
    md_key, json_key = store_report(store, STACK, run_id)
    assert md_key == f"runs/{STACK}/{run_id}/report.md"
    assert json_key == f"runs/{STACK}/{run_id}/report.json"
    assert json.loads(store.get_doc(json_key))["summary"]["result"] == "succeeded"
    assert store.get_doc(md_key).decode().startswith("# Rollback of webapp/dev from 1.5.0 to 1.4.0")
    assert Journal.load(store, STACK, run_id).result == "succeeded"  # the run is still readable
