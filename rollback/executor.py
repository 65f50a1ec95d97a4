"""Run a plan: take the stack lock, journal every transition, apply and verify each step,
then prove the outcome.

    executor = Executor(store, "webapp/prod", builder, health_check=probe, notifiers=[...])
    result = executor.execute(plan, skips={"smoke": "flaky, see INC-42"}, actor="ana")
    result = executor.resume(run_id, actor="ana")       # after a crash, or once a failure's cause is fixed
    result = executor.abort(run_id, actor="ana")        # undo a failed rollback, on purpose

A step is done when its `verify` evidence is all ok; anything else is a
failure. A run succeeds only when every step is done *and* the outcome check
(rollback/outcome.py) reads from the cloud that users are served the target
version; that check is its own journalled stage (`outcome`).

Failing forward (DESIGN.md): a failed rollback never sends users back to the
release it is rolling away from. It stops at the last verified state: traffic
stays where its verified traffic step put it, nothing is compensated, the
journal says where traffic, stack and data are, and `resume` carries the run
forward (the failed step is applied again) once the cause is fixed.

Undoing a rollback is an explicit command, `abort`: the steps done are
compensated in reverse, where that is safe:

- a database snapshot is never undone (it keeps data recoverable);
- a traffic or dns step sends traffic back only if every colour it would send
  traffic to passes `health_check(colour)`; otherwise traffic stays where the
  rollback put it (a verified state) and the result says so. Such steps
  name those colours through `compensation_colors(prior)` (`RoutesTraffic`);
  a step that does not is never compensated, since nobody can vouch for it;
- a step whose apply changed nothing has nothing to put back.

Every verified traffic change (and every compensated one) is written to the
store as the stack's desired traffic (rollback/ownership.py), so no later
`stack up` moves users.

Journal before acting: a step's `applying` record is in the store before
its apply runs. The records of a fresh run up to its first change (run.json,
started, confirmed, a read-only step's transitions, the changing step's
`applying`) are staged and written in one go right before that change; a
step whose `read_only` attribute is true changes nothing, so its records
wait for the next change, or the run's end (a crash meanwhile leaves it
pending, and a resume checks it again).

Between steps the executor asks `should_stop()` (an emergency stop, SIGTERM)
and, if asked, ends on the verified state reached so far with result
"stopped". A dry run gives the same plan to `DisplayExecutor`, which only
describes. Nothing here prints: progress goes to `on_event` with each
journal record as it is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rollback import collector
from rollback.errors import Interrupted, Terminated, UsageError, failure_sentence
from rollback.journal import (
    Event,
    Journal,
    Now,
    Run,
    RunLog,
    StepRecord,
    seconds_between,
    utc_now,
)
from rollback.models import Evidence
from rollback.notify import Notifier, NotifyOutcome
from rollback.plan import Plan, PlannedStep, StepBuilder
from rollback.steps import Applied, Step
from rollback.store import Store
from rollback.store.lock import DEFAULT_LEASE_SECONDS, HeldLock

if TYPE_CHECKING:
    from rollback.outcome import OutcomeReport

log = logging.getLogger(__name__)

TRAFFIC_KINDS = frozenset({"traffic", "dns"})
NEVER_UNDONE = frozenset({"db-snapshot"})
LAYERS: dict[str, frozenset[str]] = {
    "traffic": TRAFFIC_KINDS,
    "stack": frozenset({"stack", "artifact"}),
    "database": frozenset({"db-snapshot", "db-restore", "migrate", "integrity"}),
    "checks": frozenset({"preflight", "health", "smoke", "alarm"}),
    "release": frozenset({"mark"}),
}
ALWAYS_STATED = ("traffic", "stack", "database")

HealthCheck = Callable[[str], bool]
OnEvent = Callable[[Event], None]
ShouldStop = Callable[[], bool]
OutcomeProbe = Callable[[Plan, frozenset[str]], "OutcomeReport"]  # plan, skipped step names
Remember = Callable[[dict[str, int], str], object]  # weights by colour, run id: the desired traffic
Report = Callable[[str], object]  # run id: write the run's report (rollback.report.store_report)


@runtime_checkable
class RoutesTraffic(Protocol):
    """A traffic or dns step that can say where its compensation would send traffic."""

    def compensation_colors(self, prior: dict[str, Any]) -> Sequence[str]:
        """The colours that would receive traffic after `compensate(prior)`."""
        ...


@dataclass(frozen=True)
class StepOutcome:
    """What became of one step, with the evidence its verify read from the cloud.

    `state` is a journal state (verified, failed, compensated, skipped, ...)
    or, from a dry run, `would-apply` / `would-skip`.
    """

    name: str
    kind: str
    summary: str
    state: str
    changed: bool = False
    evidence: tuple[Evidence, ...] = ()
    error: str = ""
    note: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """The end of a run: its result, each step's outcome and the state per layer.

    `result` is succeeded | failed | stopped | aborted (or `dry-run`); `state` maps a
    layer (traffic, stack, database, checks) to sentences saying how the
    system was left. The CLI exits 1 unless `ok`.
    """

    run_id: str
    stack: str
    from_version: str
    to_version: str
    result: str
    message: str
    steps: tuple[StepOutcome, ...]
    state: dict[str, str]
    warnings: tuple[str, ...] = ()
    started_at: str | None = None
    finished_at: str | None = None
    traffic_restored_at: str | None = None
    duration_s: float | None = None
    time_to_traffic_restored_s: float | None = None
    notifications: tuple[NotifyOutcome, ...] = ()
    outcome: dict[str, Any] | None = None  # the outcome check's report (rollback/outcome.py)

    @property
    def ok(self) -> bool:
        return self.result in ("succeeded", "dry-run")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


class Executor:
    """Executes plans (and resumes runs) of one stack against the real cloud."""

    def __init__(
        self,
        store: Store,
        stack: str,
        builder: StepBuilder,
        *,
        now: Now = utc_now,
        on_event: OnEvent | None = None,
        health_check: HealthCheck | None = None,
        should_stop: ShouldStop = lambda: False,
        notifiers: Sequence[Notifier] = (),
        observe: Callable[[], dict[str, str]] | None = None,
        outcome: OutcomeProbe | None = None,
        remember: Remember | None = None,
        report: Report | None = None,
    ) -> None:
        self.store = store
        self.stack = stack
        self.builder = builder
        self.now = now
        self.on_event = on_event
        self.health_check = health_check
        self.should_stop = should_stop
        self.notifiers = tuple(notifiers)
        self.observe = observe
        self.outcome = outcome
        self.remember = remember
        # Called once a run's `finished` record is in the store and before its lock goes: a
        # process killed after unlocking must not leave a finished run without its report.
        self.report = report
        self.held: HeldLock | None = None  # the lock of the run in hand, renewed by a heartbeat

    def execute(
        self,
        plan: Plan,
        *,
        actor: str,
        skips: Mapping[str, str] | None = None,
        lock_lease: int = DEFAULT_LEASE_SECONDS,
        break_lock: bool = False,
        confirmation: str | None = None,
        options: Mapping[str, Any] | None = None,
        lock: HeldLock | None = None,
    ) -> RunResult:
        """Run `plan` to its end and return the result; a failed rollback is a result, not an error.

        Raises UsageError for a plan of another stack or a bad skip, LockHeld
        (before anything is journaled) when another run holds the lock.
        `confirmation` says how the actor confirmed (e.g. "--yes"). `lock`:
        the stack lock the caller took for this run before planning it (an
        emergency plans under it); the caller releases it.
        """
        skips = dict(skips or {})
        check_plan(plan, self.stack, skips)
        steps = {planned.name: self.builder(planned) for planned in plan.steps}
        taken = lock is None
        if lock is None:
            lock = self._lock(plan.run_id, lock_lease, break_lock, resuming=False)
        else:
            self._hold(lock, plan.run_id)
        try:
            run_options = {
                **dict(options or {}),
                "skips": {name: {"reason": why, "by": actor} for name, why in skips.items()},
                "lock_lease": lock_lease,
                "break_lock": break_lock,
                "confirmation": confirmation,
            }
            # run.json and the records up to the first change are written in one go (see go).
            journal = Journal.create(
                self.store, plan, actor=actor, options=run_options, now=self.now, hold=True
            )
            run = _Course(self, journal, plan, steps, actor)
            run.log.hold()
            run.record(
                "started",
                data={"actor": actor, "reason": plan.reason, "warnings": list(plan.warnings)},
            )
            run.notify("started")
            if confirmation:
                run.record("confirmed", data={"by": actor, "how": confirmation})
            for name, why in skips.items():
                run.record("skipped", step=name, data={"reason": why, "by": actor})
            return run.go(journal.created_run())
        finally:
            if taken:
                lock.release()

    def resume(
        self,
        run_id: str,
        *,
        actor: str,
        lock_lease: int = DEFAULT_LEASE_SECONDS,
        break_lock: bool = False,
    ) -> RunResult:
        """Carry a run forward: one whose process died, or one that failed once its cause is fixed.

        The step in flight is verified first: if the cloud already shows it
        done it is recorded verified (its prior is then unknown, so it cannot
        be compensated); otherwise it is applied again (apply is idempotent).
        A failed step is applied again, then the rest, then the outcome check.
        A stopped run carries on from where it stopped. An abort whose process
        died is finished as `abort` would: the undo was asked for and is half
        done, and carrying the run forward would fight it. Raises NotFound for
        an unknown run, UsageError for a run that succeeded or was aborted,
        LockHeld as `execute`.
        """
        before = Journal.load(self.store, self.stack, run_id)
        if before.finished and before.result not in ("failed", "stopped"):
            raise UsageError(
                f"run {run_id} finished ({before.result}) at {before.finished_at}; "
                "there is nothing to resume. Plan a new rollback instead.",
                run_id=run_id,
            )
        if aborting(before):
            return self.abort(run_id, actor=actor, lock_lease=lock_lease, break_lock=break_lock)
        if any(r.state in _COMPENSATION_STATES for r in before.steps):
            raise UsageError(
                f"run {run_id} was compensated (undone) after its failure, so it cannot be carried "
                "forward; plan a new rollback instead.",
                run_id=run_id,
            )
        steps = {planned.name: self.builder(planned) for planned in before.plan.steps}
        lock = self._lock(run_id, lock_lease, break_lock, resuming=True)
        took_over = lock.note
        try:
            journal = Journal.reopen(self.store, self.stack, run_id, now=self.now)
            run = _Course(self, journal, before.plan, steps, actor)
            in_flight = before.in_flight
            run.record(
                "resumed",
                data={
                    "by": actor,
                    "in_flight": in_flight.name if in_flight else None,
                    "in_flight_state": in_flight.state if in_flight else None,
                    "lock_taken_over": took_over,
                },
            )
            return run.go(before)
        finally:
            lock.release()

    def abort(
        self,
        run_id: str,
        *,
        actor: str,
        lock_lease: int = DEFAULT_LEASE_SECONDS,
        break_lock: bool = False,
    ) -> RunResult:
        """Undo a rollback on purpose: compensate its done steps in reverse, where safe.

        Traffic goes back only towards colours that pass the health check; a
        snapshot is never undone. For a run that failed, stopped or died;
        raises UsageError for one that succeeded or was already aborted, or
        for a cutover (it reverts itself), LockHeld as `execute`.
        """
        before = Journal.load(self.store, self.stack, run_id)
        if before.options.get("kind") == "cutover":
            raise UsageError(
                f"run {run_id} is a cutover: a failed cutover already returned users to the colour "
                "they came from; `rollback resume` finishes an interrupted one.",
                run_id=run_id,
            )
        if before.result in ("succeeded", "aborted"):
            raise UsageError(
                f"run {run_id} {before.result} at {before.finished_at}; there is nothing to abort. "
                f"To go back to {before.plan.from_version}, plan a rollback to it.",
                run_id=run_id,
            )
        steps = {planned.name: self.builder(planned) for planned in before.plan.steps}
        lock = self._lock(run_id, lock_lease, break_lock, resuming=True)
        try:
            journal = Journal.reopen(self.store, self.stack, run_id, now=self.now)
            run = _Course(self, journal, before.plan, steps, actor)
            run.record("resumed", data={"by": actor, "abort": True, "lock_taken_over": lock.note})
            run.record("aborting", data={"by": actor})
            run.compensate()
            return run.finish_abort()
        finally:
            lock.release()

    def _lock(self, run_id: str, lease: int, break_lock: bool, *, resuming: bool) -> HeldLock:
        """Take the stack lock, renewed by a heartbeat until released (see store/lock.py).

        On resume, a lock this run id left behind on this host with its process
        gone is taken over (`note` says so): nobody else can be running this run.
        A lock held by a finished run, or by a run killed before its journal, is
        taken over by anyone.
        """
        lock = HeldLock(
            self.store,
            self.stack,
            run_id,
            lease_seconds=lease,
            break_expired=break_lock,
            resuming=resuming,
        ).acquire()
        self._hold(lock, run_id)
        return lock

    def _hold(self, lock: HeldLock, run_id: str) -> None:
        """Run under `lock`, taken for `run_id`; raises UsageError for another stack's or run's."""
        if lock.stack != self.stack or lock.run_id != run_id or lock.taken_at is None:
            raise UsageError(
                f"the lock handed to the executor is not a held lock of {self.stack} for run "
                f"{run_id}; this is a bug in the caller.",
            )
        self.held = lock


class _Course:
    """One pass of the executor over a run's steps (a fresh run or a resumed one)."""

    def __init__(
        self,
        executor: Executor,
        journal: Journal,
        plan: Plan,
        steps: dict[str, Step],
        actor: str,
    ) -> None:
        self.x = executor
        self.journal = journal
        self.plan = plan
        self.steps = steps
        self.actor = actor
        self.log = RunLog(
            journal,
            plan,
            actor,
            executor.now,
            executor.on_event,
            executor.notifiers,
            headline=_headline,
        )
        self.record = self.log.record
        self.notify = self.log.notify
        self.notified = self.log.notified
        self.skipped: frozenset[str] = frozenset()

    def go(self, before: Run) -> RunResult:
        """Advance every unfinished step; stop at the first failure; prove the outcome; record the end.

        Ctrl-C (or SIGTERM, which the CLI raises as Terminated) raises
        Interrupted naming the run: its journal says where it stopped (a step
        in flight is verified first on resume).
        """
        try:
            return self._go(before)
        except KeyboardInterrupt as exc:
            run_id = self.plan.run_id
            how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            raise Interrupted(
                f"{how}: run {run_id} stopped before its end; `rollback status` shows "
                f"where it stopped, and `rollback resume {run_id}` carries it on.",
                run_id=run_id,
                terminated=isinstance(exc, Terminated),
            ) from None

    def _go(self, before: Run) -> RunResult:
        records = {r.name: r for r in before.steps}
        self.skipped = frozenset(r.name for r in before.steps if r.state == "skipped")
        traffic_restored = before.traffic_restored_at is not None
        failed: str | None = None
        stopped_before: str | None = None
        # Records of read-only steps wait for the next step that changes something, and go
        # to the store with its `applying` record in one write (see _advance).
        self.log.hold()
        self._prepare_first_change(records)
        for planned in self.plan.steps:
            record = records[planned.name]
            if record.state in ("verified", "skipped"):
                continue
            lost = self.x.held is not None and self.x.held.lost
            if lost or self.x.should_stop():
                # A lock another run took (a renewal found it gone) means someone else acts now.
                stopped_before = planned.name
                by = "the lock, taken by another run" if lost else self.actor
                self.record("stopped", data={"before": planned.name, "by": by})
                break
            if not self._advance(planned, record):
                failed = planned.name  # failing forward: nothing is undone, nothing more is done
                break
            if planned.kind in TRAFFIC_KINDS and not traffic_restored:
                traffic_restored = True
                self.record("traffic-restored", data={"step": planned.name})
                self.notify("traffic-restored")
        self.log.flush()
        collector.resume()  # (a run with no change left to make)
        # What a killed run's stack step left in git goes once the steps are done: not on the
        # way to traffic (a stack step prunes for itself before it makes its worktree).
        from rollback.worktrees import prune_stale_worktrees

        prune_stale_worktrees()
        outcome = None
        if failed is None and stopped_before is None:
            outcome = self._outcome()
        return self._finish(stopped_before, outcome)

    def _prepare_first_change(self, records: dict[str, StepRecord]) -> None:
        """Let the first step that changes something start its reads now (`prepare`).

        We hold the lock: its reads overlap the journal write before its apply.
        """
        for planned in self.plan.steps:
            record = records[planned.name]
            if record.state in ("verified", "skipped"):
                continue
            step = self.steps[planned.name]
            if getattr(step, "read_only", False):
                continue
            prepare = getattr(step, "prepare", None)
            if prepare is not None and record.state == "pending":
                prepare()
            return

    def _outcome(self) -> OutcomeReport | None:
        """The end-of-run proof, journalled as its own stage; None when no probe was given."""
        if self.x.outcome is None:
            return None
        try:
            report = self.x.outcome(self.plan, self.skipped)
        except Exception as exc:  # noqa: BLE001 - an unreadable outcome is a failed one
            log.debug("outcome check raised", exc_info=True)
            from rollback.outcome import OutcomeReport  # at the end: not on the way to traffic

            report = OutcomeReport(
                False, f"Outcome check failed: {failure_sentence(exc, 'read the outcome')}.", {}
            )
        self.record("outcome", data=report.to_dict())
        return report

    def _advance(self, planned: PlannedStep, record: StepRecord) -> bool:
        """Take one step from where the journal left it to verified; False if it failed."""
        step = self.steps[planned.name]
        if record.state == "applying":
            # In flight when a process died: the cloud may already show it done.
            evidence, error = _verify(step)
            if not error:
                self._remember(planned, step)  # the killed run may have died before it did
                self.record(
                    "step",
                    step=planned.name,
                    state="verified",
                    data={
                        "evidence": _ev(evidence),
                        "note": "found already done on resume; its prior state was not recorded, so it cannot be compensated",
                    },
                )
                return True
        if record.state in ("pending", "applying", "failed"):
            # A failed step is applied again when its run is resumed (apply is idempotent).
            self.record("step", step=planned.name, state="applying")
            changes = not getattr(step, "read_only", False)
            if changes:
                self.log.flush()  # the journal says what is in flight before it changes anything
                if planned.kind not in TRAFFIC_KINDS:
                    collector.resume()  # a stack program, a restore: collected as they run
            try:
                applied = step.apply()
            except Exception as exc:
                self.record(
                    "step",
                    step=planned.name,
                    state="failed",
                    data={"error": failure_sentence(exc, "apply")},
                )
                log.debug("step %s failed to apply", planned.name, exc_info=True)
                return False
            finally:
                if changes:
                    collector.resume()  # the first change is made: see rollback.collector
            self.record("step", step=planned.name, state="applied", data=_applied(applied))
        evidence, error = _verify(step)
        state = "failed" if error else "verified"
        data: dict[str, Any] = {"evidence": _ev(evidence)}
        if error:
            data["error"] = error
        else:
            # Before the journal says verified: a crash in between re-verifies on resume.
            self._remember(planned, step)
        self.record("step", step=planned.name, state=state, data=data)
        return not error

    def _remember(self, planned: PlannedStep, step: Step) -> None:
        """A verified traffic step's weights become the stack's desired traffic (ownership).

        Also when a resume finds the step already done: a run killed between the
        listener's change and this would otherwise leave the desired traffic the
        one it rolled away from, and the stack step re-applies that after it.
        """
        if planned.kind == "traffic" and self.x.remember is not None:
            self.x.remember(dict(getattr(step, "target_weights", {})), self.plan.run_id)

    def compensate(self) -> None:
        """Undo, in reverse, what the steps done so far changed, where that is safe (`abort`)."""
        run = Journal.load(self.x.store, self.plan.stack, self.plan.run_id)
        for record in reversed(run.steps):
            if record.state not in ("applied", "verified", "failed", "compensating"):
                continue
            if record.prior is None:
                if record.state != "failed":
                    self._skip_compensation(
                        record, "its prior state was never recorded (it was found done on resume)"
                    )
                continue  # a failed apply never returned: nothing recorded to put back
            if not record.changed:
                self._skip_compensation(record, "its apply changed nothing")
                continue
            step = self.steps[record.name]
            if record.kind in NEVER_UNDONE or not getattr(step, "reversible", True):
                self._skip_compensation(
                    record, "a snapshot is never undone: it keeps the data recoverable"
                )
                continue
            # A stack re-apply moves traffic too (the release's weights): it says
            # where through RoutesTraffic and obeys the same rule.
            if record.kind in TRAFFIC_KINDS or isinstance(step, RoutesTraffic):
                safe, why = self._traffic_safe(step, record.prior)
                if not safe:
                    self._skip_compensation(record, why)
                    continue
            self.record(
                "step", step=record.name, state="compensating", data={"prior": record.prior}
            )
            try:
                step.compensate(record.prior)
            except Exception as exc:
                log.debug("step %s could not be compensated", record.name, exc_info=True)
                self.record(
                    "step",
                    step=record.name,
                    state="compensation-failed",
                    data={"note": failure_sentence(exc, "compensate") + "; check it by hand"},
                )
                continue
            if record.kind == "traffic" and self.x.remember is not None:
                weights: dict[str, int] = getattr(step, "prior_weights", lambda _p: {})(
                    record.prior
                )
                if weights:
                    self.x.remember(weights, f"{self.plan.run_id} (aborted)")
            self.record(
                "step",
                step=record.name,
                state="compensated",
                data={"note": "put back as it was before the run"},
            )

    def _skip_compensation(self, record: StepRecord, why: str) -> None:
        self.record("step", step=record.name, state="compensation-skipped", data={"note": why})

    def _traffic_safe(self, step: Step, prior: dict[str, Any]) -> tuple[bool, str]:
        """Whether sending traffic back is safe, and the sentence that says why (not)."""
        stays = "traffic stays where the rollback put it and verified it"
        if not isinstance(step, RoutesTraffic):
            return (
                False,
                f"the step does not say which colour its compensation would send traffic to, so {stays}",
            )
        colors = list(step.compensation_colors(prior))
        if self.x.health_check is None:
            return (
                False,
                f"no health check was given to confirm {', '.join(colors) or 'any colour'} healthy, so {stays}",
            )
        for color in colors:
            try:
                healthy = self.x.health_check(color)
            except Exception as exc:
                log.debug("health check of colour %s raised", color, exc_info=True)
                return (
                    False,
                    f"colour {color} could not be health-checked ({failure_sentence(exc, 'check')}), so {stays}",
                )
            if not healthy:
                return (
                    False,
                    f"colour {color}, where compensation would send traffic, is not healthy, so {stays}",
                )
        return True, f"{', '.join(colors)} verified healthy"

    def _finish(self, stopped_before: str | None, outcome: OutcomeReport | None) -> RunResult:
        run = Journal.load(self.x.store, self.plan.stack, self.plan.run_id)
        failed = next((r for r in run.steps if r.state in _FAILURE_STATES), None)
        what = f"The rollback of {self.plan.stack} to {self.plan.to_version}"
        if failed is not None:
            result = "failed"
            message = (
                f"{what} failed at step {failed.name}: {failed.error or 'see the journal'}. "
                "It stopped on the last verified state and undid nothing: users stay where its "
                "verified steps put them; the state per layer says where traffic, stack and data "
                f"are. Fix the cause and run `rollback resume {self.plan.run_id}` to carry it "
                f"forward, or `rollback abort {self.plan.run_id}` to undo it towards a healthy colour."
            )
        elif stopped_before is not None:
            result = "stopped"
            message = (
                f"{what} stopped on request before step {stopped_before}; every step done so far "
                f"is verified. `rollback resume {self.plan.run_id}` carries it forward."
            )
        elif outcome is not None and not outcome.ok:
            result = "failed"
            message = (
                f"{what}: every step verified, but the outcome does not hold. {outcome.sentence} "
                f"Fix it and run `rollback resume {self.plan.run_id}` to check the outcome again."
            )
        else:
            result = "succeeded"
            proof = f" {outcome.sentence}" if outcome is not None else ""
            message = (
                f"Rolled back {self.plan.stack} from {self.plan.from_version} to "
                f"{self.plan.to_version}; every step verified.{proof}"
            )
        return self._end(run, result, message)

    def finish_abort(self) -> RunResult:
        run = Journal.load(self.x.store, self.plan.stack, self.plan.run_id)
        undone = [r.name for r in run.steps if r.state == "compensated"]
        kept = [
            r.name for r in run.steps if r.state in ("compensation-skipped", "compensation-failed")
        ]
        message = (
            f"The rollback of {self.plan.stack} to {self.plan.to_version} was aborted by {self.actor}: "
            f"undone {', '.join(undone) or 'nothing'}"
            + (f"; left as the rollback set them: {', '.join(kept)}" if kept else "")
            + ". The state per layer says where the system is."
        )
        return self._end(run, "aborted", message)

    def _end(self, run: Run, result: str, message: str) -> RunResult:
        state = describe_layers(run)
        if self.x.observe is not None and result != "succeeded":
            # After a failure, say where things are as the cloud reports them, not only
            # what the steps meant: a step that failed half-way may have moved them.
            try:
                state.update(self.x.observe())
            except Exception as exc:  # noqa: BLE001 - a failed read must not hide the result
                state["observed"] = f"could not read the cloud back: {exc}"
        self.notify("finished", result, text=message)
        event = self.record(
            "finished",
            data={"result": result, "message": message, "state": state, "by": self.actor},
        )
        if self.x.report is not None:
            self.x.report(self.plan.run_id)  # under the lock: see Executor.report
        run = Journal.load(self.x.store, self.plan.stack, self.plan.run_id)
        return _result(run, result, message, state, finished_at=event.at, notified=self.notified)


