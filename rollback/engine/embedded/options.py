"""Pulumi's resource options, decided the way Pulumi's engine decides them.

Each rule names the file of pulumi/pulumi it follows (read at commit
1b5949891b3c; see docs/embedded-engine.md for the whole list):

- `ignoreChanges`: before diffing, each ignored path of the new inputs is
  reset to its value in the old inputs (`processIgnoreChanges` in
  pkg/resource/deploy/step_generator.go, `PropertyPath.Reset` in
  sdk/go/common/resource/properties_path.go). A create has no old inputs,
  so nothing is ignored. The reset inputs are what the checkpoint records.
- `replaceOnChanges`: a change at or under one of the paths turns an update
  into a replacement (`applyReplaceOnChanges`, step_generator.go;
  `PropertyPath.Contains`, properties_path.go).
- `protect`: a replacement is refused when the old and new state are both
  protected (step_generator.go, "unable to replace resource ... as it is
  currently marked for protection"); a delete is refused when the old state
  is protected (pkg/resource/deploy/step.go, `deleteProtectedError`).
- `deleteBeforeReplace`: the program's choice wins over the provider's
  (step_generator.go, `goal.DeleteBeforeReplace`).
- `retainOnDelete`: a delete (also of a replaced resource) drops the state
  and leaves the cloud alone (step.go, `DeleteStep.Apply`).
- `customTimeouts`: Go duration strings, kept in state as seconds
  (`generateTimeoutInSeconds`, pkg/resource/deploy/source_eval.go;
  sdk/go/common/resource/custom_timeouts.go).
- `import`: a resource with an import id that the state does not hold yet is
  read, not created; replacing a resource that still declares an import id
  is an error (step_generator.go, "previously-imported resources that still
  specify an ID may not be replaced").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rollback.engine.embedded import paths
from rollback.engine.embedded.checkpoint import json_values
from rollback.engine.embedded.secrets import reveal
from rollback.errors import EngineError, UsageError

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


@dataclass(frozen=True)
class Decision:
    """What to do with one registered resource: create | same | update | replace."""

    op: str
    diff: tuple[str, ...]  # top-level input names that differ
    inputs: dict[str, Any]  # the inputs to record: ignored paths reset to the old values


def duration_seconds(text: str) -> float:
    """A Go duration (`5m`, `1h30m`, `90s`) in seconds; raises UsageError as Pulumi words it."""
    rest = text.strip()
    sign = -1.0 if rest.startswith("-") else 1.0
    rest = rest.lstrip("+-")
    if rest == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if match is None:
            raise UsageError(f"unable to parse customTimeout Value {text}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not rest:
        raise UsageError(f"unable to parse customTimeout Value {text}")
    return sign * total


def timeouts_seconds(timeouts: dict[str, str]) -> dict[str, float]:
    return {op: duration_seconds(value) for op, value in timeouts.items() if value}


def normalised(value: Any) -> Any:
    """A value as compared between runs: secrets unwrapped, integral floats as ints, no null keys."""
    return _drop_nulls(json_values(reveal(value)))


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def with_ignored(
    news: dict[str, Any], olds: dict[str, Any] | None, ignore_changes: tuple[str, ...], urn: str
) -> dict[str, Any]:
    """The new inputs with every ignored path reset to the old inputs (no old inputs: unchanged)."""
    if olds is None or not ignore_changes:
        return dict(news)
    result, invalid = paths.reset(olds, news, list(ignore_changes))
    if invalid:
        # Pulumi only informs about these (processIgnoreChanges): the value stays as declared.
        import logging

        logging.getLogger(__name__).warning(
            "%s: cannot ignore changes in malformed paths or added or removed elements of: %s",
            urn,
            ", ".join(repr(p) for p in invalid),
        )
    return result


def decide(
    urn: str,
    news: dict[str, Any],
    olds: dict[str, Any] | None,
    *,
    ignore_changes: tuple[str, ...] = (),
    replace_on: frozenset[str] = frozenset(),
    replace_on_changes: tuple[str, ...] = (),
) -> Decision:
    """Pulumi's diff for one resource, with the provider's replace-on keys and the program's options."""
    inputs = with_ignored(news, olds, ignore_changes, urn)
    if olds is None:
        return Decision("create", (), inputs)
    # `__defaults` is the provider's bookkeeping, not a property: never a change by itself.
    new_plain = {k: v for k, v in normalised(inputs).items() if k != "__defaults"}
    old_plain = {k: v for k, v in normalised(olds).items() if k != "__defaults"}
    changed = paths.changed_paths(old_plain, new_plain)
    if not changed:
        return Decision("same", (), inputs)
    diff = tuple(sorted({str(p[0]) for p in changed if p}))
    try:
        triggers = [paths.parse(p) for p in replace_on_changes]
    except UsageError as exc:
        raise EngineError(f"{urn}: replaceOnChanges: {exc}", urn=urn) from exc
    replace = any(key in replace_on for key in diff) or any(
        paths.contains(trigger, path) or paths.contains(trigger, path[:1])
        for trigger in triggers
        for path in changed
    )
    return Decision("replace" if replace else "update", diff, inputs)


def refuse_protected_replace(urn: str) -> EngineError:
    return EngineError(
        f"the resource {urn} is protected and cannot be replaced, so nothing was changed: "
        "remove its `protect` option and run `stack up` before changing it.",
        urn=urn,
    )


def refuse_protected_delete(urns: list[str]) -> EngineError:
    names = ", ".join(urns)
    return EngineError(
        f"the protected resource(s) {names} cannot be deleted, so nothing was changed: set "
        "`protect=False` on them and run `stack up` before removing them.",
        urns=urns,
    )
