"""`rollback lock show|break`: who holds the stack's lock; remove an expired one."""

from __future__ import annotations

import time
from typing import Any

import click

from rollback.cli.render import emit
from rollback.store.lock import LockInfo, break_lock, read_lock, stale_reason


@click.group()
def lock() -> None:
    """Show the stack's lock, or break it once its lease has expired."""


@lock.command("show")
@click.pass_context
def show(ctx: click.Context) -> None:
    """Print who holds the lock (or "unlocked")."""
    factory = ctx.find_root().obj
    stack = factory.settings.stack
    info = read_lock(factory.store(), stack)
    emit(ctx, _state(stack, info), _show_text)


@lock.command("break")
@click.pass_context
def break_(ctx: click.Context) -> None:
    """Remove the lock if its lease has expired, or its run finished or was killed before
    its journal (a live lease of a run that may be running is never broken: exit 3)."""
    factory = ctx.find_root().obj
    stack = factory.settings.stack
    store = factory.store()
    held = read_lock(store, stack)
    why = stale_reason(store, held) if held is not None else None
    removed = break_lock(store, stack)
    result = {"stack": stack, "broken": removed is not None, "holder": removed, "why": why}
    emit(ctx, result, _break_text)


def _state(stack: str, info: LockInfo | None) -> dict[str, Any]:
    expired = info is not None and info.expired(time.time())
    return {"stack": stack, "locked": info is not None, "expired": expired, "holder": info}


def _show_text(state: dict[str, Any]) -> str:
    info: LockInfo | None = state["holder"]
    if info is None:
        return f"{state['stack']}: unlocked"
    lease = "expired at" if state["expired"] else "lease until"
    return f"{state['stack']}: locked by {info.describe()}, {lease} {info.expires_at}"


def _break_text(result: dict[str, Any]) -> str:
    info: LockInfo | None = result["holder"]
    if info is None:
        return f"{result['stack']}: unlocked; nothing to break"
    if result.get("why"):
        return f"{result['stack']}: broke the lock of {info.describe()}: {result['why']}"
    return f"{result['stack']}: broke the expired lock of {info.describe()}"
