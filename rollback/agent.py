"""The rollback agent: a long-running worker that takes its work from an SQS queue.

    agent = Agent(Queue(sqs, url), store, bench_for, dead_letter=Queue(sqs, dlq_url))
    agent.serve(stop_event)        # until stop_event is set (SIGTERM)

Each message is an alarm state change (EventBridge delivers it) or a job
(`rollback to --via-queue` sends it); see `rollback.agent_messages`. On an
alarm going to ALARM the agent runs `orchestrate.emergency` for every stack
whose recorded topology names the alarm, with the alarm as the reason; a job
runs `orchestrate.rollback_to`. Both are the very paths the CLI takes (lock,
plan, journal, outcome check, report, notifications).

One incident, one run (see `rollback.agent_claims`): the transition and the
incident are claimed with create-only writes in the store; the stack lock
keeps two runs apart; while a run lives a heartbeat thread keeps its message
invisible to other agents. If the agent dies, the message comes back after
its visibility timeout and the next agent finds the run by its tag in the
journal and resumes it.

What happens to a message (the mechanics live in `rollback.agent_settle`):
- done: handled (a failed rollback is handled too: it ended on a verified
  state, its result is recorded, and a retry would only start another);
- duplicate: the same event or job came twice; the first message carries it;
- ignored: an alarm going to OK or INSUFFICIENT_DATA;
- dead-lettered at once, with the reason as a message attribute: malformed,
  an alarm no stack names, a refusal (usage, integrity) that a retry cannot
  change;
- retried (left on the queue, visible again after a short delay) for a
  transient failure (lock held, cloud or store errors), and dead-lettered
  after `max_receives` receipts;
- waiting: the run to resume is locked by a dead agent's live lease (another
  host); hidden until the lease expires.
Nothing a message does stops the agent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rollback.agent_claims import (
    Claim,
    agent_name,
    claim,
    claim_in_order,
    current_release,
    find_tagged_run,
    incident_key,
    job_key,
    now_iso,
    read_result,
    transition_key,
    write_result,
)
from rollback.agent_messages import AlarmChange, AlarmIndex, Job, Malformed, parse_message
from rollback.agent_settle import AgentSettings, Handled, Settler
from rollback.agent_warm import Warmth
from rollback.errors import ExitCode, LockHeld, RollbackError

if TYPE_CHECKING:
    from rollback.agent_metrics import AgentMetrics
    from rollback.aws.sqs import Queue, Received
    from rollback.journal import Run
    from rollback.orchestrate import Outcome, Workbench
    from rollback.store import Store

log = logging.getLogger(__name__)


class LeaseWait(RollbackError):
    """The run to resume is locked by its dead agent's lease (another host): come back later."""

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message, seconds=seconds)
        self.seconds = seconds


# Exit codes after which a retry cannot help: the message is dead-lettered at once.
PERMANENT = frozenset({ExitCode.USAGE, ExitCode.INTEGRITY})


