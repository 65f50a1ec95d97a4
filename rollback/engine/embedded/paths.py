"""Pulumi's property paths, for the `ignoreChanges` and `replaceOnChanges` resource options.

A path names a value nested in a resource's inputs: `tags`, `tags.env`,
`tags["a.b"]`, `defaultActions[0].forward.targetGroups[*].weight`. The rules
follow Pulumi's own implementation, read from pulumi/pulumi:

- parsing: `sdk/go/common/resource/properties_path.go` (`parsePropertyPath`):
  a bare name runs up to the next `.` or `[`; `[N]` is an array index,
  `["..."]` a quoted key (`\\"` escapes a quote), `[*]` a wildcard.
- `reset`: the same file (`PropertyPath.Reset`): set the value at the path in
  the new inputs to the one in the old inputs; a leaf key absent from the old
  inputs is removed from the new; intermediate locations are never created
  and array lengths never change (such a path is reported as not applicable,
  and Pulumi only logs it).
- `contains`: the same file (`PropertyPath.Contains`): `a.b` contains `a.b.c`;
  `*` matches any key or index at its level.

Values are plain JSON-like Python values (dicts, lists, scalars); a secret is
the wrapped form of `rollback.engine.embedded.secrets` and is walked through,
staying secret (Pulumi marks a value reset from a secret context as secret).
"""

from __future__ import annotations

import copy
from typing import Any

from rollback.engine.embedded.secrets import is_secret, wrap_secret
from rollback.errors import UsageError

Path = tuple[str | int, ...]
WILDCARD = "*"


def parse(path: str) -> Path:
    """A path string as its elements; raises UsageError naming the path when it is malformed."""
    elements: list[str | int] = []
    rest = path
    if rest.startswith("."):
        raise UsageError(f"the property path {path!r} must start with a name or an index.")
    while rest:
        if rest[0] == ".":
            rest = rest[1:]
            if not rest:
                raise UsageError(f"the property path {path!r} must end with a name or an index.")
        elif rest[0] == "[":
            if rest[1:2] == '"':
                key, i = [], 2
                while True:
                    if i >= len(rest):
                        raise UsageError(f"the property path {path!r} misses a closing quote.")
                    if rest[i] == '"':
                        i += 1
                        break
                    if rest[i] == "\\" and rest[i + 1 : i + 2] == '"':
                        key.append('"')
                        i += 2
                    else:
                        key.append(rest[i])
                        i += 1
                if rest[i : i + 1] != "]":
                    raise UsageError(f"the property path {path!r} misses a closing bracket.")
                elements.append("".join(key))
                rest = rest[i + 1 :]
            else:
                end = rest.find("]")
                if end == -1:
                    raise UsageError(f"the property path {path!r} misses a closing bracket.")
                segment = rest[1:end]
                if segment == WILDCARD:
                    elements.append(WILDCARD)
                else:
                    try:
                        elements.append(int(segment))
                    except ValueError:
                        raise UsageError(
                            f"the property path {path!r} has an invalid array index {segment!r}."
                        ) from None
                rest = rest[end + 1 :]
        else:
            end = len(rest)
            for i, char in enumerate(rest):
                if char in ".[":
                    end = i
                    break
            elements.append(rest[:end])
            rest = rest[end:]
    return tuple(elements)


def contains(outer: Path, inner: Path) -> bool:
    """Whether `outer` names `inner` or one of its ancestors (`*` matches any one element)."""
    if len(inner) < len(outer):
        return False
    for mine, theirs in zip(outer, inner, strict=False):
        if mine == WILDCARD and isinstance(mine, str):
            continue
        if type(mine) is not type(theirs) or mine != theirs:
            return False
    return True


