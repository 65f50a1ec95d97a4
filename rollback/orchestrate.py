"""Orchestration: turn planned steps into Step objects, and run a rollback end to end.

`Workbench` holds what every step needs (clients, store, registry, engine,
timing) and builds steps from the plan's JSON params, so a run resumed in a
new process rebuilds exactly the same steps from its journal. `rollback_to`
is the one path every entry point takes (`rollback to`, `emergency`, `watch`,
`cutover --rollback-on-breach`, the fleet and the demo): plan, execute,
store the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollback.errors import UsageError
from rollback.models import Evidence, Topology
from rollback.plan import Plan, PlannedStep, new_run_id
from rollback.planner import LiveView, Options, Planner, read_live
from rollback.store import BlobRef
from rollback.waiting import Timing

if TYPE_CHECKING:
    from rollback.aws.session import Clients
    from rollback.engine import StackEngine
    from rollback.executor import Executor, OnEvent, RunResult, ShouldStop
    from rollback.journal import Run
    from rollback.notify import Notifier
    from rollback.outcome import OutcomeCheck, OutcomeReport
    from rollback.ownership import TrafficOwner
    from rollback.preflight import Unlocks
    from rollback.releases import Registry, Release
    from rollback.steps import Step
    from rollback.store import Store
    from rollback.store.lock import HeldLock


@dataclass
class Workbench:
    """Everything steps are built from, for one stack. Built by the CLI factory."""

    clients: Clients
    store: Store
    registry: Registry
    engine: Callable[[], StackEngine]  # built on first use: only the stack step needs it
    timing: Timing = field(default_factory=Timing)
    notifiers: Sequence[Notifier] = ()
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    health_deadline_s: float = 60.0
    # The stack engine's name without building it (preflight); None: ask the built engine.
    engine_kind: Callable[[], str] | None = None
    # The live read of the plan being executed, when it was made under the run's lock
    # (rollback_to sets it for the steps of one execute): the traffic step takes it.
    planned_read: tuple[Topology, LiveView] | None = None

    @property
    def stack_name(self) -> str:
        return self.registry.stack.split("/", 1)[1]

    def planner(self) -> Planner:
        from rollback.aws.elbv2 import LoadBalancing
        from rollback.aws.rds import Rds

        # The RDS client is made on first use, in the planner's read thread.
        elbv2, rds = LoadBalancing(self.clients("elbv2")), Rds(self.clients.lazy("rds"))
        return Planner(
            self.registry,
            lambda topo, target: read_live(elbv2, rds, topo, target),
            health_deadline_s=self.health_deadline_s,
        )

    def build(self, planned: PlannedStep) -> Step:
        """The Step for a planned step; raises UsageError for an unknown kind."""
        p = planned.params
        t = self.timing
        kind = planned.kind
        db_kind = p.get("db_kind", "instance")  # plans journalled before Aurora lack it
        if kind == "preflight":
            from rollback.aws.rds import Rds
            from rollback.steps.preflight import PreflightStep

            return PreflightStep(
                self.store,
                list(p["blobs"]),
                Rds(self.clients("rds")),
                p.get("snapshot_id"),
                db_kind=db_kind,
            )
        if kind == "traffic":
            from rollback.aws.elbv2 import LoadBalancing
            from rollback.steps.traffic import TrafficStep

            step = TrafficStep(
                LoadBalancing(self.clients("elbv2")),
                Topology.from_dict(p["topology"]),
                p["weights"],
                t,
            )
            read, self.planned_read = self.planned_read, None  # one read serves one step
            if read is not None and read[0] == step.topology:
                view = read[1]
                step.take_reads(view.actions, view.health, view.read_at)
            return step
        if kind == "dns":
            from rollback.aws.route53 import Dns
            from rollback.steps.dns import DnsStep

            return DnsStep(
                Dns(self.clients.lazy("route53")),
                Topology.from_dict(p["topology"]),
                p["weights"],
                t,
            )
        if kind == "db-snapshot":
            from rollback.aws.rds import Rds
            from rollback.steps.db_snapshot import DbSnapshotStep

            return DbSnapshotStep(
                Rds(self.clients("rds")),
                p["instance_id"],
                p["run_id"],
                t,
                db_kind=db_kind,
            )
        if kind == "db-restore":
            from rollback.aws.rds import Rds
            from rollback.datarows import InstanceRows
            from rollback.planner import DATABASE_URL_ENV
            from rollback.steps.db_restore import DbRestoreStep

            return DbRestoreStep(
                Rds(self.clients("rds")),
                p["instance_id"],
                p["snapshot_id"],
                p["run_id"],
                bool(p["accept_data_loss"]),
                p.get("snapshot_taken_at"),
                None,
                t,
                rows=InstanceRows(DATABASE_URL_ENV, p["instance_id"], self.environ),
                db_kind=db_kind,
            )
        if kind == "migrate":
            from rollback.steps.migrate import MigrateStep

            return MigrateStep(
                p["command"],
                p["revision"],
                p["database_url_env"],
                None,
                float(p.get("timeout_s", 1800)),
                t,
                upgrade_template=p.get("upgrade_command"),
                environ=self.environ,
            )
        if kind == "integrity":
            from rollback.steps.integrity import IntegrityStep

            return IntegrityStep(p["database_url_env"], list(p["checks"]), t, environ=self.environ)
        if kind == "health":
            from rollback.aws.cloudwatch import Alarms
            from rollback.steps.health import HealthStep

            return HealthStep(
                list(p["urls"]),
                Alarms(self.clients.lazy("cloudwatch")),
                list(p["alarms"]),
                deadline_s=float(p.get("deadline_s", 60.0)),
                timing=t,
            )
        if kind == "artifact":
            from rollback.aws.s3 import Objects
            from rollback.steps.artifact import ArtifactStep

            ref = BlobRef(p["sha256"], int(p["size"]))
            return ArtifactStep(
                Objects(self.clients.lazy("s3")), self.store, ref, p["bucket"], p["key"], t
            )
        if kind == "smoke":
            from rollback.steps.smoke import SmokeStep, colour_env

            env = colour_env(Topology.from_dict(p["topology"]), p["color"])
            return SmokeStep(p["command"], env, timing=t)
        if kind == "stack":
            from rollback.engine.lazy import engine_on_first_use
            from rollback.steps.stack import StackStep

            # Built when the step first runs: a traffic-first run moves users before paying for it.
            return StackStep(
                engine_on_first_use(self.engine),
                self.registry,
                p["version"],
                self.stack_name,
                p.get("previous"),
                owner=self.owner(),
                set_by=f"the stack step of a rollback to {p['version']}",
            )
        if kind == "mark":
            from rollback.steps.mark import MarkStep

            return MarkStep(self.registry, p["bad"], p["current"], p["reason"])
        raise UsageError(
            f"the plan names a step kind {kind!r} this toolkit does not know; upgrade rollback."
        )

    def health_check(self, colour: str) -> bool:
        """True when `colour` can take traffic back: routable targets, health URLs and alarms pass.

        One pass, short deadline: compensation must not wait long on a colour
        that is down.
        """
        from rollback.aws.elbv2 import LoadBalancing

        current = self.registry.current()
        if current is None:
            return False
        topology = self.registry.topology(self.registry.load(current)[0])
        arn = topology.target_groups.get(colour)
        if not arn or not any(
            t.routable for t in LoadBalancing(self.clients("elbv2")).target_health(arn)
        ):
            return False
        return all(e.ok for e in self.colour_health(topology, colour, deadline_s=5.0))

    def owner(self) -> TrafficOwner:
        """The toolkit's hold on this stack's traffic (rollback/ownership.py)."""
        from rollback.ownership import TrafficOwner

        return TrafficOwner(self.clients, self.store, self.registry.stack, self.timing)

    def executor(
        self,
        on_event: OnEvent | None = None,
        should_stop: ShouldStop = lambda: False,
        *,
        report: bool = False,
    ) -> Executor:
        """`report`: the run's report is written before its lock is released (`Executor.report`),
        and an emergency's stop request cleared (`finished_run`)."""
        from rollback.executor import Executor

        def store_report(run_id: str) -> object:
            return finished_run(self.store, self.registry.stack, run_id)

        return Executor(
            self.store,
            self.registry.stack,
            self.build,
            on_event=on_event,
            health_check=self.health_check,
            should_stop=should_stop,
            notifiers=self.notifiers,
            observe=self.observe_traffic,
            outcome=self.outcome,
            remember=lambda weights, run_id: self.owner().remember(weights, f"run {run_id}"),
            report=store_report if report else None,
        )

    def outcome(self, plan: Plan, skipped: frozenset[str] = frozenset()) -> OutcomeReport:
        """The end-of-run proof for a rollback plan: read from the cloud, never from the plan."""
        from rollback.outcome import Expected

        steps = {s.kind: s for s in plan.steps if s.name not in skipped}
        artifact = steps.get("artifact")
        expected = Expected(
            version=plan.to_version,
            artifact=(
                (artifact.params["bucket"], artifact.params["key"], artifact.params["sha256"])
                if artifact
                else None
            ),
            stack="stack" in steps,
            current=plan.to_version if "mark" in steps else None,
        )
        return self.outcome_check(self._plan_topology(plan)).check(expected)

    def outcome_check(self, topology: Topology) -> OutcomeCheck:
        from rollback.outcome import OutcomeCheck

        return OutcomeCheck(
            self.clients,
            topology,
            health=lambda colour: self.colour_health(topology, colour),
            stack=self._stack_evidence,
            current=self.registry.current,
        )

    def _plan_topology(self, plan: Plan) -> Topology:
        for step in plan.steps:
            if "topology" in step.params:
                return Topology.from_dict(step.params["topology"])
        return self.registry.topology(self.registry.show(plan.to_version).release)

    def colour_health(
        self, topology: Topology, colour: str, *, deadline_s: float = 15.0
    ) -> list[Evidence]:
        """One passing round of the colour's health URLs and alarms, within a short deadline.

        The one health probe of a colour outside the health step: the
        outcome's evidence and `health_check`'s answer (abort) both come from it.
        """
        from rollback.aws.cloudwatch import Alarms
        from rollback.steps import evidence
        from rollback.steps.health import HealthStep

        urls = topology.health_urls.get(colour, [])
        alarms = topology.alarms.get(colour, [])
        if not urls and not alarms:
            return [
                evidence(
                    f"health of {colour}",
                    {"colour": colour},
                    True,
                    f"the topology names no health URL or alarm for {colour}; its health is not proven",
                )
            ]
        probe = HealthStep(
            urls,
            Alarms(self.clients("cloudwatch")) if alarms else None,
            alarms,
            passes=1,
            deadline_s=min(self.health_deadline_s, deadline_s),
            interval_s=1.0,
            timing=self.timing,
        )
        return probe.verify()

    def _stack_evidence(self, version: str) -> Evidence:
        from rollback import stacks
        from rollback.steps import evidence

        release = self.registry.show(version).release
        actual = self.engine().export(self.stack_name)
        differences = stacks.compare_checkpoints(
            stacks.release_checkpoint(self.store, release), actual
        )
        return evidence(
            f"{self.engine().name}.export",
            {"version": version, "differences": [vars(d) for d in differences][:20]},
            not differences,
            ""
            if not differences
            else f"the stack's state differs from release {version} in {len(differences)} place(s)",
        )

    def observe_traffic(self) -> dict[str, str]:
        """Where traffic is now, read from the listener and Route53 (for a failed run's report)."""
        from rollback.steps import now_iso

        current = self.registry.current()
        if current is None:
            return {}
        topology = self.registry.topology(self.registry.show(current).release)
        text = self.owner().read(topology).words()
        return {"traffic (read back)": f"{text}, as the cloud reports it at {now_iso()}."}