_COMPENSATION_STATES = frozenset(
    {"compensating", "compensated", "compensation-skipped", "compensation-failed"}
)
_FAILURE_STATES = frozenset({"failed"})


class DisplayExecutor:
    """A dry run: what `Executor.execute` would do with the same plan, without acting.

    Builds each step and calls only `describe()` (which may read the cloud,
    never write it); writes nothing to the store and takes no lock.
    """

    def __init__(self, stack: str, builder: StepBuilder) -> None:
        self.stack = stack
        self.builder = builder

    def execute(
        self,
        plan: Plan,
        *,
        actor: str,
        skips: Mapping[str, str] | None = None,
        lock_lease: int = DEFAULT_LEASE_SECONDS,
        break_lock: bool = False,
        confirmation: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Describe the run; raises UsageError as `Executor.execute` would."""
        skips = dict(skips or {})
        check_plan(plan, self.stack, skips)
        outcomes = []
        for planned in plan.steps:
            description = self.builder(planned).describe()
            if planned.name in skips:
                state, note = "would-skip", f"skipped by {actor}: {skips[planned.name]}"
            else:
                state, note = "would-apply", description.reason
            outcomes.append(
                StepOutcome(planned.name, planned.kind, description.summary, state, note=note)
            )
        state_by_layer = by_layer(
            [
                (
                    o.kind,
                    f"{o.summary.rstrip('.')}: would be "
                    f"{'skipped' if o.state == 'would-skip' else 'applied and verified'}.",
                )
                for o in outcomes
            ],
            untouched="Not touched by this plan.",
        )
        return RunResult(
            run_id=plan.run_id,
            stack=plan.stack,
            from_version=plan.from_version,
            to_version=plan.to_version,
            result="dry-run",
            message=(
                f"Dry run: rolling back {plan.stack} from {plan.from_version} to {plan.to_version} "
                f"would run {sum(o.state == 'would-apply' for o in outcomes)} of {len(outcomes)} steps; nothing was changed."
            ),
            steps=tuple(outcomes),
            state=state_by_layer,
            warnings=plan.warnings,
        )


def aborting(run: Run) -> bool:
    """Whether `run` is an abort whose process died before it finished (resume finishes it)."""
    return not run.finished and run.last("aborting") is not None


def check_plan(plan: Plan, stack: str, skips: Mapping[str, str]) -> None:
    """Refuse a plan of another stack, a skip of an unknown or unskippable step, a skip without a reason."""
    if plan.stack != stack:
        raise UsageError(
            f"plan {plan.run_id} is for stack {plan.stack}, not {stack}; plan again for {stack}."
        )
    for name, why in skips.items():
        planned = plan.step(name)
        if not planned.skippable:
            raise UsageError(
                f"step {name} cannot be skipped: {planned.description.summary}. Run without --skip {name}.",
                step=name,
            )
        if not why.strip():
            raise UsageError(
                f"skipping step {name} needs a reason; say why it is safe to skip.", step=name
            )


def describe_layers(run: Run) -> dict[str, str]:
    """Sentences per layer saying how the run left it.

    Traffic, stack and database are always stated; checks, release and
    `other` (kinds no layer claims) only when the plan has such steps.
    """
    summaries = {p.name: p.description.summary for p in run.plan.steps}
    return by_layer(
        [(r.kind, _state_sentence(summaries[r.name], r)) for r in run.steps],
        untouched="Not touched by this run.",
    )


def by_layer(sentences: list[tuple[str, str]], *, untouched: str) -> dict[str, str]:
    """Group (step kind, sentence) pairs into one text per layer, in plan order."""
    known = frozenset().union(*LAYERS.values())
    layers = {**LAYERS, "other": frozenset(k for k, _ in sentences if k not in known)}
    state = {}
    for layer, kinds in layers.items():
        texts = [text for kind, text in sentences if kind in kinds]
        if texts or layer in ALWAYS_STATED:
            state[layer] = " ".join(texts) or untouched
    return state


def _state_sentence(summary: str, record: StepRecord) -> str:
    text = {
        "pending": "not started",
        "applying": "in flight; `rollback resume` finishes it",
        "applied": "applied, not yet verified; `rollback resume` verifies it",
        "verified": "done and verified",
        "failed": f"failed ({record.error.rstrip('.')})",
        "compensating": "being put back; `rollback resume` finishes it",
        "compensated": "undone after the failure, put back as it was before the run",
        "compensation-skipped": f"left as the rollback set it: {record.note}",
        "compensation-failed": f"could not be undone: {record.note}",
        "skipped": f"skipped by {record.skipped_by}: {record.skip_reason}",
    }.get(record.state, record.state)
    return f"{summary.rstrip('.')}: {text}."


def _result(
    run: Run,
    result: str,
    message: str,
    state: dict[str, str],
    *,
    finished_at: str,
    notified: list[NotifyOutcome],
) -> RunResult:
    summaries = {p.name: p.description.summary for p in run.plan.steps}
    outcomes = tuple(
        StepOutcome(
            name=r.name,
            kind=r.kind,
            summary=summaries[r.name],
            state=r.state,
            changed=r.changed,
            evidence=r.evidence,
            error=r.error,
            note=r.note or r.skip_reason,
            started_at=r.started_at,
            ended_at=r.ended_at,
            duration_s=r.duration_s,
        )
        for r in run.steps
    )
    outcome = run.last("outcome")
    step_warnings = tuple(w for r in run.steps for w in r.detail.get("warnings") or ())
    return RunResult(
        run_id=run.run_id,
        stack=run.stack,
        from_version=run.plan.from_version,
        to_version=run.plan.to_version,
        result=result,
        message=message,
        steps=outcomes,
        state=state,
        warnings=run.plan.warnings + step_warnings,
        started_at=run.started_at,
        finished_at=finished_at,
        traffic_restored_at=run.traffic_restored_at,
        duration_s=seconds_between(run.started_at, finished_at),
        time_to_traffic_restored_s=run.time_to_traffic_restored_s,
        notifications=tuple(notified),
        outcome=dict(outcome.data) if outcome is not None else None,
    )


def _verify(step: Step) -> tuple[list[Evidence], str]:
    """Run verify; return its evidence and an error sentence ('' when all is ok)."""
    try:
        found = step.verify()
    except Exception as exc:
        log.debug("verify raised", exc_info=True)
        return [], failure_sentence(exc, "verify")
    if not found:
        return [], "verify read nothing back from the cloud"
    bad = [e for e in found if not e.ok]
    if bad:
        return found, "; ".join(f"{e.api}: {e.note or 'not as expected'}" for e in bad)
    return found, ""


def _applied(applied: Applied) -> dict[str, Any]:
    return {"changed": applied.changed, "prior": applied.prior, "detail": applied.detail}


def _ev(found: list[Evidence]) -> list[dict[str, Any]]:
    return [asdict(e) for e in found]


def _headline(plan: Plan, event: str, result: str | None) -> str:
    if event == "started":
        return f"Rollback of {plan.stack} from {plan.from_version} to {plan.to_version} started (run {plan.run_id})."
    if event == "traffic-restored":
        return f"Traffic of {plan.stack} is back on {plan.to_version} (run {plan.run_id})."
    return f"Rollback of {plan.stack} to {plan.to_version} {result} (run {plan.run_id})."


__all__ = [
    "DisplayExecutor",
    "Executor",
    "HealthCheck",
    "RoutesTraffic",
    "RunResult",
    "StepOutcome",
    "aborting",
    "check_plan",
    "describe_layers",
]