def reset(
    olds: dict[str, Any], news: dict[str, Any], paths: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """`news` with the value at each path put back to the one in `olds` (Pulumi's ignoreChanges).

    Returns the new inputs (a copy) and the paths that could not be applied
    (malformed, or adding or removing elements on the way), which Pulumi skips.
    """
    result = copy.deepcopy(news)
    invalid: list[str] = []
    holder = {"root": result}
    for text in paths:
        try:
            path = parse(text)
        except UsageError:
            # Pulumi skips a path it cannot parse (processIgnoreChanges: `continue`).
            invalid.append(text)
            continue
        if not _reset(("root", *path), {"root": olds}, holder, False, False):
            invalid.append(text)
    return holder["root"], invalid


def _unwrap(value: Any) -> tuple[Any, bool]:
    if is_secret(value):
        return _unwrap(value["value"])[0], True
    return value, False


def _reset(path: Path, old: Any, new: Any, old_secret: bool, new_secret: bool) -> bool:
    """One step of Pulumi's PropertyPath.reset; `new` is modified in place."""
    old, was = _unwrap(old)
    old_secret = old_secret or was
    new, was = _unwrap(new)
    new_secret = new_secret or was
    key = path[0]
    last = len(path) == 1

    def carried(value: Any) -> Any:
        return (
            wrap_secret(copy.deepcopy(value))
            if old_secret and not new_secret
            else copy.deepcopy(value)
        )

    if isinstance(key, int):
        if key < 0:
            return False
        old_list, new_list = isinstance(old, list), isinstance(new, list)
        if not old_list or not new_list:
            return not old_list and not new_list
        if last:
            if key >= len(old) and key >= len(new):
                return True
            if key >= len(old) or key >= len(new):
                return False
            new[key] = carried(old[key])
            return True
        if key >= len(old) or key >= len(new):
            return False
        return _reset(path[1:], old[key], new[key], old_secret, new_secret)
    if key == WILDCARD:
        if last:
            if isinstance(new, dict):
                if isinstance(old, dict):
                    for k, v in old.items():
                        new[k] = carried(v)
                    for k in [k for k in new if k not in old]:
                        del new[k]
                return True
            if isinstance(new, list):
                if isinstance(old, list):
                    for i, v in enumerate(old[: len(new)]):
                        new[i] = carried(v)
                    return len(old) == len(new)
                return True
            return False
        if isinstance(old, dict) and isinstance(new, dict):
            for k in old:
                if k not in new:
                    return False
                if not _reset(path[1:], old[k], new[k], old_secret, new_secret):
                    return False
            return True
        if isinstance(old, list) and isinstance(new, list):
            for i in range(min(len(old), len(new))):
                if not _reset(path[1:], old[i], new[i], old_secret, new_secret):
                    return False
            return len(old) == len(new)
        return False
    if last:
        if isinstance(old, dict) and key in old:
            if not isinstance(new, dict):
                return False
            new[key] = carried(old[key])
        elif isinstance(new, dict):
            new.pop(key, None)
        return True
    if not isinstance(old, dict) or not isinstance(new, dict):
        return not isinstance(old, dict) and not isinstance(new, dict)
    if key in old and key not in new:
        return False
    if key not in old and key not in new:
        return True
    if key not in old:
        # Pulumi walks on with a missing (null) old value: the leaf is then removed from new.
        return _reset(path[1:], None, new[key], old_secret, new_secret)
    return _reset(path[1:], old[key], new[key], old_secret, new_secret)


def changed_paths(olds: Any, news: Any, prefix: Path = ()) -> list[Path]:
    """The paths of the leaves that differ between two values (a detailed diff), secrets walked through."""
    olds, _ = _unwrap(olds)
    news, _ = _unwrap(news)
    if isinstance(olds, dict) and isinstance(news, dict):
        found: list[Path] = []
        for key in sorted(set(olds) | set(news)):
            if key not in olds or key not in news:
                found.append((*prefix, key))
            else:
                found.extend(changed_paths(olds[key], news[key], (*prefix, key)))
        return found
    if isinstance(olds, list) and isinstance(news, list) and len(olds) == len(news):
        found = []
        for i, (a, b) in enumerate(zip(olds, news, strict=True)):
            found.extend(changed_paths(a, b, (*prefix, i)))
        return found
    return [] if olds == news else [prefix]
