"""The report's closing checklist ticks what the run itself did and asks only for the
rest; `rollback plan` prints no run id (it creates no run)."""

from __future__ import annotations

from pathlib import Path

from rollback.cli.run import plan_text
from rollback.journal import Journal
from rollback.models import StepDescription
from rollback.plan import Plan, PlannedStep
from rollback.report import build_report, render_markdown
from rollback.store.local import LocalStore

STACK = "webapp/dev"
RUN = "20261130T120000Z-0001"


def plan() -> Plan:
    return Plan(
        run_id=RUN,
        stack=STACK,
        from_version="1.5.0",
        to_version="1.4.0",
        steps=(
            PlannedStep("traffic", "traffic", StepDescription("traffic", "move traffic"), {}),
            PlannedStep("mark", "mark", StepDescription("mark", "mark 1.5.0 bad"), {}),
        ),
    )


def report_of(tmp_path: Path, mark_state: str) -> str:
    store = LocalStore(tmp_path / "store")
    journal = Journal.create(store, plan(), actor="ana", options={})
    journal.append("started", data={"actor": "ana"})
    for step in ("traffic", "mark"):
        journal.append("step", step=step, state="applying")
        if step == "mark" and mark_state == "failed":
            journal.append("step", step=step, state="failed", data={"error": "store unwritable"})
            break
        journal.append(
            "step", step=step, state="applied", data={"changed": True, "prior": {}, "detail": {}}
        )
        journal.append("step", step=step, state="verified", data={"evidence": []})
    journal.append(
        "finished", data={"result": "succeeded" if mark_state == "verified" else "failed"}
    )
    return render_markdown(build_report(Journal.load(store, STACK, RUN)))


def test_what_the_run_did_is_ticked(tmp_path: Path) -> None:
    text = report_of(tmp_path, "verified")
    assert "- [x] Release 1.5.0 marked bad by this run's `mark` step" in text
    assert (
        f"- [x] Deployment log: this run's journal (`rollback history`, `rollback report {RUN}`)"
        in text
    )
    assert "rollback release mark 1.5.0 --bad" not in text


def test_what_it_did_not_do_is_asked_for(tmp_path: Path) -> None:
    text = report_of(tmp_path, "failed")
    assert "- [ ] Release 1.5.0 marked bad (`rollback release mark 1.5.0 --bad`)" in text


def test_plan_text_of_rollback_plan_names_no_run() -> None:
    assert "(run " not in plan_text(plan(), run=False)
    assert f"(run {RUN})" in plan_text(plan())
