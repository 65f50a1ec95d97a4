"""SQS queues, DynamoDB tables, Kinesis streams, EventBridge rules and targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_json, in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType


def _missing(call: Any, codes: tuple[str, ...], **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if aws_code(exc) in codes:
            return None
        raise


# Pulumi queue input -> SQS attribute; numbers travel as strings.
_QUEUE_ATTRIBUTES = {
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "policy": "Policy",
    "redrivePolicy": "RedrivePolicy",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "contentBasedDeduplication": "ContentBasedDeduplication",
}
_QUEUE_GONE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Queue:
    """aws:sqs/queue:Queue; id is the queue URL. Attributes and tags change in place."""

    clients: Clients
    token = "aws:sqs/queue:Queue"
    replace_on = frozenset({"name", "namePrefix", "fifoQueue", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        queue = physical_name(inputs, "name", name, 80)
        attributes = self._attributes(inputs)
        if inputs.get("fifoQueue"):
            attributes["FifoQueue"] = "true"
            if not queue.endswith(".fifo"):
                queue = f"{queue}.fifo"
        kwargs: dict[str, Any] = {"QueueName": queue, "Attributes": attributes}
        if inputs.get("tags"):
            kwargs["tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
        with applying(self.token, name, "create"):
            url = self.clients("sqs").create_queue(**kwargs)["QueueUrl"]
        # What a read would say, without one: `https://<endpoint>/<account>/<name>`.
        account = url.rstrip("/").split("/")[-2]
        region = self.clients("sqs").meta.region_name
        outputs = {
            **inputs,
            "name": queue,
            "arn": f"arn:aws:sqs:{region}:{account}:{queue}",
            "url": url,
        }
        return url, with_tags(
            outputs, {str(k): str(v) for k, v in (inputs.get("tags") or {}).items()}
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        sqs = self.clients("sqs")
        with applying(self.token, id, "update"):
            changed = {
                attribute: _attribute_text(news.get(key, ""))
                for key, attribute in _QUEUE_ATTRIBUTES.items()
                if news.get(key) != olds.get(key)
            }
            if changed:
                sqs.set_queue_attributes(QueueUrl=id, Attributes=changed)
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                sqs.tag_queue(QueueUrl=id, Tags=to_set)
            if to_remove:
                sqs.untag_queue(QueueUrl=id, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        sqs = self.clients("sqs")
        with applying(self.token, id, "read"):
            answer = _missing(
                sqs.get_queue_attributes, _QUEUE_GONE, QueueUrl=id, AttributeNames=["All"]
            )
            if answer is None:
                return None
            tags = sqs.list_queue_tags(QueueUrl=id).get("Tags", {}) if inputs.get("tags") else {}
        attributes = answer["Attributes"]
        outputs: dict[str, Any] = {
            **inputs,
            "name": id.rstrip("/").split("/")[-1],
            "arn": attributes.get("QueueArn", ""),
            "url": id,
        }
        for key, attribute in _QUEUE_ATTRIBUTES.items():
            if key not in inputs or attribute not in attributes:
                continue
            live = attributes[attribute]
            if key in ("policy", "redrivePolicy"):
                outputs[key] = declared_json(live, inputs[key])
            elif isinstance(inputs[key], bool):
                outputs[key] = live == "true"
            elif isinstance(inputs[key], int | float):
                outputs[key] = float(live)
            else:
                outputs[key] = live
        return with_tags(outputs, {str(k): str(v) for k, v in tags.items()})

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_QUEUE_GONE):
            self.clients("sqs").delete_queue(QueueUrl=id)

    @staticmethod
    def _attributes(inputs: dict[str, Any]) -> dict[str, str]:
        return {
            attribute: _attribute_text(inputs[key])
            for key, attribute in _QUEUE_ATTRIBUTES.items()
            if inputs.get(key) is not None
        }


def _key_schema(inputs: dict[str, Any]) -> list[dict[str, str]]:
    schema = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
    if inputs.get("rangeKey"):
        schema.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
    return schema


@dataclass(frozen=True)
class Table:
    """aws:dynamodb/table:Table; id is the name. Capacity, billing mode and tags change in place."""

    clients: Clients
    token = "aws:dynamodb/table:Table"
    replace_on = frozenset({"name", "hashKey", "rangeKey", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        table = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {
            "TableName": table,
            "AttributeDefinitions": [
                {"AttributeName": a["name"], "AttributeType": a["type"]}
                for a in inputs.get("attributes") or []
            ],
            "KeySchema": _key_schema(inputs),
            **self._billing(inputs),
        }
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        dynamodb = self.clients("dynamodb")
        with applying(self.token, name, "create"):
            dynamodb.create_table(**kwargs)
            dynamodb.get_waiter("table_exists").wait(TableName=table)
        return table, present(self.read(table, {**inputs, "name": table}), self.token, table)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        dynamodb = self.clients("dynamodb")
        with applying(self.token, id, "update"):
            if self._billing(news) != self._billing(olds):
                dynamodb.update_table(TableName=id, **self._billing(news))
            arn = dynamodb.describe_table(TableName=id)["Table"]["TableArn"]
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                dynamodb.tag_resource(ResourceArn=arn, Tags=aws_tags(to_set))
            if to_remove:
                dynamodb.untag_resource(ResourceArn=arn, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        dynamodb = self.clients("dynamodb")
        with applying(self.token, id, "read"):
            answer = _missing(dynamodb.describe_table, ("ResourceNotFoundException",), TableName=id)
            if answer is None or answer["Table"].get("TableStatus") == "DELETING":
                return None
            table = answer["Table"]
            tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        throughput = table.get("ProvisionedThroughput", {})
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        outputs: dict[str, Any] = {
            **inputs,
            "name": id,
            "arn": table["TableArn"],
            "hashKey": keys.get("HASH", ""),
            "billingMode": billing,
            "attributes": in_declared_order(
                [
                    {"name": a["AttributeName"], "type": a["AttributeType"]}
                    for a in table.get("AttributeDefinitions", [])
                ],
                inputs.get("attributes"),
            ),
            "streamArn": table.get("LatestStreamArn", ""),
        }
        if "RANGE" in keys or "rangeKey" in inputs:
            outputs["rangeKey"] = keys.get("RANGE", "")
        if billing == "PROVISIONED":
            outputs["readCapacity"] = float(throughput.get("ReadCapacityUnits", 0))
            outputs["writeCapacity"] = float(throughput.get("WriteCapacityUnits", 0))
        return with_tags(outputs, pulumi_tags(tags))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ResourceNotFoundException"):
            self.clients("dynamodb").delete_table(TableName=id)

    @staticmethod
    def _billing(inputs: dict[str, Any]) -> dict[str, Any]:
        mode = inputs.get("billingMode") or "PROVISIONED"
        if mode == "PAY_PER_REQUEST":
            return {"BillingMode": mode}
        return {
            "BillingMode": mode,
            "ProvisionedThroughput": {
                "ReadCapacityUnits": int(inputs.get("readCapacity") or 1),
                "WriteCapacityUnits": int(inputs.get("writeCapacity") or 1),
            },
        }


@dataclass(frozen=True)
class Stream:
    """aws:kinesis/stream:Stream; id is the ARN. Shard count, retention and tags change in place."""

    clients: Clients
    token = "aws:kinesis/stream:Stream"
    replace_on = frozenset({"name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        stream = physical_name(inputs, "name", name, 128)
        kinesis = self.clients("kinesis")
        kwargs: dict[str, Any] = {"StreamName": stream}
        if inputs.get("shardCount"):
            kwargs["ShardCount"] = int(inputs["shardCount"])
        with applying(self.token, name, "create"):
            kinesis.create_stream(**kwargs)
            kinesis.get_waiter("stream_exists").wait(StreamName=stream)
            if inputs.get("tags"):
                kinesis.add_tags_to_stream(
                    StreamName=stream, Tags={str(k): str(v) for k, v in inputs["tags"].items()}
                )
            if inputs.get("retentionPeriod") and int(inputs["retentionPeriod"]) > 24:
                kinesis.increase_stream_retention_period(
                    StreamName=stream, RetentionPeriodHours=int(inputs["retentionPeriod"])
                )
            arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
                "StreamARN"
            ]
        return arn, present(self.read(arn, {**inputs, "name": stream}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        kinesis = self.clients("kinesis")
        stream = id.split("/")[-1]
        with applying(self.token, id, "update"):
            if news.get("shardCount") and news.get("shardCount") != olds.get("shardCount"):
                kinesis.update_shard_count(
                    StreamName=stream,
                    TargetShardCount=int(news["shardCount"]),
                    ScalingType="UNIFORM_SCALING",
                )
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                kinesis.add_tags_to_stream(StreamName=stream, Tags=to_set)
            if to_remove:
                kinesis.remove_tags_from_stream(StreamName=stream, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": stream}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        kinesis = self.clients("kinesis")
        stream = id.split("/")[-1]
        with applying(self.token, id, "read"):
            answer = _missing(
                kinesis.describe_stream_summary, ("ResourceNotFoundException",), StreamName=stream
            )
            if answer is None:
                return None
            tags = kinesis.list_tags_for_stream(StreamName=stream).get("Tags", [])
        summary = answer["StreamDescriptionSummary"]
        if summary.get("StreamStatus") == "DELETING":
            return None
        outputs: dict[str, Any] = {
            **inputs,
            "name": stream,
            "arn": summary["StreamARN"],
            "retentionPeriod": float(summary.get("RetentionPeriodHours", 24)),
        }
        if "shardCount" in inputs:
            outputs["shardCount"] = float(summary.get("OpenShardCount", 0))
        return with_tags(outputs, pulumi_tags(tags))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ResourceNotFoundException"):
            self.clients("kinesis").delete_stream(
                StreamName=id.split("/")[-1], EnforceConsumerDeletion=True
            )


@dataclass(frozen=True)
class EventRule:
    """aws:cloudwatch/eventRule:EventRule; id is the name. Pattern, schedule, state and tags change in place."""

    clients: Clients
    token = "aws:cloudwatch/eventRule:EventRule"
    replace_on = frozenset({"name", "namePrefix", "eventBusName", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rule = physical_name(inputs, "name", name, 64)
        self._put(name, rule, inputs, "create")
        return rule, present(self.read(rule, {**inputs, "name": rule}), self.token, rule)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        events = self.clients("events")
        to_set, to_remove = tag_changes(olds, news)
        with applying(self.token, id, "update"):
            arn = events.describe_rule(Name=id, **self._bus(news))["Arn"]
            if to_set:
                events.tag_resource(ResourceARN=arn, Tags=aws_tags(to_set))
            if to_remove:
                events.untag_resource(ResourceARN=arn, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        events = self.clients("events")
        with applying(self.token, id, "read"):
            rule = _missing(
                events.describe_rule, ("ResourceNotFoundException",), Name=id, **self._bus(inputs)
            )
            if rule is None:
                return None
            tags = events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags", [])
        outputs: dict[str, Any] = {
            **inputs,
            "name": id,
            "arn": rule["Arn"],
            "state": rule.get("State", "ENABLED"),
        }
        if "eventPattern" in inputs or rule.get("EventPattern"):
            outputs["eventPattern"] = declared_json(
                rule.get("EventPattern", "{}"), inputs.get("eventPattern")
            )
        if "scheduleExpression" in inputs:
            outputs["scheduleExpression"] = rule.get("ScheduleExpression", "")
        if "description" in inputs:
            outputs["description"] = rule.get("Description", "")
        return with_tags(outputs, pulumi_tags(tags))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ResourceNotFoundException"):
            self.clients("events").delete_rule(Name=id, **self._bus(inputs))

    def _put(self, name: str, rule: str, inputs: dict[str, Any], action: str) -> None:
        kwargs: dict[str, Any] = {"Name": rule, **self._bus(inputs)}
        for key, parameter in (
            ("eventPattern", "EventPattern"),
            ("scheduleExpression", "ScheduleExpression"),
            ("description", "Description"),
            ("roleArn", "RoleArn"),
        ):
            if inputs.get(key):
                kwargs[parameter] = inputs[key]
        kwargs["State"] = inputs.get("state") or (
            "DISABLED" if inputs.get("isEnabled") is False else "ENABLED"
        )
        if inputs.get("tags") and action == "create":
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, action):
            self.clients("events").put_rule(**kwargs)

    @staticmethod
    def _bus(inputs: dict[str, Any]) -> dict[str, Any]:
        bus = inputs.get("eventBusName")
        return {"EventBusName": bus} if bus and bus != "default" else {}


@dataclass(frozen=True)
class EventTarget:
    """aws:cloudwatch/eventTarget:EventTarget; id is `<bus>-<rule>-<target id>`. The target changes in place."""

    clients: Clients
    token = "aws:cloudwatch/eventTarget:EventTarget"
    replace_on = frozenset({"rule", "targetId", "eventBusName", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        target_id = str(inputs.get("targetId") or name)
        self._put(name, {**inputs, "targetId": target_id}, "create")
        id = f"{self._prefix(inputs)}{target_id}"
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, {**news, "targetId": self._target_id(id, olds)}, "update")
        return present(self.read(id, news), self.token, id)

    @staticmethod
    def _prefix(inputs: dict[str, Any]) -> str:
        return f"{inputs.get('eventBusName') or 'default'}-{inputs['rule']}-"

    @classmethod
    def _target_id(cls, id: str, inputs: dict[str, Any]) -> str:
        """The program's targetId, or the one the provider chose, which only the id holds.

        targetId is optional and computed: a checkpoint's inputs lack it when
        the program left it out (aws-py-apigatewayv2-eventbridge does).
        """
        return str(inputs.get("targetId") or id.removeprefix(cls._prefix(inputs)))

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(
                self.clients("events").list_targets_by_rule,
                ("ResourceNotFoundException",),
                Rule=inputs["rule"],
                **EventRule._bus(inputs),
            )
        if answer is None:
            return None
        target_id = self._target_id(id, inputs)
        target = next((t for t in answer["Targets"] if t["Id"] == target_id), None)
        if target is None:
            return None
        outputs = {**inputs, "targetId": target_id, "arn": target["Arn"]}
        if "input" in inputs:
            outputs["input"] = declared_json(target.get("Input", ""), inputs["input"])
        if "roleArn" in inputs:
            outputs["roleArn"] = target.get("RoleArn", "")
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ResourceNotFoundException"):
            self.clients("events").remove_targets(
                Rule=inputs["rule"], Ids=[self._target_id(id, inputs)], **EventRule._bus(inputs)
            )

    def _put(self, name: str, inputs: dict[str, Any], action: str) -> None:
        target: dict[str, Any] = {"Id": inputs["targetId"], "Arn": inputs["arn"]}
        for key, parameter in (
            ("input", "Input"),
            ("inputPath", "InputPath"),
            ("roleArn", "RoleArn"),
        ):
            if inputs.get(key):
                target[parameter] = inputs[key]
        with applying(self.token, name, action):
            self.clients("events").put_targets(
                Rule=inputs["rule"], Targets=[target], **EventRule._bus(inputs)
            )


def appliers(clients: Clients) -> list[ResourceType]:
    """The queue, table, stream and event appliers."""
    return [
        Queue(clients),
        Table(clients),
        Stream(clients),
        EventRule(clients),
        EventTarget(clients),
    ]
