"""Click parameter types shared by commands: finite numbers in ASCII digits, run ids.

`float("nan")` and `float("inf")` parse, compare False with every bound (so
click's FloatRange lets NaN through) and are not JSON; refuse them here.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click

# click made ParamType generic after 8.1 (our floor); subscript it for mypy only.
if TYPE_CHECKING:
    _FloatType = click.ParamType[float]
    _StrType = click.ParamType[str]
else:
    _FloatType = _StrType = click.ParamType


class FinitePositive(_FloatType):
    """A finite number above 0, below `limit`."""

    name = "number"

    def __init__(self, unit: str, limit: float) -> None:
        self.unit = unit
        self.limit = limit

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            number = value
        else:
            text = str(value).strip()
            try:
                number = float(text) if text.isascii() else math.nan
            except ValueError:
                number = math.nan
        if not (math.isfinite(number) and 0 < number < self.limit):
            self.fail(
                f"{value!r} is not a number of {self.unit} above 0 and below {self.limit:.0f}.",
                param,
                ctx,
            )
        return number


POSITIVE_MS = FinitePositive("milliseconds", 3_600_000)

_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)


class WholeNumber(click.IntRange):
    """click's IntRange in ASCII digits only: its int() also takes '١٢', '１' and '1_000'."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not _INTEGER.fullmatch(value.strip()):
            self.fail(f"{value!r} is not a whole number such as 3 (ASCII digits).", param, ctx)
        return super().convert(value, param, ctx)


class FiniteRange(click.FloatRange):
    """click's FloatRange without NaN, infinity or non-ASCII digits (it lets all three through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        if isinstance(value, str) and (not text.isascii() or "_" in text):
            self.fail(f"{value!r} is not a number such as 1.5 (ASCII digits).", param, ctx)
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; pass one such as 1.5.", param, ctx)
        return number


class RunId(_StrType):
    """A run id as `rollback history` prints it: letters, digits, `.`, `_`, `-`; no path."""

    name = "run"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not _RUN_ID.fullmatch(text):
            # The message never shows store keys: they are internals, and the cause is the input.
            self.fail(f"{text!r} is not a run id; `rollback history` lists the runs.", param, ctx)
        return text


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
RUN_ID = RunId()
