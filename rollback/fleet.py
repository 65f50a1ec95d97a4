"""Fleet mode: one rollback per stack, at most N at a time, one result for them all.

The caller's `work(stack)` builds everything for that stack itself (its own
settings, session, store, lock and journal) and returns its Outcome; here
each call runs in a worker thread and whatever it raises (LockHeld,
NotFound, CheckFailed, a bug) becomes that stack's entry, so one stack
failing never stops the others.

The fleet's exit code is 0 when every stack is ok; otherwise the most severe
code among the stacks that were not, in the order 70 (a bug) > 4 (integrity:
do not retry blindly) > 1 (a rollback or check failed) > 3 (locked: retry
later) > 2 (refused as asked). A fleet of one therefore exits as the
single-stack command would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from rollback.errors import ExitCode, RollbackError, UsageError

if TYPE_CHECKING:
    from rollback.orchestrate import Outcome

log = logging.getLogger(__name__)

T = TypeVar("T")

SEVERITY = (
    ExitCode.INTERNAL,
    ExitCode.INTEGRITY,
    ExitCode.FAILED,
    ExitCode.LOCKED,
    ExitCode.USAGE,
)
# The result word of a stack whose work raised, by the error's exit code.
_RAISED = {
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "refused",
    ExitCode.LOCKED: "locked",
    ExitCode.INTEGRITY: "integrity",
    ExitCode.INTERNAL: "internal error",
}


@dataclass(frozen=True)
class StackRun:
    """One stack's part of a fleet run: its outcome, or the error that ended it.

    `result` is the run's (succeeded | failed | stopped), `nothing to do`
    when the stack was already at the target, or for a raised error one of
    failed | refused | locked | integrity | internal error.
    """

    stack: str
    ok: bool
    result: str
    exit_code: int
    message: str
    duration_s: float
    run_id: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    time_to_traffic_restored_s: float | None = None
    report: str | None = None
    error: str | None = None  # the exception's class name when the work raised
    outcome: Outcome | None = None

    @classmethod
    def of_outcome(cls, stack: str, outcome: Outcome, duration_s: float) -> StackRun:
        plan, result = outcome.plan, outcome.result
        if result is None:
            message = plan.warnings[0] if plan.warnings else "nothing to do"
            word = "nothing to do"
        else:
            message, word = result.message, result.result
        return cls(
            stack=stack,
            ok=outcome.ok,
            result=word,
            exit_code=int(ExitCode.OK if outcome.ok else ExitCode.FAILED),
            message=message,
            duration_s=duration_s,
            run_id=plan.run_id if result is not None else None,
            from_version=plan.from_version,
            to_version=plan.to_version,
            time_to_traffic_restored_s=result.time_to_traffic_restored_s if result else None,
            report=outcome.report_keys[0] if outcome.report_keys else None,
            outcome=outcome,
        )

    @classmethod
    def of_error(cls, stack: str, exc: BaseException, duration_s: float) -> StackRun:
        if isinstance(exc, RollbackError):
            code, message = ExitCode(exc.exit_code), exc.message
        else:
            code = ExitCode.INTERNAL
            message = (
                f"internal error: {type(exc).__name__}: {exc}. Rerun with --debug and report it."
            )
        return cls(
            stack=stack,
            ok=False,
            result=_RAISED[code],
            exit_code=int(code),
            message=message,
            duration_s=duration_s,
            error=type(exc).__name__,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "ok": self.ok,
            "result": self.result,
            "exit_code": self.exit_code,
            "message": self.message,
            "duration_s": round(self.duration_s, 3),
            "run_id": self.run_id,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "time_to_traffic_restored_s": self.time_to_traffic_restored_s,
            "report": self.report,
            "error": self.error,
            "outcome": self.outcome.to_dict() if self.outcome else None,
        }


@dataclass(frozen=True)
class FleetResult:
    """Every stack's entry, in the order the stacks were named."""

    runs: tuple[StackRun, ...]
    parallel: int
    duration_s: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    @property
    def exit_code(self) -> int:
        """0 when all are ok, else the most severe failed code (see the module docstring)."""
        codes = {r.exit_code for r in self.runs if not r.ok}
        return next((int(c) for c in SEVERITY if c in codes), int(ExitCode.OK))

    @property
    def counts(self) -> dict[str, int]:
        """How many stacks: in all, ok, not ok, and per result word."""
        counts = {"total": len(self.runs), "ok": sum(r.ok for r in self.runs)}
        counts["not_ok"] = counts["total"] - counts["ok"]
        for run in self.runs:
            counts[run.result] = counts.get(run.result, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "parallel": self.parallel,
            "duration_s": round(self.duration_s, 3),
            "counts": self.counts,
            "stacks": [r.to_dict() for r in self.runs],
        }


def each_stack(
    stacks: Sequence[str],
    work: Callable[[str], T],
    parallel: int,
    on_done: Callable[[str, T | BaseException, float], None] | None = None,
) -> dict[str, tuple[T | BaseException, float]]:
    """Call `work(stack)` for every stack, at most `parallel` at once.

    Returns, per stack, what the call returned or the Exception it raised, and
    its duration in seconds. `on_done` sees each as it finishes (from the
    calling thread). Raises UsageError for no stacks, a stack named twice
    (two runs would fight over its lock) or `parallel` below 1. Interrupted,
    it starts no further stack and lets those running finish.
    """
    if not stacks:
        raise UsageError("a fleet needs at least one stack; pass --stack or --stacks-file.")
    twice = sorted({s for s in stacks if list(stacks).count(s) > 1})
    if twice:
        raise UsageError(f"stack {twice[0]} is named twice; name each stack once.")
    if parallel < 1:
        raise UsageError(f"--parallel {parallel} is not a positive number of stacks at a time.")

    def timed(stack: str) -> tuple[T | BaseException, float]:
        start = time.monotonic()
        try:
            value: T | BaseException = work(stack)
        except Exception as exc:  # noqa: BLE001 - one stack's failure, whatever it is, is its entry
            log.debug("stack %s failed", stack, exc_info=True)
            value = exc
        return value, time.monotonic() - start

    done: dict[str, tuple[T | BaseException, float]] = {}
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="fleet")
    try:
        futures: dict[Future[tuple[T | BaseException, float]], str] = {
            pool.submit(timed, stack): stack for stack in stacks
        }
        for future in as_completed(futures):
            stack = futures[future]
            done[stack] = future.result()
            if on_done is not None:
                on_done(stack, *done[stack])
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return {stack: done[stack] for stack in stacks}


def run_fleet(
    stacks: Sequence[str],
    work: Callable[[str], Outcome],
    parallel: int,
    on_done: Callable[[StackRun], None] | None = None,
) -> FleetResult:
    """Run `work` (one stack's rollback) for every stack; one failing never stops the others.

    `on_done` sees each stack's entry as it finishes. Raises UsageError only
    for a malformed fleet (see `each_stack`), before any stack starts.
    """
    start = time.monotonic()

    def entry(stack: str, value: Outcome | BaseException, seconds: float) -> StackRun:
        if isinstance(value, BaseException):
            return StackRun.of_error(stack, value, seconds)
        return StackRun.of_outcome(stack, value, seconds)

    def report(stack: str, value: Outcome | BaseException, seconds: float) -> None:
        if on_done is not None:
            on_done(entry(stack, value, seconds))

    done = each_stack(stacks, work, parallel, report if on_done else None)
    runs = tuple(entry(stack, *done[stack]) for stack in stacks)
    return FleetResult(runs, parallel, time.monotonic() - start)