@dataclass
class Agent:
    """Receives messages one at a time and settles each; see the module docstring."""

    queue: Queue
    store: Store
    bench_for: Callable[[str], Workbench]
    settings: AgentSettings = field(default_factory=AgentSettings)
    dead_letter: Queue | None = None
    metrics: AgentMetrics | None = None
    name: str = field(default_factory=agent_name)
    only: tuple[str, ...] = ()  # stacks to answer alarms for (empty: every stack in the store)
    clock: Callable[[], float] = time.time
    warm: bool = True  # warm every stack before the first receive (see _warm_up)
    rewarm_s: float = 300.0  # a quiet queue for this long: warm every stack again
    # After warming, hide what the process holds from the cyclic collector (gc.freeze): a
    # full collection over it (about 50 ms) must not fall between an alarm and its traffic
    # step. For an agent that owns its process (`rollback agent run`); tests leave it off.
    freeze_warm: bool = False

    def __post_init__(self) -> None:
        self.index = AlarmIndex(self.store, self.only)
        self.handled: list[Handled] = []
        self.settle = Settler(self.queue, self.dead_letter, self.settings, self.metrics, self.name)
        self.warmth = Warmth(self.bench_for)

    # -- the loop ---------------------------------------------------------------------
    def serve(self, stop: threading.Event, *, max_messages: int | None = None) -> None:
        """Receive and settle messages until `stop` is set (or `max_messages` were settled).

        A message received after `stop` was set is released at once for
        another agent. Receive errors are logged and retried after a pause.
        """
        self.index.refresh()
        self._warm_up()
        log.info(
            "agent %s on %s: %d alarms of %d stacks",
            self.name,
            self.queue.url,
            len(self.index.alarms),
            len({s for stacks in self.index.by_alarm.values() for s in stacks}),
        )
        while not stop.is_set():
            if self.metrics:
                self.metrics.alive()
            try:
                messages = self.queue.receive(
                    wait_s=self.settings.wait_s, visibility_s=self.settings.visibility_s
                )
            except RollbackError as exc:
                log.error("receiving failed: %s; retrying in 5s", exc.message)
                stop.wait(5)
                continue
            for message in messages:
                if stop.is_set():
                    self.settle.release(message)
                    continue
                handled = self.handle(message)
                self.handled.append(handled)
                self._rewarm(handled)
            if max_messages is not None and len(self.handled) >= max_messages:
                self._close()
                return
            if not messages and self.warm and self._quiet():
                self.index.refresh()
                self.warmth.warm_all(self._stacks())
        self._close()
        log.info("agent %s stopped receiving; exiting", self.name)

    def _close(self) -> None:
        self.warmth.close()
        self.settle.close()

    def _warm_up(self) -> None:
        """Import the rollback path and warm every stack the agent answers for.

        The first incident should not wait for imports (about half a second;
        the stop request, the database reads and the run's result entry each
        import a module), nor for a thread to start (the heartbeat, the read
        threads), nor for what `rollback.agent_warm` keeps.
        """
        import rollback.aws.databases
        import rollback.aws.rds
        import rollback.executor
        import rollback.fleet
        import rollback.orchestrate
        import rollback.planner
        import rollback.report
        import rollback.steps.health
        import rollback.steps.mark
        import rollback.steps.preflight
        import rollback.steps.traffic
        import rollback.triggers
        import rollback.worktrees  # noqa: F401

        self.settle.beats.start()
        stacks = self._stacks()
        if stacks and self.warm:
            started = time.monotonic()
            self.warmth.start_threads()
            try:  # one engine: its imports are what every stack step pays first
                self.warmth.bench(stacks[0]).engine()
            except RollbackError as exc:  # the incident will say it again, with its context
                log.warning("warming up on %s: %s", stacks[0], exc.message)
            self.warmth.warm_all(stacks)
            log.info("warmed %d stacks in %.2fs", len(stacks), time.monotonic() - started)
        if self.freeze_warm:
            import gc

            gc.collect()  # what is garbage now is not kept frozen
            gc.freeze()

    def _stacks(self) -> list[str]:
        return sorted({s for found in self.index.by_alarm.values() for s in found})

    def _quiet(self) -> bool:
        return time.monotonic() - self.warmth.warmed_at >= self.rewarm_s

    def _rewarm(self, handled: Handled) -> None:
        """Warm again the stacks a message ran: their current release has changed."""
        if not self.warm:
            return
        for stack in {str(r.get("stack")) for r in handled.runs if r.get("stack")}:
            self.warmth.warm(stack)

    def handle(self, message: Received) -> Handled:
        """Settle one message; never raises."""
        lag = max(0.0, self.clock() - message.sent_at) if message.sent_at else 0.0
        if self.metrics:
            self.metrics.received(lag)
        try:
            subject = parse_message(message.body, message.message_id)
        except Malformed as exc:
            return self.settle.dead_letter(message, f"malformed: {exc.message}")
        log.info(
            "message %s: %s (receipt %d, %.2fs after sent)",
            message.message_id,
            subject.describe(),
            message.receive_count,
            lag,
        )
        try:
            with self.settle.heartbeat(message):
                if isinstance(subject, AlarmChange):
                    handled = self._alarm(message, subject)
                else:
                    handled = self._job(message, subject)
        except Malformed as exc:
            return self.settle.dead_letter(message, exc.message)
        except LeaseWait as exc:
            return self.settle.postpone(message, exc.message, exc.seconds)
        except RollbackError as exc:
            if ExitCode(exc.exit_code) in PERMANENT:
                return self.settle.dead_letter(message, f"refused: {exc.message}")
            return self.settle.retry(message, exc.message, self._give_up(subject))
        except Exception as exc:  # noqa: BLE001 - a bug in one message must not stop the agent
            log.debug("message %s raised", message.message_id, exc_info=True)
            why = f"internal error: {type(exc).__name__}: {exc}"
            return self.settle.retry(message, why, self._give_up(subject))
        self.settle.delete(message)
        self.settle.count(handled)
        return handled

    # -- alarms -----------------------------------------------------------------------
    def _alarm(self, message: Received, change: AlarmChange) -> Handled:
        if change.state != "ALARM":
            log.info("%s: only ALARM starts a rollback; ignored", change.describe())
            return Handled(message.message_id, "ignored", f"{change.describe()}: not ALARM")
        stacks = self.index.stacks_for(change.alarm)
        if not stacks:
            raise Malformed(
                f"alarm {change.alarm} is named by no stack's recorded topology in {self.store.url}."
            )
        incidents, stale = {}, {}
        for stack in stacks:
            found = current_release(self.store, stack)
            if found is None:
                stale[stack] = "it has no current release"
                continue
            incident, current = found
            # The lock for the run, and the plan's live read under it, now: the claims below
            # are written meanwhile.
            self.warmth.read_ahead(stack, str(current.get("version", "")))
            since = str(current.get("at", ""))
            if _after(since, change.at):
                stale[stack] = (
                    f"its current release {current.get('version')} was made current at {since}, "
                    "after the alarm went off"
                )
                continue
            incidents[stack] = incident
        transition = {
            "alarm": change.alarm,
            "state": change.state,
            "at": change.at,
            "reason": change.reason,
            "event_id": change.event_id,
            "incidents": incidents,
            "stale": stale,
            "message_id": message.message_id,
            "claimed_by": self.name,
            "claimed_at": now_iso(),
        }
        # A new transition and its incidents are claimed in one store write; a redelivered
        # transition keeps the view of its first receipt, and claims its incidents one by one.
        claims = claim_in_order(
            self.store,
            [
                (transition_key(change.key), transition),
                *(
                    (incident_key(s, i), self._incident_doc(change, s))
                    for s, i in incidents.items()
                ),
            ],
        )
        first, claimed = claims[0], {c.key: c for c in claims[1:]}
        try:
            if self._duplicate(first, message):
                why = _duplicate_of(first, change.describe())
                return Handled(message.message_id, "duplicate", why)
            runs = []
            for stack, why in dict(first.doc.get("stale", {})).items():
                log.info("%s: not rolling back %s: %s", change.describe(), stack, why)
                runs.append({"stack": stack, "result": "stale", "message": why})
            for stack, incident in dict(first.doc.get("incidents", {})).items():
                written = claimed.get(incident_key(stack, str(incident)))
                runs.append(self._incident(change, stack, str(incident), written))
            return Handled(message.message_id, "done", change.describe(), tuple(runs))
        finally:
            for stack in stacks:  # a read and a lock no run took (a duplicate, a stale stack)
                self.warmth.forget_reads(stack)

    def _incident_doc(self, change: AlarmChange, stack: str) -> dict[str, Any]:
        return {
            "stack": stack,
            "transition": change.key,
            "alarm": change.alarm,
            "at": change.at,
            "claimed_by": self.name,
            "claimed_at": now_iso(),
        }

    def _incident(
        self, change: AlarmChange, stack: str, incident: str, held: Claim | None = None
    ) -> dict[str, Any]:
        """Answer `incident` of `stack` once; `held`: its claim, when it was written with the
        transition's (else it is claimed now)."""
        if held is None:
            held = claim(
                self.store, incident_key(stack, incident), self._incident_doc(change, stack)
            )
        if held.doc.get("transition") != change.key:
            why = (
                f"incident {incident} is already answered (alarm {held.doc.get('alarm')} "
                f"at {held.doc.get('at')}, claimed by {held.doc.get('claimed_by')})"
            )
            log.info("%s: %s: %s", change.describe(), stack, why)
            return {"stack": stack, "result": "duplicate", "message": why}
        reason = (
            f"CloudWatch alarm {change.alarm} went ALARM at {change.at}"
            f"{': ' + change.reason if change.reason else ''} [incident {incident}]"
        )

        if not held.fresh:  # a run to resume (or a result) may be there: it takes its own lock
            self.warmth.forget_reads(stack)

        def start(bench: Workbench) -> Outcome:
            from rollback.orchestrate import emergency

            # The agent's passphrase checks, started when it warmed the stack (same salt, same
            # answer), and the lock taken on receipt (None: the emergency takes it).
            return emergency(
                bench,
                reason,
                actor=self.name,
                unlocks=self.warmth.unlocks,
                lock=self.warmth.lock(stack),
            )

        return self._run_once(
            stack, f"incident-{incident}", f"[incident {incident}]", start, fresh=held.fresh
        )

    # -- jobs -------------------------------------------------------------------------
    def _job(self, message: Received, job: Job) -> Handled:
        first = claim(
            self.store,
            job_key(job.id),
            {
                "job": job.to_body(),
                "message_id": message.message_id,
                "claimed_by": self.name,
                "claimed_at": now_iso(),
            },
        )
        if self._duplicate(first, message):
            return Handled(message.message_id, "duplicate", _duplicate_of(first, job.describe()))
        tag = f"[job {job.id}]"

        def start(bench: Workbench) -> Outcome:
            from rollback.orchestrate import rollback_to
            from rollback.planner import Options

            options = Options(
                accept_data_loss=job.accept_data_loss,
                force=job.force,
                reason=f"{job.reason} {tag}",
                actor=f"{job.by} via {self.name}" if job.by else self.name,
            )
            return rollback_to(
                bench, job.to, options, confirmation=f"queued job {job.id} by {job.by or '?'}"
            )

        try:
            entry = self._run_once(job.stack, f"job-{job.id}", tag, start, fresh=first.fresh)
        except RollbackError as exc:
            if ExitCode(exc.exit_code) in PERMANENT:
                # The waiting fleet learns why; the message goes to the DLQ with it.
                write_result(self.store, f"job-{job.id}", _refusal(job.stack, exc, self.name))
            raise
        return Handled(message.message_id, "done", job.describe(), (entry,))

    @staticmethod
    def _duplicate(first: Claim, message: Received) -> bool:
        """Another message (the same event sent twice) claimed this; that one carries the work.

        The claiming message itself comes back only when its agent died: it is
        not a duplicate, and it resumes the run.
        """
        return not first.fresh and first.doc.get("message_id") != message.message_id

    def _give_up(self, subject: AlarmChange | Job) -> Callable[[str], None] | None:
        """For a job: record its end when it is dead-lettered, so a waiting fleet learns it."""
        if not isinstance(subject, Job):
            return None
        job = subject

        def record(why: str) -> None:
            write_result(
                self.store,
                f"job-{job.id}",
                {
                    "stack": job.stack,
                    "ok": False,
                    "result": "dead-lettered",
                    "exit_code": int(ExitCode.FAILED),
                    "message": why,
                    "by": self.name,
                },
            )

        return record

    # -- one run per claim --------------------------------------------------------------
    def _run_once(
        self,
        stack: str,
        key: str,
        tag: str,
        start: Callable[[Workbench], Outcome],
        *,
        fresh: bool,
    ) -> dict[str, Any]:
        """The claim's run: its recorded result, the journal's run resumed, or a new run.

        A `fresh` claim (written just now) has neither result nor run: the
        store is not searched, and the rollback starts at once.
        """
        from rollback.fleet import StackRun

        done = None if fresh else read_result(self.store, key)
        if done is not None:
            log.info("%s: %s already ended (%s)", stack, key, done.get("result"))
            return done
        bench = self.warmth.bench(stack)
        run = None if fresh else find_tagged_run(self.store, stack, tag)
        began = time.monotonic()
        if run is not None and run.finished:
            entry = _of_run(run, self.name)
        else:
            if run is not None:
                log.warning(
                    "%s: run %s of %s was left unfinished; resuming it", stack, run.run_id, key
                )
                outcome = self._resume(bench, run)
            else:
                outcome = start(bench)
            entry = StackRun.of_outcome(stack, outcome, time.monotonic() - began).to_dict()
            entry.pop("outcome", None)
            entry.update(by=self.name, resumed=run is not None)
            if self.metrics and outcome.result is not None:
                self.metrics.ran(
                    entry["result"],
                    outcome.result.duration_s,
                    outcome.result.time_to_traffic_restored_s,
                )
        write_result(self.store, key, entry)
        log.info(
            "%s: %s %s (run %s)%s",
            stack,
            key,
            entry["result"],
            entry.get("run_id"),
            f": {entry['message']}" if not entry.get("ok") else "",
        )
        return entry

    def _resume(self, bench: Workbench, run: Run) -> Outcome:
        """Resume `run`; an expired lock left by this very run is taken over."""
        from rollback.orchestrate import resume
        from rollback.store.lock import read_lock

        held = read_lock(self.store, run.stack)
        ours = held is not None and held.run_id == run.run_id
        expired = ours and held is not None and held.expired(self.clock())
        try:
            return resume(bench, run.run_id, actor=self.name, break_lock=expired)
        except LockHeld:
            held = read_lock(self.store, run.stack)
            if held is None or held.run_id != run.run_id:
                raise
            # The dead agent was on another host: its lease must run out first.
            raise LeaseWait(
                f"run {run.run_id} was left by {held.describe()}; its lease runs until "
                f"{held.expires_at}, then this agent resumes it.",
                seconds=max(1.0, held.expires_epoch() - self.clock()),
            ) from None


