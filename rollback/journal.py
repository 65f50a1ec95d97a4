"""The run journal: what a rollback did, written to the store as it happens.

Each run lives under `runs/<project>/<stack>/<run-id>/`:

    run.json               the plan, who, when, why and the options (skips with
                           who and why); written once
    events/<seq:06d>.json  one document per transition, written once each, so
                           nothing is rewritten and S3 needs no append

Step states move `pending -> applying -> applied -> verified`, or on a
failure `failed`, and then, for steps done so far, `compensating ->
compensated` (or `compensation-skipped` / `compensation-failed` with the
reason). `pending` is implied by the plan and not written. Run-level events:
started, resumed, confirmed, skipped, traffic-restored, notified, stopped,
finished (with the result). The executor appends a record *before* it acts
and *after* it verifies, so a process that dies leaves a journal that says
which step was in flight; `load` folds the events back into a `Run`. Records
that precede any change may be staged (`stage`, `RunLog.hold`) and written
together, in order, right before the change (`write_staged`).

The records are hash-chained, `run.json` being the chain's root: every
document carries `sha256`, the digest of its own canonical JSON without that
field, and every event carries `prev`, the sha256 of the exact bytes of the
record before it. `load` checks the whole chain, so an edited record (even one
that stays valid JSON), a removed or a reordered one is an IntegrityError
(exit 4) naming the run and the record, for every command that reads the run.
The chain has no secret: it proves the journal is as written, against
mistakes and casual edits, not against someone who rewrites every record
after the one they changed. Only a removed *last* record cannot be told from a
process that died before writing it; that is the crash a resume is built for
(the step in flight is re-verified against the cloud). Schema-1 runs, written
before the chain, are read as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rollback.errors import AlreadyExists, IntegrityError, NotFound, UsageError
from rollback.models import Evidence
from rollback.notify import Notification, Notifier, NotifyOutcome, notify_all
from rollback.plan import Plan
from rollback.store import Store

RUN_SCHEMA = 2  # 2: hash-chained records; 1 (unchained) is still read
READ_SCHEMAS = (1, 2)

STEP_STATES = (
    "pending",
    "applying",
    "applied",
    "verified",
    "failed",
    "compensating",
    "compensated",
    "compensation-skipped",
    "compensation-failed",
    "skipped",
)
RUN_EVENTS = (
    "started",
    "resumed",
    "aborting",
    "outcome",
    "confirmed",
    "skipped",
    "traffic-restored",
    "notified",
    "stopped",
    "finished",
    "step",
)
RESULTS = ("succeeded", "failed", "stopped", "aborted")
IN_FLIGHT = ("applying", "applied", "compensating")

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, the journal's one time format."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one journal timestamp to another (None when either is missing)."""
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def run_prefix(stack: str) -> str:
    """`runs/<project>/<stack>/` for a PROJECT/STACK name; raises UsageError otherwise."""
    parts = stack.split("/")
    if len(parts) != 2 or not all(parts):
        raise UsageError(
            f"stack {stack!r} is not PROJECT/STACK; pass --stack webapp/prod, for example."
        )
    return f"runs/{stack}/"


def run_key(stack: str, run_id: str, name: str) -> str:
    """The key of a document of one run, e.g. `run.json` or `report.md`."""
    return f"{run_prefix(stack)}{run_id}/{name}"


def evidence_from_dict(data: dict[str, Any]) -> Evidence:
    return Evidence(
        api=str(data["api"]),
        at=str(data["at"]),
        observed=dict(data.get("observed") or {}),
        ok=bool(data["ok"]),
        note=str(data.get("note", "")),
    )


@dataclass(frozen=True)
class Event:
    """One journal record. `type` is a run event; step transitions have type `step`.

    `data` holds what the transition carries: for `applied` the step's
    `changed`, `prior` and `detail`; for `verified`/`failed` the `evidence`
    and the `error` sentence; for `finished` the `result` and the final
    `state` per layer; for `skipped` the `reason` and `by`.
    """

    seq: int
    type: str
    at: str
    step: str | None = None
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            seq=int(data["seq"]),
            type=str(data["type"]),
            at=str(data["at"]),
            step=data.get("step"),
            state=data.get("state"),
            data=dict(data.get("data") or {}),
        )


@dataclass(frozen=True)
class StepRecord:
    """A step's state as the journal tells it, folded from its events."""

    name: str
    kind: str
    state: str = "pending"
    changed: bool = False
    prior: dict[str, Any] | None = None  # None: apply never returned (or not recorded)
    detail: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    error: str = ""
    note: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    skip_reason: str = ""
    skipped_by: str = ""

    @property
    def duration_s(self) -> float | None:
        return seconds_between(self.started_at, self.ended_at)


