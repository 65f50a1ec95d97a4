"""CloudWatch metric alarms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

# Pulumi input -> (PutMetricAlarm parameter, type); the same key names come back from DescribeAlarms.
_SCALARS = {
    "comparisonOperator": ("ComparisonOperator", str),
    "evaluationPeriods": ("EvaluationPeriods", int),
    "metricName": ("MetricName", str),
    "namespace": ("Namespace", str),
    "period": ("Period", int),
    "statistic": ("Statistic", str),
    "extendedStatistic": ("ExtendedStatistic", str),
    "threshold": ("Threshold", float),
    "thresholdMetricId": ("ThresholdMetricId", str),
    "actionsEnabled": ("ActionsEnabled", bool),
    "alarmDescription": ("AlarmDescription", str),
    "datapointsToAlarm": ("DatapointsToAlarm", int),
    "unit": ("Unit", str),
    "treatMissingData": ("TreatMissingData", str),
    "evaluateLowSampleCountPercentiles": ("EvaluateLowSampleCountPercentile", str),
}
_ACTIONS = {
    "alarmActions": "AlarmActions",
    "okActions": "OKActions",
    "insufficientDataActions": "InsufficientDataActions",
}


def _dimensions(dimensions: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"Name": str(k), "Value": str(v)} for k, v in (dimensions or {}).items()]


def _aws_query(query: dict[str, Any]) -> dict[str, Any]:
    """A Pulumi metricQuery -> a CloudWatch MetricDataQuery."""
    aws: dict[str, Any] = {"Id": query["id"], "ReturnData": bool(query.get("returnData", False))}
    for key, parameter in (
        ("expression", "Expression"),
        ("label", "Label"),
        ("accountId", "AccountId"),
    ):
        if query.get(key):
            aws[parameter] = query[key]
    if query.get("period"):
        aws["Period"] = int(query["period"])
    metric = query.get("metric")
    if metric:
        stat: dict[str, Any] = {
            "Metric": {
                "Namespace": metric.get("namespace", ""),
                "MetricName": metric["metricName"],
                "Dimensions": _dimensions(metric.get("dimensions")),
            },
            "Period": int(metric["period"]),
            "Stat": metric["stat"],
        }
        if metric.get("unit"):
            stat["Unit"] = metric["unit"]
        aws["MetricStat"] = stat
    return aws


def _pulumi_query(aws: dict[str, Any]) -> dict[str, Any]:
    query: dict[str, Any] = {"id": aws["Id"], "returnData": bool(aws.get("ReturnData", False))}
    for key, parameter in (
        ("expression", "Expression"),
        ("label", "Label"),
        ("accountId", "AccountId"),
    ):
        if aws.get(parameter):
            query[key] = aws[parameter]
    if aws.get("Period"):
        query["period"] = float(aws["Period"])
    stat = aws.get("MetricStat")
    if stat:
        metric = {
            "namespace": stat["Metric"].get("Namespace", ""),
            "metricName": stat["Metric"]["MetricName"],
            "dimensions": {d["Name"]: d["Value"] for d in stat["Metric"].get("Dimensions", [])},
            "period": float(stat["Period"]),
            "stat": stat["Stat"],
        }
        if stat.get("Unit"):
            metric["unit"] = stat["Unit"]
        query["metric"] = metric
    return query


@dataclass(frozen=True)
class MetricAlarm:
    """aws:cloudwatch/metricAlarm:MetricAlarm; id is the alarm name.

    Everything but the name changes in place: PutMetricAlarm rewrites the whole
    alarm, tags go through TagResource/UntagResource.
    """

    clients: Clients
    token = "aws:cloudwatch/metricAlarm:MetricAlarm"
    replace_on = frozenset({"name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        alarm = physical_name(inputs, "name", name, 255)
        with applying(self.token, name, "create"):
            self.clients("cloudwatch").put_metric_alarm(
                **self._parameters(alarm, inputs), Tags=aws_tags(inputs.get("tags"))
            )
        return alarm, present(self.read(alarm, {**inputs, "name": alarm}), self.token, alarm)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        cloudwatch = self.clients("cloudwatch")
        with applying(self.token, id, "update"):
            cloudwatch.put_metric_alarm(**self._parameters(id, news))
            to_set, to_remove = tag_changes(olds, news)
            if to_set or to_remove:
                arn = cloudwatch.describe_alarms(AlarmNames=[id])["MetricAlarms"][0]["AlarmArn"]
                if to_set:
                    cloudwatch.tag_resource(ResourceARN=arn, Tags=aws_tags(to_set))
                if to_remove:
                    cloudwatch.untag_resource(ResourceARN=arn, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        cloudwatch = self.clients("cloudwatch")
        with applying(self.token, id, "read"):
            alarms = cloudwatch.describe_alarms(AlarmNames=[id], AlarmTypes=["MetricAlarm"])[
                "MetricAlarms"
            ]
            if not alarms:
                return None
            alarm = alarms[0]
            tags = pulumi_tags(
                cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags")
            )
        outputs: dict[str, Any] = {**inputs, "name": alarm["AlarmName"], "arn": alarm["AlarmArn"]}
        for key, (parameter, kind) in _SCALARS.items():
            if parameter in alarm:
                outputs[key] = float(alarm[parameter]) if kind in (int, float) else alarm[parameter]
        for key, parameter in _ACTIONS.items():
            if alarm.get(parameter) or key in inputs:
                outputs[key] = in_declared_order(list(alarm.get(parameter, [])), inputs.get(key))
        if alarm.get("Dimensions") or "dimensions" in inputs:
            outputs["dimensions"] = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        if alarm.get("Metrics") or "metricQueries" in inputs:
            outputs["metricQueries"] = [_pulumi_query(q) for q in alarm.get("Metrics", [])]
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        cloudwatch = self.clients("cloudwatch")
        with applying(self.token, id, "delete"), already_gone("ResourceNotFound"):
            cloudwatch.delete_alarms(AlarmNames=[id])

    def _parameters(self, alarm: str, inputs: dict[str, Any]) -> dict[str, Any]:
        parameters: dict[str, Any] = {"AlarmName": alarm}
        for key, (parameter, kind) in _SCALARS.items():
            if inputs.get(key) is not None:
                parameters[parameter] = kind(inputs[key])
        for key, parameter in _ACTIONS.items():
            if inputs.get(key):
                parameters[parameter] = list(inputs[key])
        if inputs.get("dimensions"):
            parameters["Dimensions"] = _dimensions(inputs["dimensions"])
        if inputs.get("metricQueries"):
            parameters["Metrics"] = [_aws_query(q) for q in inputs["metricQueries"]]
        return parameters


def appliers(clients: Clients) -> list[ResourceType]:
    """The CloudWatch appliers."""
    return [MetricAlarm(clients)]
