"""What the agent reads from its queue: alarm state changes and explicit jobs.

Two shapes are accepted, both JSON objects:

- an EventBridge "CloudWatch Alarm State Change" event, as AWS delivers it
  to an SQS target (`detail-type`, `source: aws.cloudwatch`,
  `detail.alarmName`, `detail.state.value|timestamp|reason`);
- a job: `{"stack": "PROJECT/STACK", "to": "VERSION|last-stable",
  "reason": "...", "id": "...", "by": "..."}` (`id` defaults to the SQS
  message id; `accept_data_loss` and `force` are optional booleans).

Anything else is `Malformed`: the agent dead-letters it with the sentence
and never retries it. `AlarmIndex` maps alarm names to the stacks whose
recorded topology names them (the current release of every stack in the
store), so nothing is configured twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.config import is_stack
from rollback.errors import UsageError

if TYPE_CHECKING:
    from rollback.store import Store

ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
ALARM_SOURCE = "aws.cloudwatch"


class Malformed(UsageError):
    """A queue message the agent cannot act on, ever; it is dead-lettered at once."""


@dataclass(frozen=True)
class AlarmChange:
    """One alarm transition, from the event CloudWatch sends through EventBridge."""

    alarm: str
    state: str  # ALARM | OK | INSUFFICIENT_DATA
    previous: str
    at: str  # the transition's timestamp, as CloudWatch wrote it
    reason: str
    event_id: str

    @property
    def key(self) -> str:
        """One key per transition: the same event delivered twice has the same key."""
        text = f"{self.alarm}\n{self.state}\n{self.at}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def describe(self) -> str:
        return f"alarm {self.alarm} {self.previous or '?'} -> {self.state} at {self.at}"


@dataclass(frozen=True)
class Job:
    """An explicit rollback asked for through the queue (`rollback to --via-queue`)."""

    id: str
    stack: str
    to: str
    reason: str
    by: str = ""
    accept_data_loss: bool = False
    force: bool = False

    @property
    def key(self) -> str:
        return self.id

    def describe(self) -> str:
        return f"job {self.id}: {self.stack} to {self.to}"

    def to_body(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "stack": self.stack,
                "to": self.to,
                "reason": self.reason,
                "by": self.by,
                "accept_data_loss": self.accept_data_loss,
                "force": self.force,
            },
            sort_keys=True,
        )


def parse_message(body: str, message_id: str) -> AlarmChange | Job:
    """The message's meaning; raises Malformed with one sentence saying what is wrong."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise Malformed(f"the message body is not JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise Malformed("the message body is not a JSON object.")
    if "detail-type" in data or "detail" in data:
        return _alarm_change(data)
    if "stack" in data:
        return _job(data, message_id)
    raise Malformed(
        "the message is neither a CloudWatch alarm state change nor a job "
        '({"stack": ..., "to": ..., "reason": ...}).'
    )


def _alarm_change(data: dict[str, Any]) -> AlarmChange:
    if data.get("detail-type") != ALARM_DETAIL_TYPE or data.get("source") != ALARM_SOURCE:
        raise Malformed(
            f"event {data.get('detail-type')!r} from {data.get('source')!r} is not a "
            f"{ALARM_DETAIL_TYPE!r} from {ALARM_SOURCE}."
        )
    detail = data.get("detail")
    if not isinstance(detail, dict):
        raise Malformed("the alarm event has no `detail` object.")
    state = detail.get("state")
    name = detail.get("alarmName")
    if not isinstance(name, str) or not name or not isinstance(state, dict):
        raise Malformed("the alarm event lacks `detail.alarmName` or `detail.state`.")
    value, at = state.get("value"), state.get("timestamp") or data.get("time")
    if value not in ("ALARM", "OK", "INSUFFICIENT_DATA") or not isinstance(at, str) or not at:
        raise Malformed(f"alarm {name}'s event has no valid `state.value` and `state.timestamp`.")
    previous = detail.get("previousState")
    return AlarmChange(
        alarm=name,
        state=str(value),
        previous=str(previous.get("value", "")) if isinstance(previous, dict) else "",
        at=at,
        reason=str(state.get("reason", ""))[:500],
        event_id=str(data.get("id", "")),
    )


def _job(data: dict[str, Any], message_id: str) -> Job:
    stack, to = data.get("stack"), data.get("to", "last-stable")
    if not isinstance(stack, str) or not is_stack(stack):
        raise Malformed(f"job stack {stack!r} is not PROJECT/STACK.")
    if not isinstance(to, str) or not to:
        raise Malformed(f"job `to` {to!r} is not a version or last-stable.")
    job_id = data.get("id") or message_id
    if not isinstance(job_id, str) or not job_id.replace("-", "").replace("_", "").isalnum():
        raise Malformed(f"job id {job_id!r} is not letters, digits, '-' and '_'.")
    for flag in ("accept_data_loss", "force"):
        if not isinstance(data.get(flag, False), bool):
            raise Malformed(f"job `{flag}` must be true or false.")
    return Job(
        id=job_id,
        stack=stack,
        to=to,
        reason=str(data.get("reason") or f"queued rollback to {to}")[:500],
        by=str(data.get("by", "")),
        accept_data_loss=bool(data.get("accept_data_loss", False)),
        force=bool(data.get("force", False)),
    )


def stacks_in(store: Store) -> list[str]:
    """Every PROJECT/STACK with a current release in the store."""
    found = set()
    for key in store.list_docs("releases/"):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] == "current.json":
            found.add(f"{parts[1]}/{parts[2]}")
    return sorted(found)


class AlarmIndex:
    """Alarm name -> stacks, from the topology of each stack's current release."""

    def __init__(self, store: Store, only: Iterable[str] = ()) -> None:
        self.store = store
        self.only = tuple(only)
        self.by_alarm: dict[str, list[str]] = {}

    def refresh(self) -> AlarmIndex:
        from rollback.releases import Registry

        by_alarm: dict[str, list[str]] = {}
        for stack in self.only or stacks_in(self.store):
            registry = Registry(self.store, stack)
            current = registry.current()
            if current is None:
                continue
            topology = registry.topology(registry.show(current).release)
            for name in sorted({a for names in topology.alarms.values() for a in names}):
                by_alarm.setdefault(name, []).append(stack)
        self.by_alarm = by_alarm
        return self

    def stacks_for(self, alarm: str) -> list[str]:
        """The stacks naming `alarm`; re-reads the store once when none does (a new stack)."""
        if alarm not in self.by_alarm:
            self.refresh()
        return list(self.by_alarm.get(alarm, []))

    @property
    def alarms(self) -> list[str]:
        return sorted(self.by_alarm)
