"""CloudWatch: the state of named metric and composite alarms; metric datapoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollback.aws.failures import translated


@dataclass(frozen=True)
class AlarmState:
    """One alarm as describe_alarms reports it."""

    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA
    reason: str
    updated_at: str


class Alarms:
    """Typed access to describe_alarms."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def states(self, names: list[str]) -> dict[str, AlarmState]:
        """The named alarms that exist, keyed by name (metric and composite alarms).

        A name that is absent from the result does not exist; the caller decides
        what that means. Raises CloudError when the call fails.
        """
        found: dict[str, AlarmState] = {}
        # describe_alarms takes at most 100 names per call.
        for start in range(0, len(names), 100):
            chunk = names[start : start + 100]
            with translated(f"reading alarms {', '.join(chunk)}"):
                pages = self.client.get_paginator("describe_alarms").paginate(
                    AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
                )
                for page in pages:
                    for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                        updated = alarm.get("StateUpdatedTimestamp")
                        found[alarm["AlarmName"]] = AlarmState(
                            name=alarm["AlarmName"],
                            state=alarm["StateValue"],
                            reason=alarm.get("StateReason", ""),
                            updated_at=updated.isoformat() if updated else "",
                        )
        return found


class Metrics:
    """Typed access to get_metric_data."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_metric_data(
        self, queries: list[dict[str, Any]], start: datetime, end: datetime
    ) -> dict[str, list[float]]:
        """Each query's datapoint values (query id -> values, oldest first), all pages read.

        A query with no datapoints in [start, end) maps to []. Raises
        CloudError when the call fails (moto, for one, cannot compute
        percentile statistics such as p99 and answers HTTP 500).
        """
        found: dict[str, list[float]] = {q["Id"]: [] for q in queries}
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        with translated(f"reading metrics {', '.join(q['Id'] for q in queries)}"):
            while True:
                page = self.client.get_metric_data(**kwargs)
                for result in page.get("MetricDataResults", []):
                    found.setdefault(result["Id"], []).extend(
                        float(v) for v in result.get("Values", []) if v is not None
                    )
                if not page.get("NextToken"):
                    return found
                kwargs["NextToken"] = page["NextToken"]
