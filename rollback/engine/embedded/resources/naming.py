"""Physical names for resources the program left unnamed, as Pulumi's auto-naming does."""

from __future__ import annotations

import secrets
from typing import Any


def physical_name(inputs: dict[str, Any], key: str, logical: str, max_length: int = 255) -> str:
    """The name input `key`, or `<logical>-<7 hex>` (shortened to max_length) when absent.

    `<key>Prefix` (e.g. `namePrefix`) is honoured like Pulumi does.
    """
    given = inputs.get(key)
    if given:
        return str(given)
    prefix = inputs.get(f"{key}Prefix")
    suffix = secrets.token_hex(4)[:7]
    if prefix:
        return f"{prefix}{suffix}"[:max_length]
    return f"{logical[: max_length - 8]}-{suffix}"


def partition_of(region: str) -> str:
    """The ARN partition of a region: `aws-cn` in China, `aws-us-gov` in GovCloud, else `aws`."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
