"""Notifications: tell people a rollback started, restored traffic and finished.

Two notifiers, one protocol: a webhook (a Slack-compatible `text` plus
structured fields, POSTed as JSON) and an SNS topic. `notify_all` never lets
a failing notifier fail the rollback: the failure is logged and returned as a
`NotifyOutcome`, which the executor writes to the run journal.

Nothing secret goes out: the message names the run, the stack, the versions,
the result and the actor, never settings, credentials or the webhook URL
(a Slack webhook URL is itself a credential, so outcomes name only its host).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

EVENTS = ("started", "traffic-restored", "finished")


@dataclass(frozen=True)
class Notification:
    """What happened to a run, in one sentence (`text`) and as fields."""

    event: str  # started | traffic-restored | finished
    run_id: str
    stack: str
    from_version: str
    to_version: str
    text: str
    result: str | None = None  # succeeded | failed | stopped, for `finished`
    actor: str = ""
    at: str = ""
    reason: str = ""  # why the run started: the person's or the trigger's words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NotifyOutcome:
    """Whether one notifier delivered one notification; `error` is a sentence."""

    notifier: str
    event: str
    ok: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Notifier(Protocol):
    name: str  # for outcomes and logs; never a secret

    def send(self, note: Notification) -> None:
        """Deliver `note`; raise any exception on failure (notify_all contains it)."""
        ...


class WebhookNotifier:
    """POSTs the notification as JSON to a webhook (Slack incoming webhooks accept it).

    An answer of 429 or 5xx is retried with exponential back-off (`backoff_s`
    doubling, or the answer's Retry-After when it is shorter than `max_wait_s`),
    `attempts` tries in all; `sleep` is injected so tests never wait. Other
    non-2xx answers and an unreachable host raise at once. `timeout` is in
    seconds, per attempt.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_wait_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook URL must be http:// or https:// with a host")
        self._url = url
        self.timeout = timeout
        self.attempts = max(attempts, 1)
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.name = f"webhook {parts.hostname}"

    def send(self, note: Notification) -> None:
        import urllib.error  # here, not at import: a run without webhooks never loads urllib

        body = json.dumps(note.to_dict(), allow_nan=False).encode()
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                self._post(body)
                return
            except urllib.error.HTTPError as exc:
                if not _retryable(exc.code) or attempt == self.attempts:
                    raise WebhookRefused(exc.code, attempt) from None
                wait = _retry_after(exc.headers.get("Retry-After"), self.max_wait_s) or delay
                log.info(
                    "%s answered HTTP %s; retrying in %.0fs (attempt %d of %d)",
                    self.name,
                    exc.code,
                    wait,
                    attempt + 1,
                    self.attempts,
                )
                self.sleep(wait)
                delay = min(delay * 2, self.max_wait_s)

    def _post(self, body: bytes) -> None:
        import urllib.request

        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "rollback"},
        )
        # urlopen raises HTTPError for every non-2xx answer (3xx are followed by urllib).
        with urllib.request.urlopen(request, timeout=self.timeout):
            pass


class WebhookRefused(Exception):
    """The webhook answered a non-2xx status, after `attempts` tries."""

    def __init__(self, status: int, attempts: int) -> None:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"the webhook answered HTTP {status}{tries}")
        self.status = status
        self.attempts = attempts


def _retryable(status: int) -> bool:
    return status == 429 or 500 <= status < 600


def _retry_after(value: str | None, limit: float) -> float | None:
    """Seconds from a Retry-After header (a number of seconds), when in (0, limit]."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: fall back to our own back-off
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= limit:
        return None
    return seconds


class SnsNotifier:
    """Publishes the notification to an SNS topic: subject and text, plus the JSON."""

    def __init__(self, sns_client: Any, topic_arn: str) -> None:
        self.client = sns_client
        self.topic_arn = topic_arn
        self.name = f"sns {topic_arn.rsplit(':', 1)[-1]}"

    def send(self, note: Notification) -> None:
        subject = f"rollback {note.stack} {note.event}"
        if note.result:
            subject += f": {note.result}"
        self.client.publish(
            TopicArn=self.topic_arn,
            Subject=subject[:100],  # SNS refuses longer subjects
            Message=json.dumps(note.to_dict(), allow_nan=False),
            MessageAttributes={
                "event": {"DataType": "String", "StringValue": note.event},
                "stack": {"DataType": "String", "StringValue": note.stack},
            },
        )


def notify_all(notifiers: Sequence[Notifier], note: Notification) -> list[NotifyOutcome]:
    """Send `note` through every notifier; failures are logged and returned, never raised."""
    outcomes = []
    for notifier in notifiers:
        try:
            notifier.send(note)
        except Exception as exc:  # noqa: BLE001 - a notification must never fail a rollback
            error = _sentence(exc)
            log.warning(
                "%s could not deliver %s of run %s: %s",
                notifier.name,
                note.event,
                note.run_id,
                error,
            )
            outcomes.append(NotifyOutcome(notifier.name, note.event, ok=False, error=error))
        else:
            outcomes.append(NotifyOutcome(notifier.name, note.event, ok=True))
    return outcomes


def _sentence(exc: Exception) -> str:
    # HTTPError's str carries only the code and phrase; URLError the socket reason.
    # Neither repeats the URL, which may be a credential.
    import urllib.error

    if isinstance(exc, WebhookRefused):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"the webhook answered HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"the webhook is unreachable ({exc.reason})"
    return str(exc) or type(exc).__name__
