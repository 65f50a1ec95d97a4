"""Build and check a stack's `rollback` output from the program's own resources.

Use it in a Pulumi program (the toolkit installed beside pulumi and pulumi-aws):

    from rollback.pulumi_topology import rollback_topology

    pulumi.export("rollback", rollback_topology(
        listener_arn=listener,                      # aws.lb.Listener (or its ARN)
        target_groups={"blue": tg_blue, "green": tg_green},
        zone_id=zone, record_name="app.example.com",
        db_instance_id=db,                          # aws.rds.Instance or aws.rds.Cluster
                                                    # (db_kind follows: instance or cluster)
        health_urls={"blue": [url_blue], "green": [url_green]},
        alarms={"blue": [alarm_blue], "green": [alarm_green]},
        live_color="blue", versions={"blue": "1.4.0", "green": "1.5.0"},
    ))

Every field takes what `rollback.models.Topology` holds, or the resource that
holds it (a listener, target group, rule, load balancer for ARNs; a zone for
`zone_id`; a DB instance or cluster for `db_instance_id`; alarms for their
names; a bucket for `artifact_bucket`). Plain values are checked when the
program runs (colours agree across fields, the live colour is one of them):
a mistake stops the program with one sentence before any resource changes.
The resolved output is checked again with `Topology.from_dict`, the very
reader the toolkit uses, so a stack cannot export a topology it cannot read.

Imports pulumi: import this module only from a Pulumi program.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from rollback.errors import UsageError
from rollback.models import DB_KINDS, TOPOLOGY_SCHEMA, Topology

RECORD_TYPES = ("CNAME", "A", "AAAA")


class TopologyError(UsageError):
    """The `rollback` output a program declares is inconsistent."""


def _arn(value: Any) -> Any:
    """A resource's ARN output, or the value itself (a string or an Output of one)."""
    if isinstance(value, pulumi.CustomResource) and hasattr(value, "arn"):
        return value.arn
    return value


def _zone_id(value: Any) -> Any:
    if isinstance(value, pulumi.CustomResource) and hasattr(value, "zone_id"):
        return value.zone_id
    return value


def _database_id(value: Any) -> Any:
    """A DB instance's identifier or an Aurora cluster's cluster identifier."""
    if isinstance(value, pulumi.CustomResource):
        for attribute in ("identifier", "cluster_identifier"):
            if hasattr(value, attribute):
                return getattr(value, attribute)
    return value


def _database_kind(value: Any, asked: str | None) -> str:
    """`asked`, else `cluster` for an Aurora cluster resource, else `instance`."""
    if asked is not None:
        if asked not in DB_KINDS:
            raise TopologyError(
                f"the rollback topology's db_kind {asked!r} is not one of {', '.join(DB_KINDS)}."
            )
        return asked
    resource = isinstance(value, pulumi.CustomResource)
    if resource and hasattr(value, "cluster_identifier") and not hasattr(value, "identifier"):
        return "cluster"
    return "instance"


def _alarm_name(value: Any) -> Any:
    if isinstance(value, pulumi.CustomResource) and hasattr(value, "name"):
        return value.name
    return value


def _bucket_name(value: Any) -> Any:
    if isinstance(value, pulumi.CustomResource) and hasattr(value, "bucket"):
        return value.bucket
    return value


