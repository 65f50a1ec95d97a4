"""Rendering: JSON (one document on stdout) or text for people. Only the CLI prints."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import click


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_jsonable(to_dict() if to_dict else dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    return value


def emit(ctx: click.Context, data: Any, text: Callable[[Any], str] | str | None = None) -> None:
    """Print `data` as JSON when --output json, else `text(data)` (or the string)."""
    if ctx.find_root().obj.settings.output == "json":
        click.echo(json.dumps(to_jsonable(data), indent=2, sort_keys=True, allow_nan=False))
        return
    if text is None:
        click.echo(json.dumps(to_jsonable(data), indent=2, sort_keys=True, allow_nan=False))
    elif isinstance(text, str):
        click.echo(text)
    else:
        click.echo(text(data))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


QUIET = False  # --quiet: the root sets it; progress lines are dropped, errors are not


def progress(message: str) -> None:
    """A progress line on stderr (logs and progress never go to stdout)."""
    if not QUIET:
        click.echo(message, err=True)
