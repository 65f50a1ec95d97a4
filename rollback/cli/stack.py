"""`rollback stack ...`: up, verify, reapply, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rollback.cli.render import emit

PROGRAM = click.option(
    "--program",
    default=".",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The Pulumi project directory (holds Pulumi.yaml).",
)


@click.group()
def stack() -> None:
    """Apply the stack, check it for drift, re-apply a release."""


@stack.command()
@PROGRAM
@click.pass_context
def up(ctx: click.Context, program: Path) -> None:
    """Apply the program with Pulumi.<stack>.yaml and keep the checkpoint."""
    from rollback import stacks

    factory = ctx.find_root().obj
    project = stacks.load_project(program)
    hold = factory.workbench().owner().holder("rollback stack up")
    result = stacks.up(factory.engine(program), project, factory.settings.stack_name, hold=hold)
    emit(ctx, result, _up_text)


def _up_text(result: Any) -> str:
    found = result.counts()
    counts = (
        ", ".join(f"{n} {op}" for op, n in sorted(found.items()))
        if set(found) - {"same"}
        else "no changes"
    )
    lines = [
        f"stack {result.stack} applied with the {result.engine} engine: {result.resources} resources ({counts})"
    ]
    lines += [
        f"  {c.op:<8} {c.urn.rsplit('::', 1)[-1]} ({c.type}) {' '.join(c.diff)}"
        for c in result.changes
        if c.op != "same"
    ]
    lines += [f"  ! {w}" for w in result.warnings]
    return "\n".join(lines)


@stack.command()
@click.argument("version", required=False)
@click.pass_context
def verify(ctx: click.Context, version: str | None) -> None:
    """Read every resource back and report drift from VERSION (default: the stack state); exit 1 on drift."""
    from rollback import stacks

    factory = ctx.find_root().obj
    engine = factory.engine()
    if not hasattr(engine, "read_live") and hasattr(engine, "prove"):
        # The pulumi engine reads the cloud through `preview --refresh --expect-no-changes`.
        report = stacks.verify_by_preview(
            engine, factory.store(), factory.registry(), factory.settings.stack_name, version
        )
        emit(ctx, report, _verify_text)
        if not report.ok:
            ctx.exit(1)
        return
    if version:
        release = factory.registry().show(version).release
        checkpoint = stacks.release_checkpoint(factory.store(), release)
    else:
        checkpoint = engine.export(factory.settings.stack_name)
    owner = factory.workbench().owner()
    report = stacks.verify(engine, factory.settings.stack, checkpoint, version, owner.check)
    emit(ctx, report, _verify_text)
    if not report.ok:
        ctx.exit(1)


def _verify_text(report: Any) -> str:
    what = f"release {report.version}" if report.version else "its recorded state"
    if report.ok:
        return f"{report.checked} resources of {report.stack} match {what}"
    lines = [f"{len(report.drift)} drifted properties in {report.stack} against {what}:"]
    lines += [
        f"  {d.urn.rsplit('::', 1)[-1]} {d.property}: recorded {d.expected!r}, cloud {d.actual!r}"
        for d in report.drift
    ]
    return "\n".join(lines)


@stack.command()
@click.argument("version")
@click.pass_context
def reapply(ctx: click.Context, version: str) -> None:
    """Re-apply VERSION's tagged program with its recorded config, then prove it."""
    from rollback import stacks

    factory = ctx.find_root().obj
    release = factory.registry().show(version).release
    hold = factory.workbench().owner().holder(f"rollback stack reapply {version}")
    result = stacks.reapply(
        factory.engine(), factory.store(), release, factory.settings.stack_name, hold=hold
    )
    emit(
        ctx,
        result,
        lambda r: (
            f"re-applied {r.version}{'' if r.refreshed else ' (not refreshed first)'}: "
            + _up_text(r.up)
            + ("\n" + _verify_text(r.verify) if r.verify else "")
        ),
    )


@stack.command()
@click.option(
    "--version",
    "version",
    metavar="VERSION",
    help="Print the checkpoint recorded with this release instead of the stack's current one.",
)
@click.pass_context
def export(ctx: click.Context, version: str | None) -> None:
    """Print the stack's checkpoint (Pulumi deployment v3; secrets stay encrypted)."""
    import json

    from rollback import stacks

    factory = ctx.find_root().obj
    if version:
        release = factory.registry().show(version).release
        checkpoint = stacks.release_checkpoint(factory.store(), release)
    else:
        checkpoint = factory.engine().export(factory.settings.stack_name)
    click.echo(json.dumps(checkpoint.to_dict(), indent=2, sort_keys=True, allow_nan=False))