@dataclass(frozen=True)
class Outcome:
    """A finished (or refused-as-nothing-to-do) rollback: the plan, the result, the report keys."""

    plan: Plan
    result: RunResult | None
    report_keys: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "plan": self.plan.to_dict(),
            "result": self.result.to_dict() if self.result else None,
            "report": list(self.report_keys),
        }


def rollback_to(
    bench: Workbench,
    target: str,
    options: Options,
    *,
    skips: dict[str, str] | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    confirmation: str | None = None,
    break_lock: bool = False,
    on_event: OnEvent | None = None,
    should_stop: ShouldStop = lambda: False,
    unlocks: Unlocks | None = None,
    lock: HeldLock | None = None,
) -> Outcome:
    """Plan a rollback to `target`, execute it and store its report.

    Already at `target`: returns an Outcome with no result (nothing changed).
    `confirm` sees the plan first; a False answer raises UsageError before
    anything changes; preflight then checks everything the steps need
    (`unlocks`: passphrase checks `preflight.begin` started earlier). Raises
    LockHeld when another run holds the stack. `lock`: the stack lock the
    caller took for this run (its id is the run's), so the plan's live read
    is made under it and the traffic step takes that read instead of reading
    the listener again; the caller releases it. Without one, the lock is
    taken as the live read starts, unless `confirmation` is "prompt".
    """
    from rollback.preflight import begin, preflight

    if unlocks is None:  # the passphrase check runs while the plan is made
        unlocks = begin(bench.registry, target, bench.environ)
    planner = bench.planner()
    run_id = lock.run_id if lock is not None else new_run_id(planner.now())
    taken: list[HeldLock] = []
    if lock is None and confirmation != "prompt":
        # No one confirms in between (a person at a prompt must not hold the stack): the
        # lock is taken as the plan's live read starts, after the planner's refusals from
        # the store alone, so the traffic step acts on that read instead of reading again.
        planner.live = _locking(planner.live, bench, run_id, break_lock, taken)
    try:
        plan = planner.plan(target, options, run_id=run_id)
        lock = lock or (taken[0] if taken else None)
        if not plan.steps:
            return Outcome(plan, None)
        if any(s.kind == "db-restore" for s in plan.steps) and not options.accept_data_loss:
            window = plan.data_loss_window_s
            lost = (
                f"{window / 60:.0f} minutes of writes"
                if window is not None
                else "the writes since the release's snapshot"
            )
            raise UsageError(
                f"this rollback restores the database and loses {lost}; review `rollback plan` and pass --accept-data-loss to proceed."
            )
        if confirm is not None and not confirm(plan):
            raise UsageError("the rollback was not confirmed; nothing was changed.")
        preflight(bench, plan, unlocks=unlocks)  # all every step needs, before the journal
        bench.planned_read = _read_under(lock, planner.read)
        try:
            result = bench.executor(on_event, should_stop, report=True).execute(
                plan,
                actor=options.actor,
                skips=skips or {},
                break_lock=break_lock,
                confirmation=confirmation,
                options={
                    "accept_data_loss": options.accept_data_loss,
                    "force": options.force,
                    "emergency": options.emergency,
                },
                lock=lock,
            )
        finally:
            bench.planned_read = None
        keys = report_keys(bench.registry.stack, plan.run_id)  # written by the run's executor
        return Outcome(plan, result, tuple(_located(bench.store, k) for k in keys))
    finally:
        for held in taken:
            held.release()


