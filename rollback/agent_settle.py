"""Settling the agent's SQS messages: heartbeats, deletes, retries and dead letters.

What a message *means* is the agent's business (`rollback.agent`); here is
only what becomes of the message itself:

- while it is worked on, a heartbeat thread keeps it invisible to other agents;
- done: deleted;
- waiting on a dead agent's lock lease (another host): hidden until it expires;
- a transient failure: made visible again after `retry_delay_s` times its
  receipts, and after `max_receives` receipts dead-lettered;
- dead-lettered: sent to the DLQ with the reason as the message attribute
  `rollback-reason` (plus the source message id, receipt count and agent),
  then deleted. When even that fails the message stays, and the queue's
  redrive policy moves it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.errors import RollbackError

if TYPE_CHECKING:
    from rollback.agent_metrics import AgentMetrics
    from rollback.aws.sqs import Queue, Received

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    """How the agent uses its queue. Seconds throughout."""

    wait_s: int = 20  # long-poll wait of each receive (SQS allows 0-20)
    visibility_s: int = 60  # what each heartbeat extends a message's visibility to
    heartbeat_s: float = 15.0  # how often, while a run lives
    max_receives: int = 3  # failed receipts before a message is dead-lettered
    retry_delay_s: int = 5  # a failed message is visible again after this (times its count)


@dataclass(frozen=True)
class Handled:
    """What became of one message: done | duplicate | dead-lettered | retry | waiting | ignored."""

    message_id: str
    outcome: str
    detail: str
    runs: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "outcome": self.outcome,
            "detail": self.detail,
            "runs": list(self.runs),
        }


class Heartbeat:
    """One thread for the agent's life that extends the message in hand every `every_s`.

    A thread started per message would first wait for the scheduler to run it
    (milliseconds on a busy machine) before the agent could take the stack's
    lock. `hold` starts beating a message (the first beat `every_s` later);
    `drop` stops, and returns only once no beat of it is in flight: a late
    extension would hide a message that was just deleted or handed back.
    """

    def __init__(self, extend: Callable[[Received], None], every_s: float) -> None:
        self._extend = extend
        self._every_s = every_s
        self._changed = threading.Condition()
        self._message: Received | None = None
        self._due = 0.0
        self._beating = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (the agent does before its first receive; `hold` when not yet)."""
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
                self._thread.start()

    def hold(self, message: Received) -> None:
        self.start()
        with self._changed:
            self._message, self._due = message, time.monotonic() + self._every_s
            self._changed.notify_all()

    def drop(self) -> None:
        with self._changed:
            self._message = None
            self._changed.notify_all()
            while self._beating:
                self._changed.wait()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed and (self._message is None or time.monotonic() < self._due):
                    wait = None if self._message is None else self._due - time.monotonic()
                    self._changed.wait(wait)
                message = self._message
                if self._closed or message is None:
                    return
                self._beating = True
                self._due = time.monotonic() + self._every_s
            try:
                self._extend(message)
            finally:
                with self._changed:
                    self._beating = False
                    self._changed.notify_all()


class Settler:
    """What becomes of the messages of one agent."""

    def __init__(
        self,
        queue: Queue,
        dead_letter_queue: Queue | None,
        settings: AgentSettings,
        metrics: AgentMetrics | None,
        name: str,
    ) -> None:
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue
        self.settings = settings
        self.metrics = metrics
        self.name = name
        self.beats = Heartbeat(self.extend, settings.heartbeat_s)

    @contextmanager
    def heartbeat(self, message: Received) -> Iterator[None]:
        """Keep `message` invisible to other agents while the block runs."""
        self.beats.hold(message)
        try:
            yield
        finally:
            self.beats.drop()

    def extend(self, message: Received) -> None:
        try:
            self.queue.extend(message.receipt, self.settings.visibility_s)
        except RollbackError as exc:
            log.warning("heartbeat for message %s failed: %s", message.message_id, exc)

    def close(self) -> None:
        self.beats.close()

    def delete(self, message: Received) -> None:
        try:
            self.queue.delete(message.receipt)
        except RollbackError as exc:
            log.warning("could not delete message %s: %s", message.message_id, exc.message)

    def release(self, message: Received) -> None:
        """Hand a message back at once (we are stopping)."""
        try:
            self.queue.extend(message.receipt, 0)
        except RollbackError as exc:
            log.warning("could not release message %s: %s", message.message_id, exc.message)

    def postpone(self, message: Received, why: str, seconds: float) -> Handled:
        """Hide the message for `seconds` (at most SQS's 12 hours); not a failure."""
        delay = int(min(max(seconds + 1, 1), 43200))
        log.warning("message %s waits %ds: %s", message.message_id, delay, why)
        try:
            self.queue.extend(message.receipt, delay)
        except RollbackError as exc:
            log.warning("could not postpone message %s: %s", message.message_id, exc.message)
        handled = Handled(message.message_id, "waiting", why)
        self.count(handled)
        return handled

    def retry(
        self, message: Received, why: str, give_up: Callable[[str], None] | None = None
    ) -> Handled:
        """Leave the message for a later receipt, or dead-letter it after `max_receives`.

        `give_up(reason)` is called before a message is dead-lettered this way.
        """
        count = message.receive_count
        if count >= self.settings.max_receives:
            reason = f"failed {count} times; last: {why}"
            if give_up is not None:
                give_up(reason)
            return self.dead_letter(message, reason)
        delay = self.settings.retry_delay_s * count
        log.warning(
            "message %s failed (receipt %d of %d): %s; retrying in %ds",
            message.message_id,
            count,
            self.settings.max_receives,
            why,
            delay,
        )
        try:
            self.queue.extend(message.receipt, delay)
        except RollbackError as exc:
            log.warning("could not reschedule message %s: %s", message.message_id, exc.message)
        handled = Handled(message.message_id, "retry", why)
        self.count(handled)
        return handled

    def dead_letter(self, message: Received, why: str) -> Handled:
        """Move the message to the dead-letter queue with `why`; never retried."""
        log.error("message %s dead-lettered: %s", message.message_id, why)
        if self.dead_letter_queue is None:
            log.error("the queue has no dead-letter queue; message %s dropped", message.message_id)
        else:
            try:
                self.dead_letter_queue.send(
                    message.body,
                    {
                        "rollback-reason": why[:1000],
                        "rollback-source-message-id": message.message_id,
                        "rollback-receive-count": str(message.receive_count),
                        "rollback-agent": self.name,
                    },
                )
            except RollbackError as exc:
                # Left on the queue: the redrive policy moves it after maxReceiveCount.
                log.error("could not dead-letter message %s: %s", message.message_id, exc.message)
                return Handled(message.message_id, "retry", why)
        self.delete(message)
        handled = Handled(message.message_id, "dead-lettered", why)
        self.count(handled)
        return handled

    def count(self, handled: Handled) -> None:
        if self.metrics:
            self.metrics.settled(handled.outcome)
