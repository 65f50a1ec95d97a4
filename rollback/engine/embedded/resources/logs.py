"""CloudWatch Logs: log groups, log streams and metric filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.failures import already_gone, applying, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = "ResourceNotFoundException"


def _group(logs: Any, name: str) -> dict[str, Any] | None:
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
        for group in page["logGroups"]:
            if group["logGroupName"] == name:
                found: dict[str, Any] = group
                return found
    return None


@dataclass(frozen=True)
class LogGroup:
    """aws:cloudwatch/logGroup:LogGroup; id is the name. Retention, KMS key and tags change in place."""

    clients: Clients
    token = "aws:cloudwatch/logGroup:LogGroup"
    replace_on = frozenset({"name", "namePrefix", "logGroupClass", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        logs = self.clients("logs")
        group = physical_name(inputs, "name", name, 512)
        kwargs: dict[str, Any] = {"logGroupName": group}
        if inputs.get("kmsKeyId"):
            kwargs["kmsKeyId"] = inputs["kmsKeyId"]
        if inputs.get("tags"):
            kwargs["tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
        with applying(self.token, name, "create"):
            logs.create_log_group(**kwargs)
            if inputs.get("retentionInDays"):
                logs.put_retention_policy(
                    logGroupName=group, retentionInDays=int(inputs["retentionInDays"])
                )
        return group, present(self.read(group, {**inputs, "name": group}), self.token, group)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        logs = self.clients("logs")
        with applying(self.token, id, "update"):
            if news.get("retentionInDays") != olds.get("retentionInDays"):
                if news.get("retentionInDays"):
                    logs.put_retention_policy(
                        logGroupName=id, retentionInDays=int(news["retentionInDays"])
                    )
                else:
                    logs.delete_retention_policy(logGroupName=id)
            if news.get("kmsKeyId") != olds.get("kmsKeyId"):
                if news.get("kmsKeyId"):
                    logs.associate_kms_key(logGroupName=id, kmsKeyId=news["kmsKeyId"])
                else:
                    logs.disassociate_kms_key(logGroupName=id)
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                logs.tag_log_group(logGroupName=id, tags=to_set)
            if to_remove:
                logs.untag_log_group(logGroupName=id, tags=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        logs = self.clients("logs")
        with applying(self.token, id, "read"):
            group = _group(logs, id)
            if group is None:
                return None
            tags = logs.list_tags_log_group(logGroupName=id).get("tags", {})
        outputs = {
            **inputs,
            "name": id,
            # The provider's arn drops the ":*" the API appends.
            "arn": str(group["arn"]).removesuffix(":*"),
            "retentionInDays": float(group.get("retentionInDays", 0)),
        }
        if "kmsKeyId" in inputs or group.get("kmsKeyId"):
            outputs["kmsKeyId"] = group.get("kmsKeyId", "")
        return with_tags(outputs, {str(k): str(v) for k, v in tags.items()})

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        if inputs.get("skipDestroy"):
            return
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("logs").delete_log_group(logGroupName=id)


@dataclass(frozen=True)
class LogStream:
    """aws:cloudwatch/logStream:LogStream; id is the name. Nothing changes in place."""

    clients: Clients
    token = "aws:cloudwatch/logStream:LogStream"
    replace_on = frozenset({"name", "logGroupName", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        stream = physical_name(inputs, "name", name, 512)
        with applying(self.token, name, "create"):
            self.clients("logs").create_log_stream(
                logGroupName=inputs["logGroupName"], logStreamName=stream
            )
        return stream, present(self.read(stream, {**inputs, "name": stream}), self.token, stream)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                streams = self.clients("logs").describe_log_streams(
                    logGroupName=inputs["logGroupName"], logStreamNamePrefix=id
                )["logStreams"]
            except ClientError:
                return None
        stream = next((s for s in streams if s["logStreamName"] == id), None)
        if stream is None:
            return None
        return {**inputs, "name": id, "arn": stream.get("arn", "")}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("logs").delete_log_stream(
                logGroupName=inputs["logGroupName"], logStreamName=id
            )


def _transformation(declared: dict[str, Any]) -> dict[str, Any]:
    aws: dict[str, Any] = {
        "metricName": declared["name"],
        "metricNamespace": declared["namespace"],
        "metricValue": str(declared["value"]),
    }
    if declared.get("defaultValue") not in (None, ""):
        aws["defaultValue"] = float(declared["defaultValue"])
    if declared.get("unit"):
        aws["unit"] = declared["unit"]
    return aws


@dataclass(frozen=True)
class LogMetricFilter:
    """aws:cloudwatch/logMetricFilter:LogMetricFilter; id is the name. Pattern and metric change in place."""

    clients: Clients
    token = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
    replace_on = frozenset({"name", "logGroupName", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        metric_filter = physical_name(inputs, "name", name, 512)
        self._put(name, metric_filter, inputs, "create")
        return metric_filter, present(
            self.read(metric_filter, {**inputs, "name": metric_filter}), self.token, metric_filter
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                filters = self.clients("logs").describe_metric_filters(
                    logGroupName=inputs["logGroupName"], filterNamePrefix=id
                )["metricFilters"]
            except ClientError:
                return None
        live = next((f for f in filters if f["filterName"] == id), None)
        if live is None:
            return None
        transformation = (live.get("metricTransformations") or [{}])[0]
        declared = dict(inputs.get("metricTransformation") or {})
        metric = {
            **declared,
            "name": transformation.get("metricName", ""),
            "namespace": transformation.get("metricNamespace", ""),
            "value": transformation.get("metricValue", ""),
        }
        return {
            **inputs,
            "name": id,
            "pattern": live.get("filterPattern", ""),
            "metricTransformation": metric,
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("logs").delete_metric_filter(
                logGroupName=inputs["logGroupName"], filterName=id
            )

    def _put(self, name: str, metric_filter: str, inputs: dict[str, Any], action: str) -> None:
        with applying(self.token, name, action):
            self.clients("logs").put_metric_filter(
                logGroupName=inputs["logGroupName"],
                filterName=metric_filter,
                filterPattern=str(inputs.get("pattern") or ""),
                metricTransformations=[_transformation(inputs["metricTransformation"])],
            )


def appliers(clients: Clients) -> list[ResourceType]:
    """The CloudWatch Logs appliers."""
    return [LogGroup(clients), LogStream(clients), LogMetricFilter(clients)]
