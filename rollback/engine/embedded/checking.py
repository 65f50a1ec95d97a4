"""Inputs as the AWS provider checks them: auto-names and `__defaults`, as pulumi-aws records them.

pulumi-aws is a Terraform-bridged provider. Its `Check` fills the name
property the program left out with the resource's logical name, a `-` and
seven random hex characters (pulumi-terraform-bridge,
pkg/tfbridge/info/autonaming.go `AutoName`, `Randlen: 7`; the suffix from
pulumi/pulumi sdk/go/common/resource/resource_id.go `NewUniqueName`), some
lower-cased first (pulumi-aws provider/resources.go, e.g. `aws_s3_bucket`:
`AutoNameTransform("bucket", 63, strings.ToLower)`). The checked inputs list
the properties so filled under `__defaults` (pkg/tfbridge/schema.go,
`reservedkeys.Defaults`), and an update reuses the old value of a defaulted
property, so the name is stable until the resource is replaced, when Check
runs again without old inputs and a new name is drawn.

The engine records these checked inputs in the checkpoint, which is what
Pulumi would have written: imported into Pulumi, an auto-named resource is
then not replaced.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from rollback.errors import EngineError

DEFAULTS_KEY = "__defaults"
RANDOM_LENGTH = 7


@dataclass(frozen=True)
class AutoName:
    """The property pulumi-aws auto-names for a type, its maximum length, and whether it is lower-cased."""

    key: str
    max_length: int = 255
    lower: bool = False


# The types the embedded engine applies that pulumi-aws auto-names. An applier
# may declare its own `autoname: AutoName` attribute, which wins over this table.
AUTONAMES: dict[str, AutoName] = {
    "aws:s3/bucket:Bucket": AutoName("bucket", 63, lower=True),
    "aws:lb/loadBalancer:LoadBalancer": AutoName("name", 32),
    "aws:lb/targetGroup:TargetGroup": AutoName("name", 32),
    "aws:rds/instance:Instance": AutoName("identifier", 255, lower=True),
    "aws:rds/subnetGroup:SubnetGroup": AutoName("name", 255, lower=True),
    "aws:ec2/securityGroup:SecurityGroup": AutoName("name", 255),
    "aws:cloudwatch/metricAlarm:MetricAlarm": AutoName("name", 255),
}


def autoname_of(token: str, applier: Any) -> AutoName | None:
    declared = getattr(applier, "autoname", None)
    if isinstance(declared, AutoName):
        return declared
    return AUTONAMES.get(token)


def unique_name(logical: str, spec: AutoName) -> str:
    """`<logical>-<7 hex>`; raises EngineError, as Pulumi does, when that is longer than allowed."""
    prefix = (logical.lower() if spec.lower else logical) + "-"
    if len(prefix) + RANDOM_LENGTH > spec.max_length:
        raise EngineError(
            f"name '{prefix}' plus {RANDOM_LENGTH} random chars is longer than maximum length "
            f"{spec.max_length}; give the resource a shorter name or set its `{spec.key}`.",
            name=logical,
        )
    return prefix + secrets.token_hex(4)[:RANDOM_LENGTH]


def checked_inputs(
    token: str,
    logical: str,
    news: dict[str, Any],
    olds: dict[str, Any] | None,
    applier: Any,
    old_outputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The program's inputs with the provider's auto-name and `__defaults`; `olds` keeps an old name.

    A state written before inputs were checked (no `__defaults`) keeps the
    name it has in its outputs: upgrading the engine never renames anything.
    """
    checked = {k: v for k, v in news.items() if k != DEFAULTS_KEY}
    defaults: list[str] = []
    spec = autoname_of(token, applier)
    if spec is not None and _absent(news.get(spec.key)) and _absent(news.get(f"{spec.key}Prefix")):
        old_defaults = (olds or {}).get(DEFAULTS_KEY) or []
        if olds is not None and spec.key in old_defaults and olds.get(spec.key):
            checked[spec.key] = olds[spec.key]
        elif olds is not None and DEFAULTS_KEY not in olds and (old_outputs or {}).get(spec.key):
            checked[spec.key] = (old_outputs or {})[spec.key]
        else:
            checked[spec.key] = unique_name(logical, spec)
        defaults.append(spec.key)
    checked[DEFAULTS_KEY] = defaults
    return checked


def _absent(value: Any) -> bool:
    return value is None or value == ""
