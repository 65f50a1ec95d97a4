"""`rollback status [--watch]`: the latest run of the stack, each step's state.

With `--watch` it blocks until the run ends, printing each new step state on
stderr, then prints the final status (one JSON document with `-o json`) and
exits 0 when the run succeeded, 1 when it failed, was stopped or its process
died (the way `kubectl argo rollouts status` waits).
"""

from __future__ import annotations

from typing import Any

import click

from rollback.cli.render import emit, progress, table


@click.command()
@click.option("--watch", "-w", is_flag=True, help="Block and update until the run ends.")
@click.option(
    "--interval",
    default="2s",
    show_default=True,
    help="How often --watch reads the journal (90s, 1m30s).",
)
@click.pass_context
def status(ctx: click.Context, watch: bool, interval: str) -> None:
    """The run in progress, or the last one: each step's state."""
    from rollback.follow import follow_run
    from rollback.journal import Run, RunSummary, latest_run
    from rollback.triggers import parse_duration

    factory = ctx.find_root().obj
    stack = factory.settings.stack
    interval_s = parse_duration(interval, "--interval")
    if not watch:
        run = latest_run(factory.store(), stack)
        how = "ended" if run is not None and run.result else "running"
    else:
        states: dict[str, str] = {}

        def on_change(run: Run) -> None:
            for step in run.steps:
                if states.get(step.name) != step.state:
                    states[step.name] = step.state
                    note = f": {step.error}" if step.error else ""
                    progress(f"{run.run_id}  {step.name}: {step.state}{note}")

        followed = follow_run(
            factory.store(), stack, interval_s=max(interval_s, 0.1), on_change=on_change
        )
        run, how = followed.run, followed.how
    if run is None:
        emit(ctx, {"run": None}, f"no rollback has run on {stack}")
        return
    summary = RunSummary.of(run)
    data: dict[str, Any] = {"run": summary, "steps": run.steps}
    headline = f"run {run.run_id} ({summary.result}) {run.plan.from_version} -> {run.plan.to_version} by {run.actor}"
    if how == "abandoned":
        data["abandoned"] = True
        headline += f"\nnothing holds the lock: its process died; `rollback resume {run.run_id}` finishes it"
    rows = [(s.name, s.state, s.error or s.note) for s in run.steps]
    emit(ctx, data, headline + "\n" + table(rows, ["STEP", "STATE", "NOTE"]))
    if watch and (how == "abandoned" or run.result != "succeeded"):
        ctx.exit(1)