def check_colors(
    target_groups: Mapping[str, Any],
    set_identifiers: Mapping[str, Any],
    health_urls: Mapping[str, Sequence[Any]],
    alarms: Mapping[str, Sequence[Any]],
    live_color: str,
    versions: Mapping[str, Any],
    record_type: str,
) -> None:
    """Raise TopologyError when the colours or the record type do not agree."""
    colors = set(target_groups)
    if len(colors) < 2:
        raise TopologyError(
            f"the rollback topology needs at least two colours of target groups, got {sorted(colors)}."
        )
    for field, mapping in (
        ("set_identifiers", set_identifiers),
        ("versions", versions),
        ("health_urls", health_urls),
    ):
        if set(mapping) != colors:
            raise TopologyError(
                f"the rollback topology's {field} names colours {sorted(mapping)}, "
                f"but the target groups are {sorted(colors)}; give one entry per colour."
            )
    if not set(alarms) <= colors:
        raise TopologyError(
            f"the rollback topology's alarms name colours {sorted(set(alarms) - colors)} "
            f"that have no target group ({sorted(colors)})."
        )
    if live_color not in colors:
        raise TopologyError(
            f"the rollback topology's live colour {live_color!r} is not one of {sorted(colors)}."
        )
    empty = sorted(c for c, urls in health_urls.items() if not urls)
    if empty:
        raise TopologyError(f"the rollback topology has no health URL for {', '.join(empty)}.")
    if record_type not in RECORD_TYPES:
        raise TopologyError(
            f"the rollback topology's record_type {record_type!r} is not one of {', '.join(RECORD_TYPES)}."
        )


def rollback_topology(
    *,
    listener_arn: Any,
    target_groups: Mapping[str, Any],
    zone_id: Any,
    record_name: Any,
    db_instance_id: Any,
    health_urls: Mapping[str, Sequence[Any]],
    live_color: str,
    versions: Mapping[str, Any],
    alarms: Mapping[str, Sequence[Any]] | None = None,
    set_identifiers: Mapping[str, Any] | None = None,
    record_type: str = "CNAME",
    load_balancer_arn: Any = "",
    rule_arns: Sequence[Any] = (),
    db_kind: str | None = None,
    artifact_bucket: Any = "",
    artifact_key: Any = "",
    artifact_keys: Mapping[str, Any] | None = None,
    version_tag: str = "AppVersion",
    schema: int = TOPOLOGY_SCHEMA,
) -> pulumi.Output[dict[str, Any]]:
    """The `rollback` output for `pulumi.export("rollback", ...)`, checked now and once resolved.

    `set_identifiers` defaults to each colour's own name; `alarms` to none.
    `db_kind` (instance or cluster) defaults to what `db_instance_id` is: an
    aws.rds.Cluster is a cluster, anything else an instance.
    `artifact_keys` names each colour's artifact key (the outcome check and the
    artifact step use the target colour's); `version_tag` is the tag on each
    colour's instances (or target group) that says which version it runs.
    Raises TopologyError (while the program runs) on inconsistent colours.
    """
    identifiers = (
        dict(set_identifiers)
        if set_identifiers is not None
        else {color: color for color in target_groups}
    )
    alarm_map = {color: list(names) for color, names in (alarms or {}).items()}
    check_colors(
        target_groups, identifiers, health_urls, alarm_map, live_color, versions, record_type
    )
    topology: dict[str, Any] = {
        "schema": schema,
        "listener_arn": _arn(listener_arn),
        "load_balancer_arn": _arn(load_balancer_arn),
        "rule_arns": [_arn(rule) for rule in rule_arns],
        "target_groups": {color: _arn(tg) for color, tg in target_groups.items()},
        "zone_id": _zone_id(zone_id),
        "record_name": record_name,
        "record_type": record_type,
        "set_identifiers": identifiers,
        "db_instance_id": _database_id(db_instance_id),
        "db_kind": _database_kind(db_instance_id, db_kind),
        "health_urls": {color: list(urls) for color, urls in health_urls.items()},
        "alarms": {
            color: [_alarm_name(a) for a in alarm_map.get(color, [])] for color in target_groups
        },
        "live_color": live_color,
        "versions": dict(versions),
        "artifact_bucket": _bucket_name(artifact_bucket),
        "artifact_key": artifact_key,
        "artifact_keys": dict(artifact_keys or {}),
        "version_tag": version_tag,
    }
    return pulumi.Output.from_input(topology).apply(_checked)


def _checked(resolved: dict[str, Any]) -> dict[str, Any]:
    """The resolved topology, read back with the toolkit's own reader (IntegrityError if it cannot).

    The SDK runs this only once every value is known (never on a preview's unknowns).
    """
    Topology.from_dict(resolved)
    return resolved
