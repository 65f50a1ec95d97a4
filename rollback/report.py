"""The incident report of a run, built from its journal alone.

`build_report(run)` returns a JSON-ready dict; `render_markdown(report)` the
Markdown a person reads; `store_report` writes both beside the run
(`runs/<project>/<stack>/<run-id>/report.md` and `report.json`). The report
mirrors the runbook's closing sections: what happened and when (timeline),
why (decisions: the plan, skips, confirmations), how we know (the evidence
each verify read from the cloud), where the system is (state per layer), and
"Lessons learned" prompts for the post-rollback analysis.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from rollback.datarows import describe_restore_rows, restore_rows
from rollback.executor import describe_layers
from rollback.journal import Event, Journal, Run, run_key, seconds_between
from rollback.store import Store

REPORT_SCHEMA = 1

LESSONS = (
    ("What went wrong", "What did users see, from when to when? Which alarm or person noticed?"),
    ("Root cause", "Why did the release misbehave, and why did testing not catch it?"),
    ("Procedures", "What should change in the deployment and rollback procedures?"),
    ("Testing", "Which test would have caught this before production?"),
    ("Monitoring", "Which alarm, metric or health check should have fired sooner?"),
    ("Follow-ups", "Who does what, by when? Link the tickets."),
)


def build_report(run: Run) -> dict[str, Any]:
    """The report of `run` as data (works for unfinished runs too: it says so)."""
    plan = run.plan
    finished = run.last("finished")
    summaries = {p.name: p.description.summary for p in plan.steps}
    state = (
        dict(finished.data.get("state") or {})
        if finished and finished.data.get("state")
        else describe_layers(run)
    )
    return {
        "schema": REPORT_SCHEMA,
        "title": f"Rollback of {run.stack} from {plan.from_version} to {plan.to_version}",
        "summary": {
            "run_id": run.run_id,
            "stack": run.stack,
            "who": run.actor,
            "from_version": plan.from_version,
            "to_version": plan.to_version,
            "result": run.result or "unfinished",
            "reason": run.reason,
            "message": str(finished.data.get("message", "")) if finished else _unfinished(run),
            "started_at": run.started_at,
            "finished_at": run.finished_at,
        },
        "timeline": [_timeline_entry(run, e) for e in run.events if e.type != "notified"],
        "steps": [
            {
                "name": r.name,
                "kind": r.kind,
                "summary": summaries[r.name],
                "state": r.state,
                "changed": r.changed,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "duration_s": r.duration_s,
                "error": r.error,
                "note": r.note,
            }
            for r in run.steps
        ],
        "decisions": {
            "plan": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "summary": p.description.summary,
                    "reason": p.description.reason,
                    "changes": p.description.changes,
                    "skippable": p.skippable,
                }
                for p in plan.steps
            ],
            "planned_at": plan.created_at,
            "planned_by": plan.created_by,
            "warnings": list(plan.warnings),
            "skips": [
                {"step": name, "reason": skip.get("reason", ""), "by": skip.get("by", "")}
                for name, skip in run.skips.items()
            ],
            "confirmations": [
                {"by": e.data.get("by", ""), "how": e.data.get("how", ""), "at": e.at}
                for e in run.events
                if e.type == "confirmed"
            ],
            "resumes": [
                {"by": e.data.get("by", ""), "at": e.at, "in_flight": e.data.get("in_flight")}
                for e in run.events
                if e.type == "resumed"
            ],
            "stops": [
                {"by": e.data.get("by", ""), "at": e.at, "before": e.data.get("before")}
                for e in run.events
                if e.type == "stopped"
            ],
        },
        "evidence": [{"step": r.name, **asdict(e)} for r in run.steps for e in r.evidence],
        "outcome": _outcome(run),
        "data_loss_window_s": plan.data_loss_window_s,
        "data_loss_rows": restore_rows(run.steps),
        "time_to_traffic_restored_s": run.time_to_traffic_restored_s,
        "total_s": run.duration_s,
        "final_state": state,
        "notifications": [
            {"at": e.at, **o}
            for e in run.events
            if e.type == "notified"
            for o in e.data.get("outcomes") or []
        ],
        "lessons": [{"topic": topic, "prompt": prompt} for topic, prompt in LESSONS],
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, for people and for the incident ticket."""
    s = report["summary"]
    out = [f"# {report['title']}", "", "## Summary", ""]
    out += [
        f"- **Run:** `{s['run_id']}` on stack `{s['stack']}`",
        f"- **Who:** {s['who'] or 'unknown'}",
        f"- **From → to:** {s['from_version']} → {s['to_version']}",
        f"- **Result:** {s['result']}",
        f"- **Reason:** {s['reason'] or '(none given)'}",
        f"- **Started:** {s['started_at']}; **finished:** {s['finished_at'] or 'not finished'}",
        f"- **Total time:** {_secs(report['total_s'])}",
        f"- **Time to traffic restored:** {_secs(report['time_to_traffic_restored_s'])}",
        f"- **Data-loss window:** {_window(report['data_loss_window_s'])}",
        *(
            [f"- **Rows the restore discarded:** {describe_restore_rows(report['data_loss_rows'])}"]
            if report.get("data_loss_rows")
            else []
        ),
        "",
        s["message"],
        "",
        "## Timeline",
        "",
        "| Time (UTC) | +s | Event |",
        "|---|---|---|",
    ]
    out += [
        f"| {t['at']} | {_num(t['offset_s'])} | {_cell(t['what'])} |" for t in report["timeline"]
    ]
    out += [
        "",
        "### Steps",
        "",
        "| Step | Kind | State | Duration | Notes |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {st['name']} | {st['kind']} | {st['state']} | {_secs(st['duration_s'])} | "
        f"{_cell(st['error'] or st['note'] or st['summary'])} |"
        for st in report["steps"]
    ]
    d = report["decisions"]
    out += ["", "## Decisions", "", "### The plan", ""]
    out += [
        f"{i}. **{p['name']}** ({p['kind']}): {p['summary']}"
        + (f" — {p['reason']}" if p["reason"] else "")
        for i, p in enumerate(d["plan"], 1)
    ]
    if d["planned_by"] or d["planned_at"]:
        out += ["", f"Planned by {d['planned_by'] or 'unknown'} at {d['planned_at'] or 'unknown'}."]
    out += ["", "### Warnings", ""]
    out += [f"- {w}" for w in d["warnings"]] or ["- none"]
    out += ["", "### Skipped steps", ""]
    out += [f"- {k['step']}: skipped by {k['by']} because {k['reason']}" for k in d["skips"]] or [
        "- none"
    ]
    out += ["", "### Confirmations, stops and resumes", ""]
    lines = [f"- {c['at']}: confirmed by {c['by']} ({c['how']})" for c in d["confirmations"]]
    lines += [f"- {c['at']}: stopped by {c['by']} before {c['before']}" for c in d["stops"]]
    lines += [
        f"- {c['at']}: resumed by {c['by']}"
        + (f" (in flight: {c['in_flight']})" if c["in_flight"] else "")
        for c in d["resumes"]
    ]
    out += lines or ["- none"]
    out += ["", "## Outcome", ""]
    outcome = report["outcome"]
    if outcome is None:
        out += ["The outcome was not checked: the run did not get that far."]
    else:
        out += [
            f"**{'Verified' if outcome['ok'] else 'FAILED'}** at {outcome['at']}: {outcome['sentence']}",
            "",
            "| Check | OK | Observed |",
            "|---|---|---|",
        ]
        out += [
            f"| `{e['api']}` | {'yes' if e['ok'] else 'NO'} | "
            f"{_cell(json.dumps(e['observed'], sort_keys=True))}"
            + (f" — {_cell(e['note'])}" if e["note"] else "")
            + " |"
            for e in outcome["evidence"]
        ]
    out += ["", "## Evidence", "", "What each verify read back from the cloud.", ""]
    out += ["| Step | API | Time (UTC) | OK | Observed |", "|---|---|---|---|---|"]
    out += [
        f"| {e['step']} | `{e['api']}` | {e['at']} | {'yes' if e['ok'] else 'NO'} | "
        f"{_cell(json.dumps(e['observed'], sort_keys=True))}"
        + (f" — {_cell(e['note'])}" if e["note"] else "")
        + " |"
        for e in report["evidence"]
    ]
    out += ["", "## Final state", ""]
    out += [f"- **{layer}:** {text}" for layer, text in report["final_state"].items()]
    if report["notifications"]:
        out += ["", "## Notifications", ""]
        out += [
            f"- {n['at']}: {n['event']} via {n['notifier']}: "
            + ("delivered" if n["ok"] else f"NOT delivered ({n['error']})")
            for n in report["notifications"]
        ]
    out += ["", "## Lessons learned", "", "To fill in at the post-rollback analysis.", ""]
    for lesson in report["lessons"]:
        out += [f"### {lesson['topic']}", "", f"_{lesson['prompt']}_", "", "- ", ""]
    # Tick what the run itself did; ask only for what is left to people.
    marked = any(st["kind"] == "mark" and st["state"] == "verified" for st in report["steps"])
    told = bool(report["notifications"]) and all(n["ok"] for n in report["notifications"])
    out += [
        "## Documentation",
        "",
        "- [x] Deployment log: this run's journal (`rollback history`, `rollback report "
        f"{s['run_id']}`)",
        "- [ ] Rollback decisions above reviewed and signed off",
        f"- [x] Release {s['from_version']} marked bad by this run's `mark` step"
        if marked
        else f"- [ ] Release {s['from_version']} marked bad (`rollback release mark {s['from_version']} --bad`)",
        "- [ ] Stakeholders told the outcome"
        + (" (the notifications above were delivered; add what they do not cover)" if told else ""),
        "",
    ]
    return "\n".join(out)


