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

    @contextmanager
    def heartbeat(self, message: Received) -> Iterator[None]:
        """Keep `message` invisible to other agents while the block runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.heartbeat_s):
                try:
                    self.queue.extend(message.receipt, self.settings.visibility_s)
                except RollbackError as exc:
                    log.warning("heartbeat for message %s failed: %s", message.message_id, exc)

        thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

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
