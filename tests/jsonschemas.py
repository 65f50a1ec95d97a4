"""Validate a command's `-o json` document against its schema in docs/schemas/.

`docs/schemas/<command path with dashes>.json` (`release-list.json`), and
`error.json` for every error document. Functional tests validate each document
they parse (tests/functional/conftest.py `parse_json`); unit tests validate the
commands they run in-process.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from rollback.cli.main import COMMANDS, GLOBAL_OPTIONS, hoist_global_options

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"
GROUPS = frozenset({"cloud", "release", "stack", "lock", "agent"})  # commands with subcommands


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(loaded)
    return loaded


def command_path(args: list[str]) -> str:
    """`release list` from `['-o', 'json', 'release', 'list', '--stack', 'a/b']`."""
    words = hoist_global_options(list(args))
    i = 0
    while i < len(words) and words[i] in GLOBAL_OPTIONS:
        i += 2 if GLOBAL_OPTIONS[words[i]] else 1
    while i < len(words) and words[i].split("=", 1)[0] in GLOBAL_OPTIONS:
        i += 1
    command = words[i]
    assert command in COMMANDS, f"no command in {args}"
    if command in GROUPS:
        return f"{command} {words[i + 1]}"
    return command


def schema_names(args: list[str], document: Any) -> list[str]:
    """The schemas one of which the document must match."""
    if isinstance(document, dict) and {"error", "exit_code", "message"} <= set(document):
        return ["error"]
    path = command_path(args).replace(" ", "-")
    return ["resume", "cutover"] if path == "resume" else [path]


def validate(args: list[str], document: Any) -> str:
    """Raise AssertionError naming every mismatch unless the document fits its schema; returns its name."""
    problems = []
    for name in schema_names(args, document):
        errors = sorted(
            Draft202012Validator(schema(name)).iter_errors(document), key=lambda e: list(e.path)
        )
        if not errors:
            return name
        problems += [f"{name}: {'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]]
    raise AssertionError(
        f"`rollback {' '.join(args)}` printed JSON off its schema:\n" + "\n".join(problems)
    )
