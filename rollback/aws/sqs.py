"""SQS: the agent's queue. Receive with long polling, extend visibility, delete, send.

A message stays invisible to other consumers while its visibility timeout
runs; a worker that lives longer than that extends it (a heartbeat), and a
worker that dies lets it come back for the next one. That is how several
agents share one queue without a second lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rollback.aws.failures import translated

NOT_FOUND = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


@dataclass(frozen=True)
class Received:
    """One message as received: its body, its receipt and how often it was received."""

    message_id: str
    body: str
    receipt: str
    receive_count: int  # ApproximateReceiveCount, 1 on the first delivery
    sent_at: float  # epoch seconds (SentTimestamp)
    attributes: dict[str, str]  # message attributes (string values only)


class Queue:
    """Typed access to one SQS queue by URL."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    def receive(
        self, *, max_messages: int = 1, wait_s: int = 20, visibility_s: int | None = None
    ) -> list[Received]:
        """Long-poll up to `wait_s` seconds for at most `max_messages` (1-10) messages.

        `visibility_s` overrides the queue's visibility timeout for what is received.
        """
        extra = {} if visibility_s is None else {"VisibilityTimeout": visibility_s}
        with translated(f"receiving from {self.url}", not_found=NOT_FOUND):
            answer = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"],
                **extra,
            )
        found = []
        for m in answer.get("Messages", []):
            system = m.get("Attributes", {})
            found.append(
                Received(
                    message_id=m["MessageId"],
                    body=m.get("Body", ""),
                    receipt=m["ReceiptHandle"],
                    receive_count=int(system.get("ApproximateReceiveCount", "1")),
                    sent_at=int(system.get("SentTimestamp", "0")) / 1000.0,
                    attributes={
                        k: str(v.get("StringValue", ""))
                        for k, v in m.get("MessageAttributes", {}).items()
                    },
                )
            )
        return found

    def delete(self, receipt: str) -> None:
        with translated(f"deleting a message from {self.url}", not_found=NOT_FOUND):
            self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

    def extend(self, receipt: str, visibility_s: int) -> None:
        """Keep a message invisible for `visibility_s` more seconds (from now)."""
        with translated(f"extending a message's visibility on {self.url}", not_found=NOT_FOUND):
            self.client.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt, VisibilityTimeout=visibility_s
            )

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        """Send one message; returns its id."""
        attrs = {
            k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items() if v
        }
        with translated(f"sending to {self.url}", not_found=NOT_FOUND):
            answer = self.client.send_message(
                QueueUrl=self.url, MessageBody=body, MessageAttributes=attrs
            )
        return str(answer["MessageId"])

    def attributes(self) -> dict[str, str]:
        with translated(f"reading the attributes of {self.url}", not_found=NOT_FOUND):
            answer = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])
        return dict(answer.get("Attributes", {}))

    def dead_letter_url(self) -> str | None:
        """The URL of the queue's dead-letter queue (from its redrive policy), or None."""
        policy = self.attributes().get("RedrivePolicy")
        if not policy:
            return None
        arn = str(json.loads(policy)["deadLetterTargetArn"])
        _, _, _, region, account, name = arn.split(":", 5)
        with translated(f"finding the dead-letter queue {arn}", not_found=NOT_FOUND):
            return str(
                self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                    "QueueUrl"
                ]
            )

    def approximate_depth(self) -> tuple[int, int]:
        """(visible, in flight) messages, as SQS approximates them."""
        attrs = self.attributes()
        return (
            int(attrs.get("ApproximateNumberOfMessages", "0")),
            int(attrs.get("ApproximateNumberOfMessagesNotVisible", "0")),
        )


def queue_url(client: Any, name: str) -> str | None:
    """The URL of the queue called `name`, or None when there is none."""
    from botocore.exceptions import ClientError

    try:
        return str(client.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") in NOT_FOUND:
            return None
        with translated(f"finding the queue {name}"):
            raise