def _duplicate_of(first: Claim, what: str) -> str:
    sentence = (
        f"{what}: a duplicate of message {first.doc.get('message_id')}, "
        f"claimed by {first.doc.get('claimed_by')} at {first.doc.get('claimed_at')}"
    )
    log.info("%s", sentence)
    return sentence


def _after(first: str, second: str) -> bool:
    """Whether timestamp `first` is later than `second` (False when either is unreadable)."""
    try:
        return datetime.fromisoformat(first) > datetime.fromisoformat(second)
    except (TypeError, ValueError):
        return False


def _of_run(run: Run, by: str) -> dict[str, Any]:
    """A result entry for a run the journal shows finished (its agent died before recording it)."""
    return {
        "stack": run.stack,
        "ok": run.result == "succeeded",
        "result": run.result,
        "exit_code": 0 if run.result == "succeeded" else 1,
        "message": f"run {run.run_id} ended {run.result}",
        "run_id": run.run_id,
        "from_version": run.plan.from_version,
        "to_version": run.plan.to_version,
        "time_to_traffic_restored_s": run.time_to_traffic_restored_s,
        "duration_s": run.duration_s,
        "by": by,
        "resumed": False,
    }


def _refusal(stack: str, exc: RollbackError, by: str) -> dict[str, Any]:
    from rollback.fleet import StackRun

    entry = StackRun.of_error(stack, exc, 0.0).to_dict()
    entry.pop("outcome", None)
    entry["by"] = by
    return entry