def report_keys(stack: str, run_id: str) -> tuple[str, str]:
    """The keys of a run's report: (md, json)."""
    return run_key(stack, run_id, "report.md"), run_key(stack, run_id, "report.json")


def store_report(store: Store, stack: str, run_id: str) -> tuple[str, str]:
    """Write report.md and report.json beside the run; return their keys (md, json).

    Rewrites an earlier report of the same run: the report is derived from
    the journal, which stays the record.
    """
    report = build_report(Journal.load(store, stack, run_id))
    md_key, json_key = report_keys(stack, run_id)
    store.put_doc(
        json_key, json.dumps(report, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
    )
    store.put_doc(md_key, render_markdown(report).encode())
    return md_key, json_key


def _timeline_entry(run: Run, event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at,
        "offset_s": seconds_between(run.started_at, event.at),
        "type": event.type,
        "step": event.step,
        "state": event.state,
        "what": _what(event),
    }


def _what(event: Event) -> str:
    d = event.data
    if event.type == "step":
        text = f"step {event.step}: {event.state}"
        if event.state == "applied":
            text += " (changed the cloud)" if d.get("changed") else " (already so; nothing changed)"
            raw = d.get("detail")
            extra: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if extra.get("counts"):  # the stack engine's own change summary
                counts = ", ".join(f"{n} {op}" for op, n in sorted(extra["counts"].items()))
                text += f"; resources: {counts}"
            if extra.get("refreshed") is False:
                text += "; not refreshed first (--no-refresh)"
        detail = d.get("error") or d.get("note")
        return f"{text}: {detail}" if detail else text
    return {
        "started": f"run started by {d.get('actor', '')}",
        "resumed": f"run resumed by {d.get('by', '')}",
        "confirmed": f"confirmed by {d.get('by', '')} ({d.get('how', '')})",
        "skipped": f"step {event.step} skipped by {d.get('by', '')}: {d.get('reason', '')}",
        "traffic-restored": f"traffic restored (step {d.get('step', '')})",
        "stopped": f"stop requested by {d.get('by', '')} before {d.get('before', '')}",
        "finished": f"run finished: {d.get('result', '')}",
        "outcome": f"outcome {'verified' if d.get('ok') else 'FAILED'}: {d.get('sentence', '')}",
        "aborting": f"abort requested by {d.get('by', '')}",
    }.get(event.type, event.type)


def _outcome(run: Run) -> dict[str, Any] | None:
    """The last outcome check of the run (with when it ran), or None if it never ran."""
    event = run.last("outcome")
    if event is None:
        return None
    return {
        "at": event.at,
        "ok": bool(event.data.get("ok")),
        "sentence": str(event.data.get("sentence", "")),
        "served": dict(event.data.get("served") or {}),
        "evidence": list(event.data.get("evidence") or []),
    }


def _unfinished(run: Run) -> str:
    flying = run.in_flight
    where = f" with step {flying.name} {flying.state}" if flying else ""
    return f"The run has not finished{where}; `rollback resume {run.run_id}` finishes it."


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _window(value: float | None) -> str:
    if value is None:
        return "none (no data is restored)"
    return f"{value:.0f} s of writes before the snapshot would be lost"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