@dataclass(frozen=True)
class Run:
    """A run rebuilt from the store: its plan, options and every event in order."""

    run_id: str
    stack: str
    plan: Plan
    actor: str
    started_at: str
    reason: str
    options: dict[str, Any]
    events: tuple[Event, ...]
    steps: tuple[StepRecord, ...]

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise NotFound(f"run {self.run_id} has no step {name!r}.", step=name)

    def last(self, event_type: str) -> Event | None:
        """The latest event of `event_type`, if any."""
        for event in reversed(self.events):
            if event.type == event_type:
                return event
        return None

    @property
    def finished(self) -> bool:
        """Whether the run's last word is `finished` (a failed run resumed is running again)."""
        for event in reversed(self.events):
            if event.type in ("finished", "resumed"):
                return event.type == "finished"
        return False

    @property
    def result(self) -> str | None:
        """succeeded | failed | stopped | aborted, or None while the run is unfinished."""
        event = self.last("finished")
        return str(event.data["result"]) if event and self.finished else None

    @property
    def finished_at(self) -> str | None:
        event = self.last("finished")
        return event.at if event and self.finished else None

    @property
    def traffic_restored_at(self) -> str | None:
        for event in self.events:
            if event.type == "traffic-restored":
                return event.at
        return None

    @property
    def in_flight(self) -> StepRecord | None:
        """The step a dead process left between `applying` and `verified`, if any."""
        for record in self.steps:
            if record.state in IN_FLIGHT:
                return record
        return None

    @property
    def duration_s(self) -> float | None:
        return seconds_between(self.started_at, self.finished_at)

    @property
    def time_to_traffic_restored_s(self) -> float | None:
        return seconds_between(self.started_at, self.traffic_restored_at)

    @property
    def skips(self) -> dict[str, dict[str, str]]:
        """Skipped step name -> {"reason", "by"}, as recorded at the start."""
        return {k: dict(v) for k, v in dict(self.options.get("skips") or {}).items()}


