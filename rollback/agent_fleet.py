"""Fleet rollbacks through the agents' queue: one job per stack, results read from the store.

`enqueue` sends the jobs; `wait_for` polls the store for each job's result
document (`agent/results/job-<id>.json`, written by the agent that ran it)
until all are in or the timeout passes, and returns the same `FleetResult`
as a fleet run in threads, so the summary and exit code read alike. A job
with no result by then stays queued: agents keep working on it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollback.agent_claims import read_result
from rollback.agent_messages import Job
from rollback.errors import ExitCode
from rollback.fleet import FleetResult, StackRun
from rollback.waiting import Timing

if TYPE_CHECKING:
    from rollback.aws.sqs import Queue
    from rollback.store import Store


def new_job_id(stack: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{stack.replace('/', '_')}-{secrets.token_hex(3)}"


def enqueue(
    queue: Queue,
    stacks: Sequence[str],
    to: str,
    *,
    reason: str,
    by: str,
    accept_data_loss: bool = False,
    force: bool = False,
) -> list[Job]:
    """Send one job per stack; returns the jobs (their ids name the results)."""
    jobs = [
        Job(
            id=new_job_id(stack),
            stack=stack,
            to=to,
            reason=reason or f"fleet rollback to {to}",
            by=by,
            accept_data_loss=accept_data_loss,
            force=force,
        )
        for stack in stacks
    ]
    for job in jobs:
        queue.send(job.to_body(), {"rollback-job": job.id, "rollback-stack": job.stack})
    return jobs


def stack_run(stack: str, doc: dict[str, Any]) -> StackRun:
    """A fleet entry from a job's result document."""
    return StackRun(
        stack=stack,
        ok=bool(doc.get("ok")),
        result=str(doc.get("result")),
        exit_code=int(doc.get("exit_code", ExitCode.FAILED)),
        message=str(doc.get("message", "")),
        duration_s=float(doc.get("duration_s") or 0.0),
        run_id=doc.get("run_id"),
        from_version=doc.get("from_version"),
        to_version=doc.get("to_version"),
        time_to_traffic_restored_s=doc.get("time_to_traffic_restored_s"),
        report=doc.get("report"),
        error=doc.get("error"),
    )


def wait_for(
    store: Store,
    jobs: Sequence[Job],
    *,
    timeout_s: float,
    on_done: Callable[[StackRun, str], None] | None = None,
    timing: Timing | None = None,
    interval_s: float = 0.5,
) -> FleetResult:
    """Wait until every job has a result (or `timeout_s` passed); one entry per job, in order.

    `on_done(entry, by)` sees each result as it arrives, with the agent that
    ran it. A job still without a result is an entry `queued` (exit 1).
    """
    timing = timing or Timing()
    start = timing.clock()
    found: dict[str, StackRun] = {}
    while True:
        for job in jobs:
            if job.id in found:
                continue
            doc = read_result(store, f"job-{job.id}")
            if doc is not None:
                found[job.id] = stack_run(job.stack, doc)
                if on_done:
                    on_done(found[job.id], str(doc.get("by", "")))
        elapsed = timing.clock() - start
        if len(found) == len(jobs) or elapsed >= timeout_s:
            break
        timing.sleep(min(interval_s, timeout_s - elapsed))
    runs = tuple(
        found.get(job.id)
        or StackRun(
            stack=job.stack,
            ok=False,
            result="queued",
            exit_code=int(ExitCode.FAILED),
            message=(
                f"no agent reported job {job.id} within {timeout_s:.0f}s; it stays queued "
                "(`rollback history` shows the run once an agent takes it)."
            ),
            duration_s=elapsed,
        )
        for job in jobs
    )
    return FleetResult(runs, parallel=0, duration_s=elapsed)