def _locking(
    read: Callable[[Topology, Release], LiveView],
    bench: Workbench,
    run_id: str,
    break_lock: bool,
    taken: list[HeldLock],
) -> Callable[[Topology, Release], LiveView]:
    """`read`, preceded by taking the stack lock for `run_id` (appended to `taken`)."""

    def read_under_lock(topology: Topology, release: Release) -> LiveView:
        from rollback.store.lock import HeldLock

        stack = bench.registry.stack
        taken.append(HeldLock(bench.store, stack, run_id, break_expired=break_lock).acquire())
        return read(topology, release)

    return read_under_lock


def _read_under(
    lock: HeldLock | None, read: tuple[Topology, LiveView] | None
) -> tuple[Topology, LiveView] | None:
    """The plan's live read when it started after `lock` was taken (else None: read again)."""
    if lock is None or lock.taken_at is None or read is None:
        return None
    return read if read[1].read_at >= lock.taken_at else None


def resume(
    bench: Workbench,
    run_id: str,
    *,
    actor: str,
    on_event: OnEvent | None = None,
    break_lock: bool = False,
) -> Outcome:
    """Finish a run whose process died; re-verifies the step in flight first.

    `break_lock` takes over an expired lease (the agent passes it only for a
    lock its own dead run left behind).
    """
    from rollback.executor import aborting
    from rollback.journal import Journal
    from rollback.preflight import preflight

    before = Journal.load(bench.store, bench.registry.stack, run_id)
    # A run that succeeded or was aborted is refused by the executor, with its own sentence;
    # an abort in flight is finished (it applies no step: nothing to preflight).
    if (not before.finished or before.result in ("failed", "stopped")) and not aborting(before):
        done = {s.name for s in before.steps if s.state in ("verified", "skipped")}
        todo = [s for s in before.plan.steps if s.name not in done]
        preflight(bench, before.plan, todo, planned_now=False)
    result = bench.executor(on_event, report=True).resume(
        run_id, actor=actor, break_lock=break_lock
    )
    plan = Journal.load(bench.store, bench.registry.stack, run_id).plan
    keys = report_keys(bench.registry.stack, run_id)
    return Outcome(plan, result, tuple(_located(bench.store, k) for k in keys))