@dataclass(frozen=True)
class RunSummary:
    """One line of `rollback history`."""

    run_id: str
    actor: str
    started_at: str
    from_version: str
    to_version: str
    result: str  # succeeded | failed | stopped | unfinished
    duration_s: float | None
    time_to_traffic_restored_s: float | None
    reason: str

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        return cls(
            run_id=run.run_id,
            actor=run.actor,
            started_at=run.started_at,
            from_version=run.plan.from_version,
            to_version=run.plan.to_version,
            result=run.result or "unfinished",
            duration_s=run.duration_s,
            time_to_traffic_restored_s=run.time_to_traffic_restored_s,
            reason=run.reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """Appends a run's events to the store, each as a new create-only document.

    One writer per run (the stack lock guarantees it); a second writer racing
    for the same sequence number gets AlreadyExists from the store instead of
    overwriting a record.
    """

    def __init__(
        self,
        store: Store,
        stack: str,
        run_id: str,
        *,
        now: Now = utc_now,
        next_seq: int = 1,
        head: str | None = None,
    ) -> None:
        run_prefix(stack)
        self.store = store
        self.stack = stack
        self.run_id = run_id
        self.now = now
        self.next_seq = next_seq
        self.head = head  # sha256 of the last record's bytes; None: an unchained (schema 1) run
        self._staged: list[tuple[str, bytes]] = []  # records chained, not yet written
        self.root: dict[str, Any] | None = None  # run.json, when this process created the run
        self.events: list[Event] = []  # the events this process recorded (staged or written)

    @classmethod
    def create(
        cls,
        store: Store,
        plan: Plan,
        *,
        actor: str,
        options: dict[str, Any],
        now: Now = utc_now,
        hold: bool = False,
    ) -> Journal:
        """Write `run.json` for a new run; raises UsageError if the run id is taken.

        `hold`: stage it instead, with the events that follow; `write_staged`
        writes them together (and raises that UsageError then).
        """
        journal = cls(store, plan.stack, plan.run_id, now=now)
        doc = {
            "schema": RUN_SCHEMA,
            "run_id": plan.run_id,
            "stack": plan.stack,
            "plan": plan.to_dict(),
            "actor": actor,
            "started_at": iso(now()),
            "reason": plan.reason,
            "options": options,
        }
        body = _sealed(doc)
        journal.root = doc
        journal._staged.append((journal.key("run.json"), body))
        journal.head = _digest(body)
        if not hold:
            journal.write_staged()
        return journal

    @classmethod
    def reopen(cls, store: Store, stack: str, run_id: str, *, now: Now = utc_now) -> Journal:
        """A journal that appends after the last recorded event of an existing run."""
        events = _event_keys(store, stack, run_id)
        try:
            root = store.get_doc(run_key(stack, run_id, "run.json"))
        except NotFound:
            raise NotFound(
                f"run {run_id} of {stack} is not in {store.url}; `rollback history` lists the runs.",
                run_id=run_id,
            ) from None
        next_seq = (int(events[-1].rsplit("/", 1)[1].split(".")[0]) + 1) if events else 1
        chained = _schema_of(root, run_id) >= 2
        last = store.get_doc(events[-1]) if events else root
        head = _digest(last) if chained else None
        return cls(store, stack, run_id, now=now, next_seq=next_seq, head=head)

    def key(self, name: str) -> str:
        return run_key(self.stack, self.run_id, name)

    def append(
        self,
        type: str,
        *,
        step: str | None = None,
        state: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Write the next event and return it; it is in the store when this returns."""
        event = self.stage(type, step=step, state=state, data=data)
        self.write_staged()
        return event

    def stage(
        self,
        type: str,
        *,
        step: str | None = None,
        state: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """The next event, chained but not yet written: `write_staged` writes it."""
        if type not in RUN_EVENTS:
            raise ValueError(f"unknown journal event type {type!r}")
        if type == "step" and state not in STEP_STATES:
            raise ValueError(f"unknown step state {state!r}")
        event = Event(
            seq=self.next_seq,
            type=type,
            at=iso(self.now()),
            step=step,
            state=state,
            data=data or {},
        )
        doc = event.to_dict()
        if self.head is not None:
            doc["prev"] = self.head
        body = _sealed(doc) if self.head is not None else _dump(doc)
        self._staged.append((self.key(f"events/{event.seq:06d}.json"), body))
        self.events.append(event)
        self.next_seq += 1
        if self.head is not None:
            self.head = _digest(body)
        return event

    def write_staged(self) -> None:
        """Write the staged events, in order; a local store waits for its disk once for all."""
        staged, self._staged = self._staged, []
        if not staged:
            return
        try:
            self.store.put_docs(staged, create_only=True)
        except AlreadyExists as exc:
            if exc.fields.get("key") != self.key("run.json"):
                raise
            raise UsageError(
                f"run {self.run_id} already exists in {self.store.url}; plan again for a new run "
                f"id, or `rollback resume {self.run_id}`.",
                run_id=self.run_id,
            ) from None

    def created_run(self) -> Run:
        """The run this process created, as `load` would rebuild it, without reading the store."""
        if self.root is None:
            raise UsageError(f"run {self.run_id} was not created by this journal; load it.")
        plan = Plan.from_dict(dict(self.root["plan"]))
        return Run(
            run_id=self.run_id,
            stack=self.stack,
            plan=plan,
            actor=str(self.root.get("actor", "")),
            started_at=str(self.root["started_at"]),
            reason=str(self.root.get("reason", "")),
            options=dict(self.root.get("options") or {}),
            events=tuple(self.events),
            steps=_fold_steps(plan, self.events),
        )

    @staticmethod
    def load(store: Store, stack: str, run_id: str) -> Run:
        """Rebuild a run from its documents, checking their hash chain; raises NotFound or IntegrityError."""
        try:
            root = store.get_doc(run_key(stack, run_id, "run.json"))
        except NotFound:
            raise NotFound(
                f"run {run_id} of {stack} is not in {store.url}; `rollback history` lists the runs.",
                run_id=run_id,
            ) from None
        schema = _schema_of(root, run_id)
        doc = json.loads(root)
        chained = schema >= 2
        if chained:
            _check_seal(doc, run_id, "run.json")
        try:
            plan = Plan.from_dict(dict(doc["plan"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"run {run_id} has an unreadable run.json ({exc}).") from exc
        events = []
        prev = _digest(root)
        for expected, key in enumerate(_event_keys(store, stack, run_id), start=1):
            raw = store.get_doc(key)
            record = key.rsplit("/", 1)[1].removesuffix(".json")
            try:
                data = json.loads(raw)
                event = Event.from_dict(data)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise IntegrityError(
                    f"run {run_id}: journal record {record} is unreadable ({exc}).",
                    run_id=run_id,
                    record=record,
                ) from exc
            if record != f"{expected:06d}":
                raise _broken(run_id, record, f"record {expected:06d} before it is missing")
            if event.seq != expected:
                raise _broken(run_id, record, f"it says it is record {event.seq} (moved)")
            if chained:
                _check_seal(data, run_id, record)
                if data.get("prev") != prev:
                    raise _broken(
                        run_id,
                        record,
                        "it does not follow the record before it (a record before it "
                        "was changed, removed or moved)",
                    )
            elif "prev" in data or "sha256" in data:
                raise _broken(run_id, record, "it is chained but its run.json says schema 1")
            events.append(event)
            prev = _digest(raw)
        return Run(
            run_id=run_id,
            stack=stack,
            plan=plan,
            actor=str(doc.get("actor", "")),
            started_at=str(doc["started_at"]),
            reason=str(doc.get("reason", "")),
            options=dict(doc.get("options") or {}),
            events=tuple(events),
            steps=_fold_steps(plan, events),
        )


def run_state(store: Store, stack: str, run_id: str) -> str:
    """`absent` (no run.json), `unfinished`, or `finished (RESULT) at WHEN`, read through `load`.

    What the lock needs to know of its holder; raises IntegrityError when the
    run's journal does not pass its hash chain.
    """
    try:
        run = Journal.load(store, stack, run_id)
    except NotFound:
        return "absent"
    if run.finished:
        return f"finished ({run.result}) at {run.finished_at}"
    return "unfinished"


def list_runs(store: Store, stack: str) -> list[RunSummary]:
    """Every run of `stack`, oldest first (run ids sort by start time)."""
    run_ids = sorted_run_ids(store, stack)
    return [RunSummary.of(Journal.load(store, stack, run_id)) for run_id in run_ids]


def latest_run(store: Store, stack: str) -> Run | None:
    """The most recently started run of `stack`, or None if it never had one."""
    run_ids = sorted_run_ids(store, stack)
    return Journal.load(store, stack, run_ids[-1]) if run_ids else None


def sorted_run_ids(store: Store, stack: str) -> list[str]:
    """The ids of every run of `stack` with a run.json, oldest start first."""
    prefix = run_prefix(stack)
    keys = store.list_docs(prefix)
    return sorted({k[len(prefix) :].split("/", 1)[0] for k in keys if k.endswith("/run.json")})


def _event_keys(store: Store, stack: str, run_id: str) -> list[str]:
    return [k for k in store.list_docs(run_key(stack, run_id, "events/")) if k.endswith(".json")]


def _fold_steps(plan: Plan, events: list[Event]) -> tuple[StepRecord, ...]:
    records = {s.name: StepRecord(name=s.name, kind=s.kind) for s in plan.steps}
    for event in events:
        if event.type == "skipped" and event.step in records:
            records[event.step] = replace(
                records[event.step],
                state="skipped",
                skip_reason=str(event.data.get("reason", "")),
                skipped_by=str(event.data.get("by", "")),
                started_at=event.at,
                ended_at=event.at,
            )
        if event.type != "step" or event.step not in records or event.state is None:
            continue
        record = records[event.step]
        data = event.data
        changes: dict[str, Any] = {"state": event.state}
        if event.state == "applying":
            changes["started_at"] = record.started_at or event.at
        elif event.state in ("applied", "verified", "failed"):
            changes["ended_at"] = event.at
        if "changed" in data:
            changes["changed"] = bool(data["changed"])
        if "prior" in data:
            changes["prior"] = dict(data["prior"])
        if "detail" in data:
            changes["detail"] = dict(data["detail"])
        if "evidence" in data:
            changes["evidence"] = tuple(evidence_from_dict(e) for e in data["evidence"])
        if "error" in data:
            changes["error"] = str(data["error"])
        if "note" in data:
            changes["note"] = str(data["note"])
        records[event.step] = replace(record, **changes)
    return tuple(records[s.name] for s in plan.steps)


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sealed(doc: dict[str, Any]) -> bytes:
    """The record's bytes with `sha256`: the digest of its canonical JSON without that field.

    Dumped once and loaded back first, so what is sealed is exactly what a
    reader will re-dump (values JSON cannot hold became strings already).
    """
    # The round trip needs no indent: the compact form (C encoder) holds the same values.
    plain = json.loads(json.dumps(doc, sort_keys=True, default=str))
    plain.pop("sha256", None)
    body = _dump(plain)
    return _with_member(body, list(plain), "sha256", _digest(body))


def _with_member(body: bytes, keys: list[str], key: str, value: str) -> bytes:
    """`body` (`_dump` of an object with `keys`) with `key: value` added: the bytes
    `_dump` would write for the object with it, without encoding it all again (the indented
    encoder is pure Python: a run's first write pays for it before traffic moves).

    In `_dump`'s form each top-level member starts its own line with two spaces and a
    quote, after `,` and a newline; deeper members are indented further and a JSON string
    holds no raw newline, so those separators are exactly the top-level ones.
    """
    text = body.decode()
    if not keys:
        return _dump({key: value})
    members = text[len("{\n") : -len("\n}\n")].split(',\n  "')
    members[1:] = ['  "' + m for m in members[1:]]
    members.insert(sum(1 for k in keys if k < key), f"  {json.dumps(key)}: {json.dumps(value)}")
    return ("{\n" + ",\n".join(members) + "\n}\n").encode()


def _check_seal(doc: dict[str, Any], run_id: str, record: str) -> None:
    rest = {k: v for k, v in doc.items() if k != "sha256"}
    if doc.get("sha256") != _digest(_dump(rest)):
        raise _broken(run_id, record, "its content does not match its sha256 (it was edited)")


def _schema_of(root: bytes, run_id: str) -> int:
    try:
        doc = json.loads(root)
    except ValueError as exc:
        raise IntegrityError(f"run {run_id} has an unreadable run.json ({exc}).") from exc
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema not in READ_SCHEMAS:
        raise IntegrityError(
            f"run {run_id} has schema {schema!r}; this toolkit reads {', '.join(map(str, READ_SCHEMAS))}."
        )
    return int(schema)


def _broken(run_id: str, record: str, why: str) -> IntegrityError:
    what = "run.json" if record == "run.json" else f"journal record {record}"
    return IntegrityError(
        f"run {run_id}: {what} breaks the journal's hash chain: {why}. A journal is evidence and "
        "is never rewritten; restore the run's records from a backup of the store.",
        run_id=run_id,
        record=record,
    )


@dataclass
class RunLog:
    """How a run's course writes: each event journalled then shown, each notification
    sent and its outcome journalled. Shared by rollbacks and cutovers.
    """

    journal: Journal
    plan: Plan
    actor: str
    now: Now
    on_event: Callable[[Event], None] | None = None
    notifiers: Sequence[Notifier] = ()
    headline: Callable[[Plan, str, str | None], str] | None = None
    notified: list[NotifyOutcome] = field(default_factory=list)

    held: list[Event] | None = None  # events staged by `hold`, written by `flush`

    def record(
        self,
        type: str,
        *,
        step: str | None = None,
        state: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        if self.held is not None:
            event = self.journal.stage(type, step=step, state=state, data=data)
            self.held.append(event)
            return event
        event = self.journal.append(type, step=step, state=state, data=data)
        if self.on_event:
            self.on_event(event)
        return event

    def hold(self) -> None:
        """Stage the next records instead of writing each: `flush` writes them in one go.

        Only while nothing changes: the caller flushes before any change.
        """
        if self.held is None:
            self.held = []

    def flush(self) -> None:
        """Write what `hold` staged (in order) and show it; then write each record again."""
        held, self.held = self.held, None
        if not held:
            return
        self.journal.write_staged()
        if self.on_event:
            for event in held:
                self.on_event(event)

    def notify(self, event: str, result: str | None = None, text: str = "") -> None:
        """Notify every notifier; a failing one is recorded, never raised."""
        if not self.notifiers:
            return
        holding = self.held is not None
        self.flush()  # the world hears of a record only once it is in the store
        try:
            self._notify(event, result, text)
        finally:
            if holding:
                self.hold()

    def _notify(self, event: str, result: str | None, text: str) -> None:
        if not text and self.headline is not None:
            text = self.headline(self.plan, event, result)
        if event == "started" and self.plan.reason:
            text = f"{text} Reason: {self.plan.reason}"
        note = Notification(
            event=event,
            run_id=self.plan.run_id,
            stack=self.plan.stack,
            from_version=self.plan.from_version,
            to_version=self.plan.to_version,
            text=text,
            result=result,
            actor=self.actor,
            at=iso(self.now()),
            reason=self.plan.reason,
        )
        outcomes = notify_all(self.notifiers, note)
        self.notified.extend(outcomes)
        self.record("notified", data={"event": event, "outcomes": [o.to_dict() for o in outcomes]})
