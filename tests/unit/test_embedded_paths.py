"""Pulumi's property paths (sdk/go/common/resource/properties_path.go), as the engine applies them."""

from __future__ import annotations

import pytest

from rollback.engine.embedded import paths
from rollback.engine.embedded.secrets import is_secret, wrap_secret
from rollback.errors import UsageError


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("root", ("root",)),
        ("root.nested", ("root", "nested")),
        ('root["nested"]', ("root", "nested")),
        ("root.array[100]", ("root", "array", 100)),
        ('root["key with \\"escaped\\" quotes"]', ("root", 'key with "escaped" quotes')),
        ('["root key with a ."][1]', ("root key with a .", 1)),
        ("root.array[*].field", ("root", "array", "*", "field")),
        ("foo-bar", ("foo-bar",)),
        (
            "defaultActions[0].forward.targetGroups",
            ("defaultActions", 0, "forward", "targetGroups"),
        ),
    ],
)
def test_parse_follows_pulumis_grammar(text: str, parsed: tuple[object, ...]) -> None:
    assert paths.parse(text) == parsed


@pytest.mark.parametrize("text", [".root", "root.", "root[", 'root["x', "root[x]"])
def test_malformed_paths_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        paths.parse(text)


LISTENER_OLD = {
    "port": 80,
    "defaultActions": [
        {
            "type": "forward",
            "forward": {"targetGroups": [{"arn": "b", "weight": 100}, {"arn": "g", "weight": 0}]},
        }
    ],
}
LISTENER_NEW = {
    "port": 8080,
    "defaultActions": [
        {
            "type": "forward",
            "forward": {"targetGroups": [{"arn": "b", "weight": 50}, {"arn": "g", "weight": 50}]},
        }
    ],
}


def test_reset_of_a_nested_list_path_keeps_the_old_value_and_the_rest_new() -> None:
    result, invalid = paths.reset(
        LISTENER_OLD, LISTENER_NEW, ["defaultActions[0].forward.targetGroups"]
    )
    assert invalid == []
    assert result["port"] == 8080
    assert result["defaultActions"] == LISTENER_OLD["defaultActions"]
    assert LISTENER_NEW["defaultActions"][0]["forward"]["targetGroups"][0]["weight"] == 50  # copy


def test_reset_through_a_wildcard() -> None:
    result, invalid = paths.reset(
        LISTENER_OLD, LISTENER_NEW, ["defaultActions[*].forward.targetGroups[*].weight"]
    )
    assert invalid == []
    weights = [tg["weight"] for tg in result["defaultActions"][0]["forward"]["targetGroups"]]
    assert weights == [100, 0]


def test_a_leaf_absent_from_the_old_inputs_is_removed_from_the_new() -> None:
    result, _ = paths.reset({"tags": {"a": "1"}}, {"tags": {"a": "1", "b": "2"}}, ["tags.b"])
    assert result == {"tags": {"a": "1"}}


def test_array_elements_are_never_added_or_removed() -> None:
    olds = {"list": [1, 2]}
    result, invalid = paths.reset(olds, {"list": [1]}, ["list[1]"])
    assert invalid == ["list[1]"]
    assert result == {"list": [1]}


def test_a_value_reset_from_a_secret_stays_secret() -> None:
    result, _ = paths.reset({"password": wrap_secret("old")}, {"password": "new"}, ["password"])
    assert is_secret(result["password"]) and result["password"]["value"] == "old"


def test_contains_with_wildcards() -> None:
    assert paths.contains(("foo", "bar", 1), ("foo", "bar", 1, "baz"))
    assert paths.contains(("foo", "*", "baz"), ("foo", "bar", "baz", "bam"))
    assert paths.contains(("*",), ("anything",))
    assert not paths.contains(("foo", "bar"), ("foo",))
    assert not paths.contains(("foo", 1), ("foo", "1"))


def test_changed_paths_are_leaves() -> None:
    assert paths.changed_paths(LISTENER_OLD, LISTENER_NEW) == [
        ("defaultActions", 0, "forward", "targetGroups", 0, "weight"),
        ("defaultActions", 0, "forward", "targetGroups", 1, "weight"),
        ("port",),
    ]


def test_a_malformed_path_is_skipped_as_pulumi_does() -> None:
    result, invalid = paths.reset({"a": 1}, {"a": 2}, ["a[", "a"])
    assert invalid == ["a["]
    assert result == {"a": 1}