def abort(bench: Workbench, run_id: str, *, actor: str, break_lock: bool = False) -> Outcome:
    """Undo a failed, stopped or dead rollback on purpose, only towards healthy colours."""
    from rollback.journal import Journal

    result = bench.executor(report=True).abort(run_id, actor=actor, break_lock=break_lock)
    plan = Journal.load(bench.store, bench.registry.stack, run_id).plan
    keys = report_keys(bench.registry.stack, run_id)
    return Outcome(plan, result, tuple(_located(bench.store, k) for k in keys))


def settle_left_lock(store: Store, stack: str, run_id: str) -> tuple[Run | None, str | None]:
    """Before `rollback resume RUN`: the run's journal (None when it has none) and the
    sentence saying its left lock was cleared when that lock is all there is to settle
    (None: resume the run, whose journal is then there).

    A run killed before its journal, or after `finished` but before unlocking, left only
    a lock: it is cleared (and a finished run's report written) instead of resuming
    nothing. A failed or stopped rollback, or a cutover that owes its rollback, is carried
    forward all the same: what it runs takes such a lock over. Raises NotFound, naming the
    run, when it has no journal and left no lock.
    """
    from rollback.cutover import is_cutover, owed_rollback
    from rollback.journal import Journal, run_key
    from rollback.store.lock import clear_left_lock

    run = (
        Journal.load(store, stack, run_id)
        if store.has_doc(run_key(stack, run_id, "run.json"))
        else None
    )
    resumable = run is not None and (
        (not is_cutover(run) and run.result in ("failed", "stopped"))
        or owed_rollback(store, run) is not None
    )
    cleared = None if resumable else clear_left_lock(store, stack, run_id)
    if cleared is not None and run is not None:
        finished_run(store, stack, run_id)  # the finished run died before writing its report
    if cleared is None and run is None:
        run = Journal.load(store, stack, run_id)  # NotFound, naming the run
    return run, cleared


