"""Frozen records of stacks and steps passed between the layers: topology,
checkpoint, step description, evidence. Validation happens at the edges (CLI
input, documents read from the store), through the `from_dict` functions.

A release's records live with its registry (`rollback.releases`) and a blob's
reference with the store (`rollback.store`): commands that only read releases
(`release list`) import neither this module nor the dataclasses it builds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rollback.errors import IntegrityError

COLORS = ("blue", "green")
TOPOLOGY_SCHEMA = 1
# What `Topology.db_instance_id` names: an RDS DB instance or an Aurora DB cluster.
DB_KINDS = ("instance", "cluster")


# Pulumi resource type -> the input that carries traffic weights. These belong to
# the toolkit after the first deploy (rollback/ownership.py): stack checks skip
# them, and the outcome check reads them instead.
TRAFFIC_OWNED: dict[str, str] = {
    "aws:lb/listener:Listener": "defaultActions",
    "aws:alb/listener:Listener": "defaultActions",
    "aws:lb/listenerRule:ListenerRule": "actions",
    "aws:alb/listenerRule:ListenerRule": "actions",
    "aws:route53/record:Record": "weightedRoutingPolicies",
}


@dataclass(frozen=True)
class Topology:
    """Where a stack's rollback-relevant resources are: the stack's `rollback` output.

    This is the contract between `stacks/` and `rollback/`; its schema is in
    docs/topology.md.
    """

    listener_arn: str
    target_groups: dict[str, str]  # colour -> target group ARN
    zone_id: str
    record_name: str
    record_type: str
    set_identifiers: dict[str, str]  # colour -> Route53 SetIdentifier
    db_instance_id: str
    health_urls: dict[str, list[str]]  # colour -> URLs
    alarms: dict[str, list[str]]  # colour -> CloudWatch alarm names
    live_color: str
    versions: dict[str, str]  # colour -> application version it runs
    load_balancer_arn: str = ""
    rule_arns: tuple[str, ...] = ()
    db_kind: str = "instance"  # one of DB_KINDS: what db_instance_id names
    artifact_bucket: str = ""
    artifact_key: str = ""
    # colour -> the artifact's key for the version that colour runs; `artifact_key`
    # (the live colour's) is the fallback for stacks that export only that.
    artifact_keys: dict[str, str] = field(default_factory=dict)
    # The tag on a colour's targets (instances) or target group naming the version it runs.
    version_tag: str = "AppVersion"
    schema: int = TOPOLOGY_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rule_arns"] = list(self.rule_arns)
        return data

    def artifact_key_of(self, colour: str) -> str:
        """Where the artifact of the version `colour` runs lives ('' when the stack names none)."""
        return self.artifact_keys.get(colour) or self.artifact_key

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        """Build from the stack output; raises IntegrityError when a field is missing."""
        try:
            return cls(
                listener_arn=str(data["listener_arn"]),
                target_groups=dict(data["target_groups"]),
                zone_id=str(data["zone_id"]),
                record_name=str(data["record_name"]),
                record_type=str(data["record_type"]),
                set_identifiers=dict(data["set_identifiers"]),
                db_instance_id=str(data["db_instance_id"]),
                health_urls={k: list(v) for k, v in dict(data["health_urls"]).items()},
                alarms={k: list(v) for k, v in dict(data["alarms"]).items()},
                live_color=str(data["live_color"]),
                versions=dict(data["versions"]),
                load_balancer_arn=str(data.get("load_balancer_arn", "")),
                rule_arns=tuple(data.get("rule_arns") or ()),
                db_kind=_db_kind(data.get("db_kind")),
                artifact_bucket=str(data.get("artifact_bucket", "")),
                artifact_key=str(data.get("artifact_key", "")),
                artifact_keys={
                    str(k): str(v) for k, v in dict(data.get("artifact_keys") or {}).items()
                },
                version_tag=str(data.get("version_tag") or "AppVersion"),
                schema=int(data.get("schema", TOPOLOGY_SCHEMA)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"the stack's `rollback` output is incomplete ({exc}); see docs/topology.md."
            ) from exc


def _db_kind(value: Any) -> str:
    kind = str(value or "instance")
    if kind not in DB_KINDS:
        raise ValueError(f"db_kind {kind!r} is not one of {', '.join(DB_KINDS)}")
    return kind


@dataclass(frozen=True)
class Checkpoint:
    """A Pulumi deployment, version 3: what `pulumi stack export` prints."""

    deployment: dict[str, Any]
    version: int = 3

    @property
    def resources(self) -> list[dict[str, Any]]:
        return list(self.deployment.get("resources") or [])

    def outputs(self) -> dict[str, Any]:
        """The stack resource's outputs (the program's exports)."""
        for res in self.resources:
            if res.get("type") == "pulumi:pulumi:Stack":
                return dict(res.get("outputs") or {})
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "deployment": self.deployment}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        if data.get("version") != 3 or not isinstance(data.get("deployment"), dict):
            raise IntegrityError(
                "checkpoint is not a Pulumi deployment of version 3; check the store."
            )
        return cls(deployment=data["deployment"], version=3)


@dataclass(frozen=True)
class Evidence:
    """What a verify read from the cloud: the API, when, and what it said."""

    api: str
    at: str
    observed: dict[str, Any]
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class StepDescription:
    """What a step will do, in words and as data."""

    kind: str
    summary: str
    changes: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    expected_seconds: float = 0.0
