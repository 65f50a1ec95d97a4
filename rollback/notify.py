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
import urllib.error
import urllib.request
from collections.abc import Sequence
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

    A non-2xx answer or an unreachable host raises; `timeout` is in seconds.
    """

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook URL must be http:// or https:// with a host")
        self._url = url
        self.timeout = timeout
        self.name = f"webhook {parts.hostname}"

    def send(self, note: Notification) -> None:
        body = json.dumps(note.to_dict(), allow_nan=False).encode()
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "rollback"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            status = response.status
        if not 200 <= status < 300:
            raise RuntimeError(f"the webhook answered HTTP {status}")


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
    if isinstance(exc, urllib.error.HTTPError):
        return f"the webhook answered HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"the webhook is unreachable ({exc.reason})"
    return str(exc) or type(exc).__name__