def finished_run(store: Store, stack: str, run_id: str) -> tuple[str, str]:
    """What follows a run's `finished` record while its lock is still held: the run's report
    is written and, for an emergency, its stop request is cleared; returns the report's keys.

    A clean `emergency` clears its request as it ends; one killed on the way is finished by
    `rollback resume`, which must clear it too, or the request outlives the incident and
    every later cutover is refused. A request made after the run started is a newer
    emergency's and stays. `rollback resume` calls this also for a run that died between
    its `finished` record and unlocking.
    """
    from rollback.journal import Journal
    from rollback.report import store_report  # after the run: not on the way to traffic
    from rollback.triggers import clear_stop, stop_requested

    keys = store_report(store, stack, run_id)
    run = Journal.load(store, stack, run_id)
    if run.options.get("emergency"):
        pending = stop_requested(store, stack)
        if pending is not None and str(pending.get("at", "")) <= run.started_at:
            clear_stop(store, stack)
    return keys


def report_keys(stack: str, run_id: str) -> tuple[str, str]:
    """Where the run wrote its report (md, json): see `Executor.report`."""
    from rollback.report import report_keys  # imported by then: the run wrote its report

    return report_keys(stack, run_id)


def _located(store: Store, key: str) -> str:
    """Where a stored document is, for people: a path or an s3:// URL."""
    return f"{store.url.rstrip('/')}/{key}"


