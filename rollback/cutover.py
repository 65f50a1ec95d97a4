"""`rollback cutover`: move traffic to a colour in steps, watching triggers between them.

    cutover = Cutover(store, "webapp/prod", apis, timing=timing, interrupted=flag)
    result = cutover.run(CutoverSpec("green", steps=(10, 50, 100), bake_s=600, promote=True))
    result = cutover.resume(run_id)          # after SIGTERM, in a new process

A cutover is a journalled run (runs/<project>/<stack>/<run-id>/, options
`kind: cutover`), so `rollback history` and `report` show it. Its plan is, for
each percentage P: `traffic-P` (TrafficStep: the ALB listener and rules give
the new colour P and the previous one 100-P), `dns-P` (DnsStep, when the
topology has weighted records) and `watch-P` (the triggers, for `pause_s`, or
`bake_s` after the last step). Every shift is verified by reading the cloud
back before the watch starts.

How a cutover ends:

- succeeded: every step verified and every watch clean; with `promote` the
  release is marked stable, under the lock and before the `finished` record
  (a process killed after unlocking must not leave it unpromoted).
- reverted (journal result `failed`): a breach, or a shift that failed;
  traffic goes back to the previous colour at once (one verified ALB write,
  then DNS), recorded as the compensation of the shifts done; with
  `rollback_on_breach` the injected `rollback_to(previous stable release)`
  follows, after the lock is released (a process killed before that rollback
  started leaves the cutover the stack's last run: `resume` then runs it).
- stopped: an emergency stop request (`triggers.request_stop`) was seen at a
  check; traffic goes back to the previous colour, as for a breach, because
  whoever pressed the button wants users off the new release.
- interrupted: SIGTERM or Ctrl-C was seen at a check; traffic stays where the
  last verified step put it, the journal has a `stopped` event and the run
  is left unfinished for `rollback resume RUN` (see `Cutover.resume`).
- failed: the revert itself failed; the state per layer says where traffic is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rollback.errors import (
    CheckFailed,
    NotFound,
    RollbackError,
    UsageError,
    failure_sentence,
)
from rollback.executor import TRAFFIC_KINDS, describe_layers
from rollback.journal import Journal, Run, RunLog, iso, sorted_run_ids
from rollback.models import StepDescription, Topology
from rollback.notify import Notifier
from rollback.outcome import Expected, OutcomeCheck, OutcomeReport
from rollback.ownership import TrafficOwner
from rollback.plan import Plan, PlannedStep, new_run_id
from rollback.releases import Registry
from rollback.steps import Step
from rollback.steps.dns import DnsStep
from rollback.steps.traffic import TrafficStep
from rollback.store import Store
from rollback.store.lock import HeldLock
from rollback.triggers import (
    CloudApis,
    Now,
    RollbackTo,
    SignalSpec,
    StopReason,
    Watcher,
    WatchOutcome,
    WatchStep,
    build_signals,
    previous_stable,
    stop_checker,
    stop_requested,
    utc_now,
)
from rollback.waiting import Timing

log = logging.getLogger(__name__)

KIND = "cutover"
LEASE_MARGIN_S = 900  # lock lease beyond the planned watching time
_REVERTING = ("applied", "verified", "failed", "compensating")


@dataclass(frozen=True)
class CutoverSpec:
    """What `rollback cutover COLOR` was asked for."""

    color: str
    steps: tuple[int, ...] = (100,)
    pause_s: float = 60.0  # watch after each step but the last
    bake_s: float = 0.0  # watch after the last step
    signals: SignalSpec = field(default_factory=SignalSpec)
    promote: bool = False
    rollback_on_breach: bool = False

    def check(self) -> None:
        """Raise UsageError for steps that do not rise to 100 or negative durations."""
        steps = list(self.steps)
        if not steps or steps[-1] != 100 or any(not 0 < p <= 100 for p in steps):
            raise UsageError(
                f"--steps {','.join(map(str, steps))} must be percentages 1..100 ending at 100, e.g. 10,50,100."
            )
        if steps != sorted(set(steps)):
            raise UsageError(
                f"--steps {','.join(map(str, steps))} must rise strictly, e.g. 10,50,100."
            )
        if self.pause_s < 0 or self.bake_s < 0:
            raise UsageError("--pause and --bake cannot be negative.")
        self.signals.check()


_STEP = re.compile(r"[+-]?[0-9]+", re.ASCII)  # int() would take '١٠' and '1_0' too


def parse_steps(text: str) -> tuple[int, ...]:
    """`10,50,100` to (10, 50, 100); raises UsageError for anything else."""
    parts = [p.strip() for p in text.split(",")]
    if not all(_STEP.fullmatch(p) for p in parts):
        raise UsageError(f"--steps {text!r} must be comma-separated percentages, e.g. 10,50,100.")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class CutoverResult:
    """The end of a cutover. `result`: succeeded | reverted | stopped | interrupted | failed."""

    run_id: str
    stack: str
    version: str
    color: str
    previous_color: str
    result: str
    message: str
    weights: dict[str, int]
    steps: tuple[dict[str, Any], ...]
    state: dict[str, str]
    breach: dict[str, Any] | None = None
    stop: dict[str, Any] | None = None
    promoted: bool = False
    rollback: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def ok(self) -> bool:
        return self.result == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stack": self.stack,
            "version": self.version,
            "color": self.color,
            "previous_color": self.previous_color,
            "result": self.result,
            "ok": self.ok,
            "message": self.message,
            "weights": dict(self.weights),
            "steps": [dict(s) for s in self.steps],
            "state": dict(self.state),
            "breach": self.breach,
            "stop": self.stop,
            "promoted": self.promoted,
            "rollback": self.rollback,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def is_cutover(run: Run) -> bool:
    """Whether a journalled run is a cutover (resume it with `Cutover.resume`)."""
    return run.options.get("kind") == KIND


def owed_rollback(store: Store, run: Run) -> str | None:
    """The version a finished cutover still owes a rollback to, or None.

    A cutover reverted with `--rollback-on-breach` rolls back once it released
    the lock; a process killed before that rollback wrote its journal leaves
    the cutover the stack's last run, finished and reverted, and nothing else
    would ever run it. Any run after the cutover (that rollback, or whatever
    someone did since) means nothing is owed.
    """
    finished = run.last("finished")
    target = run.options.get("rollback_target")
    if not (is_cutover(run) and run.finished and finished is not None and target):
        return None
    if not run.options.get("rollback_on_breach") or finished.data.get("cutover") != "reverted":
        return None
    if sorted_run_ids(store, run.stack)[-1:] != [run.run_id]:
        return None
    return str(target)


class Cutover:
    """Runs and resumes cutovers of one stack."""

    def __init__(
        self,
        store: Store,
        stack: str,
        apis: CloudApis,
        *,
        timing: Timing | None = None,
        now: Now = utc_now,
        interrupted: Callable[[], str | None] = lambda: None,
        notifiers: Sequence[Notifier] = (),
        rollback_to: RollbackTo | None = None,
        actor: str = "",
        on_event: Callable[[Any], None] | None = None,
        owner: TrafficOwner | None = None,
        outcome: Callable[[Topology], OutcomeCheck] | None = None,
    ) -> None:
        self.store = store
        self.stack = stack
        self.apis = apis
        self.timing = timing or Timing()
        self.now = now
        self.interrupted = interrupted
        self.notifiers = tuple(notifiers)
        self.rollback_to = rollback_to
        self.actor = actor
        self.on_event = on_event
        self.owner = owner  # records each verified shift as the stack's desired traffic
        self.outcome = outcome  # the end-of-run proof of who serves users
        self.registry = Registry(store, stack)
        self.should_stop = stop_checker(store, stack, interrupted)

    # -- start -----------------------------------------------------------------
    def run(self, spec: CutoverSpec) -> CutoverResult:
        """Cut over to `spec.color`; a breach or a stop is a result, not an error.

        Raises before any change: NotFound (no current release, no topology,
        nothing to roll back to with rollback_on_breach), UsageError (bad
        spec, unknown colour, missing alarm), CheckFailed (an emergency stop
        is pending), LockHeld (another run holds the stack).
        """
        spec.check()
        if spec.rollback_on_breach and self.rollback_to is None:
            raise UsageError(
                "--rollback-on-breach needs the rollback orchestration; this is a bug in the caller."
            )
        current = self.registry.current()
        if current is None:
            raise NotFound(
                f"no release of {self.stack} is current; record the deployed release with `rollback release record` before the cutover."
            )
        topology = self.registry.topology(self.registry.show(current).release)
        if spec.color not in topology.target_groups:
            raise UsageError(
                f"colour {spec.color!r} has no target group in the topology (it has {', '.join(sorted(topology.target_groups))})."
            )
        others = [c for c in topology.target_groups if c != spec.color]
        if len(others) != 1:
            raise UsageError(
                f"the topology must have exactly two colours for a cutover, it has {', '.join(topology.target_groups)}."
            )
        previous = others[0]
        pending = stop_requested(self.store, self.stack)
        if pending is not None:
            raise CheckFailed(
                f"an emergency stop of {self.stack} was requested by {pending.get('by') or 'someone'} at "
                f"{pending.get('at')} ({pending.get('reason') or 'no reason given'}); no traffic was moved. "
                "Clear the request once the incident is over, then cut over again.",
                stop=pending,
            )
        target = previous_stable(self.registry, current) if spec.rollback_on_breach else None
        started = self.now()
        # Signals are built (alarms checked) before the lock and the journal: a typo changes nothing.
        build_signals(
            spec.signals.with_topology(topology, spec.color),
            topology,
            spec.color,
            self.apis,
            since=started,
            now=self.now,
        )
        plan = self._plan(spec, topology, current, previous, started)
        options = {
            "kind": KIND,
            "color": spec.color,
            "previous_color": previous,
            "version": current,
            "steps": list(spec.steps),
            "pause_s": spec.pause_s,
            "bake_s": spec.bake_s,
            "signals": spec.signals.to_dict(),
            "promote": spec.promote,
            "rollback_on_breach": spec.rollback_on_breach,
            "rollback_target": target,
            "since": iso(started),
            "topology": topology.to_dict(),
        }
        lease = int(len(spec.steps) * spec.pause_s + spec.bake_s + LEASE_MARGIN_S)
        lock = HeldLock(
            self.store, self.stack, plan.run_id, lease_seconds=lease, owner=self.actor or None
        ).acquire()
        try:
            journal = Journal.create(
                self.store, plan, actor=self.actor, options=options, now=self.now
            )
            course = _Course(self, journal, plan, spec, topology, previous, started)
            course.record(
                "started", data={"actor": self.actor, "reason": plan.reason, "kind": KIND}
            )
            course.notify(
                "started",
                text=f"Cutover of {self.stack} to {spec.color} ({current}) started (run {plan.run_id}).",
            )
            result = course.go(Journal.load(self.store, self.stack, plan.run_id))
        finally:
            lock.release()
        return self._after(result, spec, target)

    def resume(self, run_id: str) -> CutoverResult:
        """Continue a cutover whose process stopped (SIGTERM, Ctrl-C, a crash) from its journal.

        A shift in flight is re-applied (idempotent); a watch in flight starts
        over, in full; a revert in flight is finished. A reverted cutover whose
        `--rollback-on-breach` rollback never started (`owed_rollback`) runs
        that rollback. Raises NotFound for an unknown run, UsageError for
        another finished run or one that is not a cutover, LockHeld when
        another live run holds the stack.
        """
        before = Journal.load(self.store, self.stack, run_id)
        if not is_cutover(before):
            raise UsageError(
                f"run {run_id} is not a cutover; resume it with `rollback resume {run_id}`."
            )
        owed = owed_rollback(self.store, before)
        if before.finished and owed is None:
            raise UsageError(
                f"cutover {run_id} finished ({before.result}) at {before.finished_at}; there is nothing to resume."
            )
        opts = before.options
        spec = CutoverSpec(
            color=str(opts["color"]),
            steps=tuple(int(p) for p in opts["steps"]),
            pause_s=float(opts["pause_s"]),
            bake_s=float(opts["bake_s"]),
            signals=SignalSpec.from_dict(dict(opts["signals"])),
            promote=bool(opts.get("promote")),
            rollback_on_breach=bool(opts.get("rollback_on_breach")),
        )
        topology = Topology.from_dict(dict(opts["topology"]))
        started = datetime.fromisoformat(str(opts["since"]))
        if owed is not None:  # finished: only its rollback is left
            journal = Journal.reopen(self.store, self.stack, run_id, now=self.now)
            course = _Course(
                self, journal, before.plan, spec, topology, str(opts["previous_color"]), started
            )
            finished = before.last("finished")
            data = finished.data if finished is not None else {}
            ended = course._result(
                "reverted",
                str(data.get("message", "")),
                course._weights(),
                finished_at=before.finished_at,
                state=dict(data.get("state") or {}),
            )
            return self._after(ended, spec, owed)
        lock = self._lock_for_resume(run_id, spec)
        took_over = lock.note
        try:
            journal = Journal.reopen(self.store, self.stack, run_id, now=self.now)
            course = _Course(
                self, journal, before.plan, spec, topology, str(opts["previous_color"]), started
            )
            in_flight = before.in_flight
            course.record(
                "resumed",
                data={
                    "by": self.actor,
                    "in_flight": in_flight.name if in_flight else None,
                    "in_flight_state": in_flight.state if in_flight else None,
                    "lock_taken_over": took_over,
                },
            )
            result = course.go(before)
        finally:
            lock.release()
        return self._after(result, spec, opts.get("rollback_target"))

    def _lock_for_resume(self, run_id: str, spec: CutoverSpec) -> HeldLock:
        """Take the lock (renewed while held); take over one this very run left on this host when its process is gone."""
        lease = int(len(spec.steps) * spec.pause_s + spec.bake_s + LEASE_MARGIN_S)
        return HeldLock(
            self.store,
            self.stack,
            run_id,
            lease_seconds=lease,
            owner=self.actor or None,
            resuming=True,
        ).acquire()

    def _plan(
        self, spec: CutoverSpec, topology: Topology, version: str, previous: str, started: datetime
    ) -> Plan:
        steps: list[PlannedStep] = []
        dns = _has_dns(topology) and self.apis.route53 is not None
        for i, percent in enumerate(spec.steps):
            weights = {spec.color: percent, previous: 100 - percent}
            split = f"{spec.color} {percent}%, {previous} {100 - percent}%"
            steps.append(
                _planned(
                    f"traffic-{percent}",
                    "traffic",
                    f"set the load balancer's weights to {split}",
                    {"weights": weights},
                )
            )
            if dns:
                steps.append(
                    _planned(
                        f"dns-{percent}",
                        "dns",
                        f"set the DNS weights to {split}",
                        {"weights": weights},
                    )
                )
            last = i == len(spec.steps) - 1
            duration = spec.bake_s if last else spec.pause_s
            what = (
                f"bake of {spec.color} at 100%" if last else f"watch of {spec.color} at {percent}%"
            )
            steps.append(
                _planned(
                    f"watch-{percent}",
                    "watch",
                    f"{what} for {duration:g}s: a breach sends traffic back to {previous}",
                    {"duration_s": duration, "what": what},
                )
            )
        return Plan(
            run_id=new_run_id(started),
            stack=self.stack,
            from_version=topology.versions.get(previous, "unknown"),
            to_version=version,
            steps=tuple(steps),
            created_at=iso(started),
            created_by=self.actor,
            reason=f"cutover of {self.stack} to {spec.color} in steps {','.join(map(str, spec.steps))}",
        )

    def _after(self, result: CutoverResult, spec: CutoverSpec, target: str | None) -> CutoverResult:
        """Roll back a reverted cutover when asked (lock already released); a succeeded one
        was promoted before its `finished` record (`_Course._promote`)."""
        from dataclasses import replace

        if (
            result.result == "reverted"
            and spec.rollback_on_breach
            and target
            and self.rollback_to is not None
        ):
            why = (result.breach or {}).get("sentence") or result.message
            rolled = self.rollback_to(target, f"cutover {result.run_id} of {result.version}: {why}")
            ok = bool(getattr(rolled, "ok", False))
            tail = (
                f" Then rolled back to {target}."
                if ok
                else f" The rollback to {target} did not succeed: {getattr(rolled, 'message', 'see its report')}"
            )
            return replace(result, rollback=rolled.to_dict(), message=result.message + tail)
        return result


class _Course:
    """One pass over a cutover's steps (a fresh run or a resumed one)."""

    def __init__(
        self,
        cutover: Cutover,
        journal: Journal,
        plan: Plan,
        spec: CutoverSpec,
        topology: Topology,
        previous: str,
        started: datetime,
    ) -> None:
        self.c = cutover
        self.journal = journal
        self.plan = plan
        self.spec = spec
        self.topology = topology
        self.previous = previous
        signals = build_signals(
            spec.signals.with_topology(topology, spec.color),
            topology,
            spec.color,
            cutover.apis,
            since=started,
            now=cutover.now,
        )
        self.watcher = Watcher(signals, spec.signals, timing=cutover.timing, now=cutover.now)
        self.log = RunLog(
            journal, plan, cutover.actor, cutover.now, cutover.on_event, cutover.notifiers
        )
        self.record = self.log.record
        self.notify = self.log.notify
        self.notified = self.log.notified
        self.breach: dict[str, Any] | None = None
        self.stop: StopReason | None = None

    def step(self, planned: PlannedStep) -> Step:
        weights = dict(planned.params.get("weights") or {})
        if planned.kind == "traffic":
            return TrafficStep(self.c.apis.elbv2, self.topology, weights, self.c.timing)
        if planned.kind == "dns":
            assert self.c.apis.route53 is not None
            return DnsStep(self.c.apis.route53, self.topology, weights, self.c.timing)
        return WatchStep(
            self.watcher,
            float(planned.params["duration_s"]),
            str(planned.params["what"]),
            self.c.should_stop,
        )

    def go(self, before: Run) -> CutoverResult:
        """Advance every unfinished step; revert on a breach or failure; record the end."""
        if any(
            r.state in ("failed", "compensating", "compensated", "compensation-failed")
            for r in before.steps
        ):
            failed = next((r for r in before.steps if r.state == "failed"), None)
            return self._revert(failed.error if failed else "a revert was in flight")
        records = {r.name: r for r in before.steps}
        for planned in self.plan.steps:
            record = records[planned.name]
            if record.state in ("verified", "skipped"):
                continue
            stop = self.c.should_stop()
            if stop is not None:
                return self._stopped(stop, planned.name)
            if planned.kind in TRAFFIC_KINDS:
                error = self._shift(planned, record.state)
                if error:
                    return self._revert(error)
                continue
            error = self._watch(planned)
            if self.stop is not None:
                return self._stopped(self.stop, planned.name)
            if error:
                return self._revert(error)
        return self._finish("succeeded", self._success_message())

    def _shift(self, planned: PlannedStep, state: str) -> str:
        """Apply and verify one traffic or dns step; '' when verified, else the error sentence."""
        step = self.step(planned)
        if state == "applying":  # in flight when a process died: the cloud may show it done
            found = step.verify()
            if all(e.ok for e in found):
                self._remember(planned)  # the killed process may have died before it did
                self.record(
                    "step",
                    step=planned.name,
                    state="verified",
                    data={"evidence": _ev(found), "note": "found already done on resume"},
                )
                return ""
        if state in ("pending", "applying"):
            self.record("step", step=planned.name, state="applying")
            try:
                applied = step.apply()
            except Exception as exc:
                error = failure_sentence(exc, "apply")
                prior = exc.fields.get("prior") if isinstance(exc, RollbackError) else None
                data: dict[str, Any] = {"error": error}
                if prior:
                    data["prior"] = prior
                    data["changed"] = True
                self.record("step", step=planned.name, state="failed", data=data)
                return error
            self.record(
                "step",
                step=planned.name,
                state="applied",
                data={"changed": applied.changed, "prior": applied.prior, "detail": applied.detail},
            )
        try:
            found = step.verify()
        except Exception as exc:
            error = failure_sentence(exc, "verify")
            self.record("step", step=planned.name, state="failed", data={"error": error})
            return error
        bad = [e for e in found if not e.ok]
        error = "; ".join(f"{e.api}: {e.note or 'not as expected'}" for e in bad)
        if not found:
            error = "verify read nothing back from the cloud"
        data = {"evidence": _ev(found)}
        if error:
            data["error"] = error
        else:
            self._remember(planned)
        self.record("step", step=planned.name, state="failed" if error else "verified", data=data)
        return error

    def _remember(self, planned: PlannedStep) -> None:
        """A verified shift's weights become the stack's desired traffic (ownership), before
        the journal says verified: a resume that finds the shift done does it again."""
        if planned.kind == "traffic" and self.c.owner is not None:
            self.c.owner.remember(dict(planned.params["weights"]), f"cutover {self.plan.run_id}")

    def _watch(self, planned: PlannedStep) -> str:
        """Run one watch step; '' when clean, else the breach sentence (self.stop set when stopped)."""
        step = self.step(planned)
        assert isinstance(step, WatchStep)
        self.record(
            "step", step=planned.name, state="applying", data={"note": step.describe().summary}
        )
        outcome: WatchOutcome = step.watch()
        if outcome.result == "stopped":
            self.stop = outcome.stop
            return ""
        found = outcome.evidence()
        if outcome.result == "breach":
            assert outcome.breach is not None
            self.breach = outcome.breach.to_dict()
            sentence = outcome.breach.sentence
            self.record(
                "step",
                step=planned.name,
                state="failed",
                data={
                    "evidence": _ev(found),
                    "error": sentence,
                    "breach": self.breach,
                    "rounds": outcome.rounds,
                },
            )
            return sentence
        self.record(
            "step",
            step=planned.name,
            state="verified",
            data={
                "evidence": _ev(found),
                "rounds": outcome.rounds,
                "watched_s": round(outcome.waited_s, 3),
            },
        )
        return ""

    def _revert(self, why: str) -> CutoverResult:
        """Send all traffic back to the previous colour at once, verified; the shifts become compensated."""
        run = Journal.load(self.c.store, self.plan.stack, self.plan.run_id)
        shifted = [r for r in run.steps if r.kind in TRAFFIC_KINDS and r.state in _REVERTING]
        note = f"traffic back on {self.previous} at once"
        for record in shifted:
            if record.state != "compensating":
                self.record(
                    "step",
                    step=record.name,
                    state="compensating",
                    data={"prior": record.prior or {}, "note": note},
                )
        back = {self.previous: 100, self.spec.color: 0}
        evidence_all: list[Any] = []
        try:
            alb = TrafficStep(self.c.apis.elbv2, self.topology, back, self.c.timing)
            alb.apply()
            found = alb.verify()
            evidence_all += found
            if not all(e.ok for e in found):
                raise CheckFailed("; ".join(e.note for e in found if not e.ok))
            if self.c.owner is not None:
                self.c.owner.remember(back, f"cutover {self.plan.run_id} (reverted)")
            self.record("traffic-restored", data={"color": self.previous, "evidence": _ev(found)})
            self.notify(
                "traffic-restored",
                text=f"Traffic of {self.plan.stack} is back on {self.previous} (cutover {self.plan.run_id}: {why}).",
            )
            if any(r.kind == "dns" for r in self.plan.steps) and self.c.apis.route53 is not None:
                dns = DnsStep(self.c.apis.route53, self.topology, back, self.c.timing)
                dns.apply()
                found = dns.verify()
                evidence_all += found
                if not all(e.ok for e in found):
                    raise CheckFailed("; ".join(e.note for e in found if not e.ok))
        except Exception as exc:
            error = failure_sentence(exc, "revert")
            for record in shifted:
                self.record(
                    "step",
                    step=record.name,
                    state="compensation-failed",
                    data={"note": f"{error}; check it by hand"},
                )
            message = (
                f"The cutover of {self.plan.stack} to {self.spec.color} hit a breach or failure ({why.rstrip('.')}) "
                f"and sending traffic back to {self.previous} failed: {error}. Check the load balancer now."
            )
            return self._finish("failed", message, journal_result="failed")
        for record in shifted:
            self.record(
                "step",
                step=record.name,
                state="compensated",
                data={"note": note, "evidence": _ev(evidence_all)},
            )
        if self.stop is not None:
            message = (
                f"The cutover of {self.plan.stack} to {self.spec.color} stopped on an emergency stop request "
                f"by {self.stop.by or 'someone'} ({self.stop.reason or 'no reason given'}); traffic is back on "
                f"{self.previous}, verified."
            )
            return self._finish("stopped", message, journal_result="stopped")
        message = (
            f"The cutover of {self.plan.stack} to {self.spec.color} was reverted: {why.rstrip('.')}. "
            f"Traffic is back on {self.previous}, verified."
        )
        return self._finish("reverted", message, journal_result="failed")

    def _outcome(self, succeeded: bool) -> OutcomeReport | None:
        """Prove who serves users now: the new colour running the release, or the previous colour."""
        if self.c.outcome is None:
            return None
        expected = (
            Expected(version=self.plan.to_version, colours=frozenset({self.spec.color}))
            if succeeded
            else Expected(colours=frozenset({self.previous}))
        )
        try:
            report = self.c.outcome(self.topology).check(expected)
        except Exception as exc:  # noqa: BLE001 - an unreadable outcome is a failed one
            report = OutcomeReport(False, f"Outcome check failed: {exc}.", {})
        self.record("outcome", data=report.to_dict())
        return report

    def _stopped(self, stop: StopReason, before: str) -> CutoverResult:
        weights = self._weights()
        self.stop = stop
        self.record(
            "stopped",
            data={
                "before": before,
                "by": stop.by or self.c.actor,
                "kind": stop.kind,
                "reason": stop.reason,
                "weights": weights,
            },
        )
        if stop.kind == "emergency":
            return self._revert(f"emergency stop: {stop.reason}")
        # A signal: stay on the verified state reached so far, leave the run resumable.
        message = (
            f"The cutover of {self.plan.stack} to {self.spec.color} was interrupted ({stop.reason}) before "
            f"{before}; traffic stays where the last verified step put it ({_split(weights)}). "
            f"`rollback resume {self.plan.run_id}` continues it."
        )
        return self._result("interrupted", message, weights, finished_at=None)

    def _finish(
        self, result: str, message: str, journal_result: str = "succeeded"
    ) -> CutoverResult:
        if result in ("succeeded", "reverted", "stopped"):
            report = self._outcome(result == "succeeded")
            if report is not None and not report.ok:
                result, journal_result = "failed", "failed"
                message = f"{message} But the outcome does not hold: {report.sentence}"
        promoted = result == "succeeded" and self.spec.promote
        if promoted:
            self._promote()
            message = f"{message} Release {self.plan.to_version} is marked stable."
        run = Journal.load(self.c.store, self.plan.stack, self.plan.run_id)
        state = describe_layers(run)
        self.notify("finished", journal_result, text=message)
        event = self.record(
            "finished",
            data={
                "result": journal_result,
                "message": message,
                "state": state,
                "by": self.c.actor,
                "cutover": result,
            },
        )
        return self._result(
            result, message, self._weights(), finished_at=event.at, state=state, promoted=promoted
        )

    def _promote(self) -> None:
        """Mark the release stable, under the lock and before the `finished` record: after
        unlocking, a killed process would leave a succeeded cutover unpromoted and nothing
        to resume. A resume that finds it marked already does not mark it again."""
        registry, version = self.c.registry, self.plan.to_version
        if registry.status(version) != "stable":
            registry.mark(
                version, "stable", f"cutover {self.plan.run_id} to {self.spec.color} baked clean"
            )

    def _result(
        self,
        result: str,
        message: str,
        weights: dict[str, int],
        *,
        finished_at: str | None,
        state: dict[str, str] | None = None,
        promoted: bool = False,
    ) -> CutoverResult:
        run = Journal.load(self.c.store, self.plan.stack, self.plan.run_id)
        return CutoverResult(
            run_id=self.plan.run_id,
            stack=self.plan.stack,
            version=self.plan.to_version,
            color=self.spec.color,
            previous_color=self.previous,
            result=result,
            message=message,
            weights=weights,
            steps=tuple(
                {"name": r.name, "kind": r.kind, "state": r.state, "error": r.error, "note": r.note}
                for r in run.steps
            ),
            state=state if state is not None else describe_layers(run),
            breach=self.breach,
            stop=self.stop.to_dict() if self.stop else None,
            promoted=promoted,
            started_at=run.started_at,
            finished_at=finished_at,
        )

    def _weights(self) -> dict[str, int]:
        """The listener's weights by colour as the cloud reports them now ({} if unreadable)."""
        from rollback.aws.elbv2 import forward_weights

        try:
            by_arn = forward_weights(self.c.apis.elbv2.listener_actions(self.topology.listener_arn))
        except RollbackError:
            return {}
        return {c: by_arn.get(arn, 0) for c, arn in self.topology.target_groups.items()}

    def _success_message(self) -> str:
        bake = f" and baked {self.spec.bake_s:g}s" if self.spec.bake_s else ""
        return (
            f"Cut {self.plan.stack} over to {self.spec.color} ({self.plan.to_version}) in steps "
            f"{','.join(map(str, self.spec.steps))}{bake}; every shift verified, every signal clean."
        )


def _planned(name: str, kind: str, summary: str, params: dict[str, Any]) -> PlannedStep:
    reason = {
        "traffic": "move users to the new colour a step at a time",
        "dns": "move clients that resolve the name along with the load balancer",
        "watch": "catch a bad release while few users see it",
    }[kind]
    return PlannedStep(name, kind, StepDescription(kind, summary, {}, reason), params)


def _has_dns(topology: Topology) -> bool:
    return bool(topology.zone_id and topology.record_name and topology.set_identifiers)


def _split(weights: dict[str, int]) -> str:
    return ", ".join(f"{c} {w}" for c, w in weights.items()) or "unreadable"


def _ev(found: Sequence[Any]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(e) for e in found]


__all__ = ["Cutover", "CutoverResult", "CutoverSpec", "is_cutover", "owed_rollback", "parse_steps"]
