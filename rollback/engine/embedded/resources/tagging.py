"""Pulumi `tags` maps to and from the AWS tag shapes, and the tag outputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def aws_tags(
    tags: Mapping[str, Any] | None, key: str = "Key", value: str = "Value"
) -> list[dict[str, str]]:
    """`{"k": "v"}` -> `[{"Key": "k", "Value": "v"}]` (the key names vary by service)."""
    return [{key: str(k), value: str(v)} for k, v in (tags or {}).items()]


def pulumi_tags(
    tags: Iterable[Mapping[str, Any]] | None, key: str = "Key", value: str = "Value"
) -> dict[str, str]:
    """`[{"Key": "k", "Value": "v"}]` -> `{"k": "v"}`."""
    return {str(t[key]): str(t.get(value, "")) for t in tags or ()}


def with_tags(outputs: dict[str, Any], live: Mapping[str, str]) -> dict[str, Any]:
    """Set `tags` and `tagsAll` from the live tags.

    `tags` stays absent when the program set none and the cloud has none, so a
    read matches the create outputs exactly.
    """
    if live or "tags" in outputs:
        outputs["tags"] = dict(live)
    outputs["tagsAll"] = dict(live)
    return outputs


def tag_changes(
    olds: Mapping[str, Any], news: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """(tags to set, tag keys to remove) to go from olds' `tags` to news' `tags`."""
    old = {str(k): str(v) for k, v in (olds.get("tags") or {}).items()}
    new = {str(k): str(v) for k, v in (news.get("tags") or {}).items()}
    to_set = {k: v for k, v in new.items() if old.get(k) != v}
    return to_set, [k for k in old if k not in new]
