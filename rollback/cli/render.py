"""Rendering: JSON (one document on stdout) or text for people. Only the CLI prints."""

from __future__ import annotations

import dataclasses
import json
import sys
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
    _end_wait_line()
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
_OPEN_LINE = False  # a wait line is on the terminal, to be overwritten or ended


def progress(message: str) -> None:
    """A progress line on stderr (logs and progress never go to stdout)."""
    if not QUIET:
        _end_wait_line()
        click.echo(message, err=True)


def _end_wait_line() -> None:
    global _OPEN_LINE
    if _OPEN_LINE:
        click.echo("", err=True)
        _OPEN_LINE = False


class WaitPrinter:
    """The one progress model for every wait (Timing.on_wait), on stderr.

    Waits shorter than `quiet_s` print nothing. On a terminal, one line is
    rewritten in place; elsewhere (CI logs) a line is printed when a wait
    passes `quiet_s` and then every `every_s` seconds, the way Terraform's
    "Still creating... [40s elapsed]" does. Each line says what is awaited, the
    time so far, the deadline and the last observed state or failure reason.
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        tty: bool | None = None,
        quiet_s: float = 2.0,
        every_s: float = 20.0,
    ) -> None:
        self.prefix = prefix
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.quiet_s = quiet_s
        self.every_s = every_s
        self._printed: dict[str, float] = {}  # what -> elapsed at its last line

    def __call__(self, what: str, elapsed: float, deadline: float, state: str = "") -> None:
        global _OPEN_LINE
        if QUIET or elapsed < self.quiet_s:
            return
        last = f"; last: {state}" if state else ""
        if self.tty:
            line = f"{self.prefix}waiting for {what}: {elapsed:.0f}s of {deadline:.0f}s{last}"
            click.echo(f"\r\033[K{line}", err=True, nl=False, color=True)  # keep the escape
            _OPEN_LINE = True
            return
        before = self._printed.get(what)
        if before is not None and elapsed - before < self.every_s:
            return
        self._printed[what] = elapsed
        still = "still waiting" if before is not None else "waiting"
        click.echo(
            f"{self.prefix}{still} for {what}... [{elapsed:.0f}s elapsed, deadline {deadline:.0f}s{last}]",
            err=True,
        )


def step_events(ctx: click.Context, prefix: str = "") -> Any:
    """Progress of each step transition on stderr (quiet under --output json).

    A fleet member's lines start with `prefix`, its stack.
    """
    if ctx.find_root().obj.settings.output == "json":
        return None

    def show(event: Any) -> None:
        if event.type == "step":
            note = event.data.get("error") or ""
            progress(
                f"{prefix}  {event.at[11:19]}  {event.step:<12} {event.state}{'  ' + note if note else ''}"
            )
        elif event.type in ("traffic-restored", "finished", "stopped"):
            progress(
                f"{prefix}  {event.at[11:19]}  {event.type} {event.data.get('result', '')}".rstrip()
            )
        elif event.type == "outcome":
            verdict = "verified" if event.data.get("ok") else "FAILED"
            progress(f"{prefix}  {event.at[11:19]}  outcome      {verdict}")

    return show
