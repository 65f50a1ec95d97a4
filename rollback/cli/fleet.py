"""`rollback to` and `rollback emergency` over several stacks: the fleet's CLI side.

Each stack gets a factory of its own (`Factory.for_stack`), hence its own
session, lock and journal. `to` plans every stack first and asks once for the
whole fleet; at execution each stack's fresh plan must match the one shown,
or that stack is refused unchanged.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from rollback.cli.render import emit, progress, table

if TYPE_CHECKING:
    from rollback.fleet import FleetResult, StackRun
    from rollback.orchestrate import Outcome, Workbench
    from rollback.plan import Plan
    from rollback.planner import Options


def _bench(ctx: click.Context, stack: str) -> Workbench:
    bench: Workbench = ctx.find_root().obj.for_stack(stack).workbench()
    return bench


def _shape(plan: Plan) -> tuple[str, str, tuple[str, ...]]:
    return plan.from_version, plan.to_version, tuple(s.name for s in plan.steps)


def plan_line(stack: str, plan: Plan) -> str:
    """One stack's plan in a line: versions and steps."""
    if not plan.steps:
        return f"{stack}: {plan.warnings[0] if plan.warnings else 'nothing to do'}"
    return (
        f"{stack}: {plan.from_version} -> {plan.to_version}, {len(plan.steps)} steps "
        f"({', '.join(s.name for s in plan.steps)})"
    )


def fleet_text(fleet: FleetResult) -> str:
    """The summary table, each failure's sentence, and a closing count."""

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}s"

    def versions(run: StackRun) -> str:
        return f"{run.from_version} -> {run.to_version}" if run.from_version else "-"

    rows = [
        (
            r.stack,
            r.result,
            versions(r),
            secs(r.time_to_traffic_restored_s),
            secs(r.duration_s),
            r.report or "-",
        )
        for r in fleet.runs
    ]
    lines = [table(rows, ["STACK", "RESULT", "FROM -> TO", "TRAFFIC BACK", "TOOK", "REPORT"])]
    failed = [r for r in fleet.runs if not r.ok]
    if failed:
        lines += ["", *(f"{r.stack}: {r.message}" for r in failed)]
    counts = fleet.counts
    lines += [
        "",
        f"{counts['ok']} of {counts['total']} stacks ok, {counts['not_ok']} not "
        f"(exit {fleet.exit_code}); {fleet.duration_s:.1f}s with up to {fleet.parallel} at a time",
    ]
    return "\n".join(lines)


def _announce(ctx: click.Context) -> Any:
    """Progress per stack as each finishes (quiet under --output json)."""
    if ctx.find_root().obj.settings.output == "json":
        return None

    def done(run: StackRun) -> None:
        progress(f"{run.stack}: {run.result} after {run.duration_s:.1f}s  {run.message}")

    return done


def _finish(ctx: click.Context, fleet: FleetResult) -> None:
    emit(ctx, fleet, fleet_text)
    if fleet.exit_code:
        ctx.exit(fleet.exit_code)


def fleet_to(
    ctx: click.Context,
    version: str,
    options: Options,
    *,
    yes: bool,
    skips: dict[str, str],
    break_lock: bool,
    parallel: int,
) -> None:
    """Roll every stack back to `version`: plan all, confirm once (unless --yes), run, summarise."""
    from rollback.cli.render import step_events as _on_event
    from rollback.errors import UsageError
    from rollback.fleet import each_stack, run_fleet
    from rollback.orchestrate import rollback_to

    stacks = ctx.find_root().obj.settings.stacks
    shown: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "no terminal to confirm on; pass --yes to roll back from a pipeline."
            )
        planned = each_stack(
            stacks, lambda s: _bench(ctx, s).planner().plan(version, options), parallel
        )
        for stack in stacks:
            value = planned[stack][0]
            if isinstance(value, BaseException):
                progress(f"{stack}: cannot plan: {getattr(value, 'message', value)}")
                continue
            progress(plan_line(stack, value))
            for warning in value.warnings if value.steps else ():
                progress(f"{stack}:   ! {warning}")
            if value.steps:
                shown[stack] = _shape(value)
        if not shown:
            progress("no stack has anything to roll back.")
        elif not click.confirm(
            f"roll back {len(shown)} of {len(stacks)} stacks to {version}?", err=True
        ):
            raise UsageError("the fleet rollback was not confirmed; nothing was changed.")

    def work(stack: str) -> Outcome:
        def confirm(plan: Plan) -> bool:
            if yes:
                progress(plan_line(stack, plan))
                return True
            if shown.get(stack) != _shape(plan):
                raise UsageError(
                    f"the plan of {stack} is not the one confirmed ({plan_line(stack, plan)}); "
                    "nothing was changed on it; run again to see the new plan."
                )
            return True

        return rollback_to(
            _bench(ctx, stack),
            version,
            options,
            skips=skips,
            confirm=confirm,
            confirmation="--yes" if yes else "prompt (fleet)",
            break_lock=break_lock,
            on_event=_on_event(ctx, prefix=f"{stack}:"),
        )

    _finish(ctx, run_fleet(stacks, work, parallel, on_done=_announce(ctx)))


def fleet_emergency(
    ctx: click.Context, reason: str, actor: str, *, break_lock: bool, parallel: int
) -> None:
    """Emergency rollback of every stack to its last-stable, no confirmation, one summary."""
    from rollback.cli.render import step_events as _on_event
    from rollback.fleet import run_fleet
    from rollback.orchestrate import emergency

    def work(stack: str) -> Outcome:
        return emergency(
            _bench(ctx, stack),
            reason,
            actor=actor,
            break_lock=break_lock,
            on_event=_on_event(ctx, prefix=f"{stack}:"),
        )

    stacks = ctx.find_root().obj.settings.stacks
    _finish(ctx, run_fleet(stacks, work, parallel, on_done=_announce(ctx)))
