"""Provider-checked inputs: pulumi-aws's auto-names and `__defaults` (rollback/engine/embedded/checking.py)."""

from __future__ import annotations

import re

import pytest

from rollback.engine.embedded.checking import checked_inputs
from rollback.errors import EngineError

BUCKET = "aws:s3/bucket:Bucket"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"


def test_an_unnamed_resource_gets_name_dash_seven_hex_and_defaults() -> None:
    checked = checked_inputs(BUCKET, "Assets", {"tags": {"a": "b"}}, None, None)
    assert re.fullmatch(r"assets-[0-9a-f]{7}", checked["bucket"])  # lower-cased for buckets
    assert checked["__defaults"] == ["bucket"]
    assert checked["tags"] == {"a": "b"}
    assert checked_inputs(TARGET_GROUP, "Web", {}, None, None)["name"].startswith("Web-")


def test_a_named_resource_has_empty_defaults() -> None:
    assert checked_inputs(BUCKET, "assets", {"bucket": "mine"}, None, None) == {
        "bucket": "mine",
        "__defaults": [],
    }
    prefixed = checked_inputs(BUCKET, "assets", {"bucketPrefix": "logs-"}, None, None)
    assert "bucket" not in prefixed and prefixed["__defaults"] == []


def test_the_auto_name_is_kept_on_updates() -> None:
    first = checked_inputs(BUCKET, "assets", {}, None, None)
    again = checked_inputs(BUCKET, "assets", {"tags": {"x": "y"}}, first, None)
    assert again["bucket"] == first["bucket"]


def test_a_state_from_before_checked_inputs_keeps_its_physical_name() -> None:
    old_inputs = {"tags": {}}  # no __defaults: written by an older engine
    again = checked_inputs(BUCKET, "assets", {}, old_inputs, None, {"bucket": "assets-1234abc"})
    assert again["bucket"] == "assets-1234abc"


def test_a_name_too_long_for_its_type_is_refused_as_pulumi_does() -> None:
    with pytest.raises(EngineError, match="plus 7 random chars is longer than maximum length 32"):
        checked_inputs(TARGET_GROUP, "a-very-long-target-group-name", {}, None, None)
