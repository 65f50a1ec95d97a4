"""Notifications: a real webhook on 127.0.0.1, SNS read back through SQS, failures contained."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.executor import Executor
from rollback.journal import Journal
from rollback.notify import Notification, SnsNotifier, WebhookNotifier, notify_all
from rollback.plan import Plan
from rollback.store.local import LocalStore
from tests.unit.run_steps import builder_for, object_step, read_object

STACK = "webapp/dev"
SECRET_PATH = "/services/T000/B000/SECRET-TOKEN"


class Hook:
    """An HTTP server on 127.0.0.1 that records POSTed JSON and answers `status`."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.script: list[tuple[int, dict[str, str]]] = []  # (status, headers) of the next answers
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                hook.received.append(json.loads(self.rfile.read(length)))
                status, headers = hook.script.pop(0) if hook.script else (hook.status, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"


def serve(status: int) -> Iterator[Hook]:
    hook = Hook(status)
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    yield from serve(200)


@pytest.fixture
def broken_hook() -> Iterator[Hook]:
    yield from serve(500)


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"


def note(event: str = "finished", result: str | None = "succeeded") -> Notification:
    return Notification(
        event=event,
        run_id="20261129T120000Z-0001",
        stack=STACK,
        from_version="1.5.0",
        to_version="1.4.0",
        text="Rollback of webapp/dev to 1.4.0 succeeded.",
        result=result,
        actor="ana",
    )


def test_a_webhook_receives_slack_text_and_structured_fields(hook: Hook) -> None:
    outcomes = notify_all([WebhookNotifier(hook.url)], note())
    assert [o.ok for o in outcomes] == [True]
    (body,) = hook.received
    assert body["text"] == "Rollback of webapp/dev to 1.4.0 succeeded."
    assert {
        k: body[k] for k in ("event", "run_id", "stack", "from_version", "to_version", "result")
    } == {
        "event": "finished",
        "run_id": "20261129T120000Z-0001",
        "stack": STACK,
        "from_version": "1.5.0",
        "to_version": "1.4.0",
        "result": "succeeded",
    }


def test_failing_webhooks_are_reported_not_raised(
    broken_hook: Hook, closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rollback.notify")
    sleeps: list[float] = []
    outcomes = notify_all(
        [
            WebhookNotifier(broken_hook.url, sleep=sleeps.append),
            WebhookNotifier(closed_port_url, sleep=sleeps.append),
        ],
        note(),
    )
    assert [o.ok for o in outcomes] == [False, False]
    assert outcomes[0].error == "the webhook answered HTTP 500 after 4 attempts"
    assert outcomes[1].error.startswith("the webhook is unreachable")
    assert len(broken_hook.received) == 4 and sleeps == [1, 2, 4]
    assert "could not deliver" in caplog.text
    # A webhook URL is a credential: neither outcomes nor logs repeat it.
    assert "SECRET-TOKEN" not in caplog.text
    assert all("SECRET-TOKEN" not in json.dumps(o.to_dict()) for o in outcomes)


def test_429_and_5xx_are_retried_with_backoff_and_retry_after(hook: Hook) -> None:
    hook.script = [(503, {}), (429, {"Retry-After": "7"}), (502, {"Retry-After": "9999"})]
    sleeps: list[float] = []
    (outcome,) = notify_all([WebhookNotifier(hook.url, sleep=sleeps.append)], note())
    assert outcome.ok and len(hook.received) == 4
    # back-off 1 s, then the server's 7 s, then (9999 s is past the limit) our own, doubled twice
    assert sleeps == [1, 7, 4]


def test_a_client_error_is_not_retried(hook: Hook) -> None:
    hook.script = [(404, {})]
    sleeps: list[float] = []
    (outcome,) = notify_all([WebhookNotifier(hook.url, sleep=sleeps.append)], note())
    assert not outcome.ok and outcome.error == "the webhook answered HTTP 404"
    assert len(hook.received) == 1 and sleeps == []


def test_sns_publishes_what_a_subscribed_queue_receives() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="rollbacks")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        outcomes = notify_all([SnsNotifier(sns, topic)], note())

        assert [(o.notifier, o.ok) for o in outcomes] == [("sns rollbacks", True)]
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        envelope = json.loads(messages[0]["Body"])
        assert envelope["Subject"] == "rollback webapp/dev finished: succeeded"
        payload = json.loads(envelope["Message"])
        assert (payload["event"], payload["result"], payload["run_id"]) == (
            "finished",
            "succeeded",
            "20261129T120000Z-0001",
        )


def test_sns_to_a_missing_topic_is_an_outcome_not_an_error() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        missing = "arn:aws:sns:us-east-1:123456789012:gone"
        (outcome,) = notify_all([SnsNotifier(sns, missing)], note())
        assert not outcome.ok and outcome.error


def test_a_run_with_broken_notifiers_still_succeeds_and_journals_the_outcomes(
    hook: Hook, broken_hook: Hook, closed_port_url: str, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cloud")
        plan = Plan(
            run_id="20261129T120000Z-0001",
            stack=STACK,
            from_version="1.5.0",
            to_version="1.4.0",
            steps=(
                object_step("traffic", "live", "blue", kind="traffic"),
                object_step("stack", "app", "1.4.0"),
            ),
        )
        notifiers = [
            WebhookNotifier(broken_hook.url, sleep=lambda _: None),
            WebhookNotifier(closed_port_url, sleep=lambda _: None),
            WebhookNotifier(hook.url),
        ]
        executor = Executor(store, STACK, builder_for(s3, "cloud"), notifiers=notifiers)

        result = executor.execute(plan, actor="ana")

        assert result.result == "succeeded"
        assert read_object(s3, "cloud", "app") == "1.4.0"
    assert [b["event"] for b in hook.received] == ["started", "traffic-restored", "finished"]
    assert hook.received[-1]["result"] == "succeeded"
    run = Journal.load(store, STACK, plan.run_id)
    notified = [e for e in run.events if e.type == "notified"]
    assert [e.data["event"] for e in notified] == ["started", "traffic-restored", "finished"]
    assert [o["ok"] for o in notified[-1].data["outcomes"]] == [False, False, True]
    assert [o.ok for o in result.notifications].count(False) == 6
    stored = "".join(store.get_doc(k).decode() for k in store.list_docs("runs/"))
    assert "SECRET-TOKEN" not in stored
    # The report says which notifications never arrived, and why.
    from rollback.report import build_report, render_markdown

    markdown = render_markdown(build_report(run))
    assert markdown.count("NOT delivered (the webhook answered HTTP 500 after 4 attempts)") == 3
