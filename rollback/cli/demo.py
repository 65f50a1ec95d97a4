"""`rollback demo`: a bad deploy and its rollback, from nothing, on the embedded cloud."""

from __future__ import annotations

import click

from rollback.cli.render import emit, progress


@click.command()
@click.option(
    "--keep", is_flag=True, help="Leave the embedded cloud and the scratch files for a look around."
)
@click.pass_context
def demo(ctx: click.Context, keep: bool) -> None:
    """Release v1.0.0 on blue, deploy v2.0.0 to green, watch it fail, roll back to last-stable.

    Everything runs on the embedded cloud with real HTTP health endpoints on
    127.0.0.1, and every step is verified. It takes 30 s to 2 minutes (most of
    it starting the cloud and applying the stack twice) and says how long it
    took; its scratch directory and cloud are removed at the end unless --keep.
    """
    import time

    from rollback.cli.render import step_events as _on_event
    from rollback.cli.run import outcome_text, plan_text
    from rollback.demo import run_demo

    quiet = ctx.find_root().obj.settings.output == "json"
    say = (lambda _: None) if quiet else progress
    say("starting the embedded cloud and a scratch copy of the reference stack (this takes a while) ...")
    started = time.monotonic()
    result = run_demo(
        keep=keep,
        on_progress=say,
        on_event=_on_event(ctx),
        show_plan=lambda plan: say(plan_text(plan)),
    )
    emit(ctx, result, lambda r: outcome_text(r.outcome))
    kept = f"kept {result.workdir} and the cloud (--keep)" if keep else "scratch files and cloud removed"
    say(f"demo took {time.monotonic() - started:.0f}s; {kept}")
    if not result.ok:
        ctx.exit(1)