def emergency(
    bench: Workbench,
    reason: str,
    *,
    actor: str,
    break_lock: bool = False,
    on_event: OnEvent | None = None,
    lock_wait_s: float = 120.0,
    unlocks: Unlocks | None = None,
    lock: HeldLock | None = None,
) -> Outcome:
    """Stop what is deploying, then roll back to last-stable at once, traffic first.

    A cutover in progress sees the stop request at its next check and halts on
    a verified state; with the pulumi engine an update in progress is
    cancelled. The request is cleared when the rollback ends.

    The stack lock is taken before the plan (waiting up to `lock_wait_s` for
    the run we stopped to release it; with `break_lock`, at once), so the
    plan's read of the listener is made under it and is the read the traffic
    step acts on: stop, lock, plan, preflight, journal, traffic. `lock`: the
    stack lock already taken for this run (the agent takes it on receipt);
    released here either way.
    """
    from rollback.errors import LockHeld
    from rollback.triggers import clear_stop, request_stop

    stack = bench.registry.stack
    try:
        request_stop(bench.store, stack, reason, actor)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    held = lock
    keep_stop = False
    try:
        try:
            _cancel_update(bench)
            if held is None:
                try:
                    held = _lock_when_free(bench, new_run_id(), break_lock, lock_wait_s)
                except LockHeld as exc:
                    keep_stop = bool(exc.fields.get("dead"))  # its resume must see the stop
                    raise
            return rollback_to(
                bench,
                "last-stable",
                Options(reason=reason, actor=actor, emergency=True),
                confirmation="emergency",
                break_lock=break_lock,
                on_event=on_event,
                unlocks=unlocks,
                lock=held,
            )
        finally:
            if held is not None:
                held.release()
    finally:
        if not keep_stop:
            clear_stop(bench.store, stack)


def _cancel_update(bench: Workbench) -> None:
    """Cancel a stack update in progress (the pulumi engine only; nothing to cancel is fine)."""
    import logging

    from rollback.errors import ConfigError, StackBusy
    from rollback.preflight import engine_kind

    try:  # only the pulumi engine has updates to cancel: do not build another before traffic
        pulumi = engine_kind(bench) == "pulumi"
    except ConfigError:
        pulumi = False  # no engine fits: preflight says so, before anything changes
    cancel = getattr(bench.engine(), "cancel", None) if pulumi else None
    if cancel is None:
        return
    try:
        cancel(bench.stack_name)
    except (StackBusy, ConfigError):
        # An update still runs, or its backend cannot tell: never start a second beside it.
        raise
    except Exception as exc:  # noqa: BLE001 - nothing to cancel is the common case
        logging.getLogger(__name__).info("no stack update to cancel: %s", exc)


def _lock_when_free(bench: Workbench, run_id: str, break_lock: bool, wait_s: float) -> HeldLock:
    """The stack lock for `run_id`, once the run we stopped released it (CheckFailed after
    `wait_s`). With `break_lock`: at once, an expired lease taken over (LockHeld for a live one).
    A holder whose process is gone from this host never releases it: LockHeld at once, with
    `dead` set (the caller keeps the stop request for that run's resume)."""
    from rollback.errors import LockHeld
    from rollback.store.lock import HeldLock, LockInfo
    from rollback.waiting import poll

    stack = bench.registry.stack
    if break_lock:
        return HeldLock(bench.store, stack, run_id, break_expired=True).acquire()

    def take() -> HeldLock | None:
        try:
            return HeldLock(bench.store, stack, run_id).acquire()
        except LockHeld as exc:
            if not exc.fields.get("dead"):
                return None
            held = LockInfo.from_dict(exc.fields["holder"])
        # Its process is gone (killed): it will never see the stop nor release the lock.
        raise LockHeld(
            f"stack {stack} is locked by {held.describe()}, whose process is gone before the run "
            f"finished. The emergency stop request stays: `rollback resume {held.run_id}` sees it "
            "and stops that run on a verified state (a cutover sends users back to the colour "
            "they came from); then run `rollback emergency` again.",
            stack=stack,
            holder=held.to_dict(),
            dead=True,
        )

    # The cutover we stopped releases the lock once it is on a verified state.
    lock: HeldLock = poll(
        f"the lock on {stack} to be released by the run we stopped",
        take,
        timeout=wait_s,
        timing=bench.timing,
    )
    return lock
