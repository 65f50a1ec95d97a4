"""`rollback plan | to | resume | abort | status | history | report | emergency`."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from rollback.cli.params import RUN_ID, FiniteRange, WholeNumber
from rollback.cli.render import emit, progress, table
from rollback.cli.render import step_events as _on_event


def _bench(ctx: click.Context) -> Any:
    return ctx.find_root().obj.workbench()


def _actor() -> str:
    from rollback.store.lock import current_user

    return current_user()


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def plan_text(plan: Any, *, run: bool = True) -> str:
    """The plan for people; `run=False` (`rollback plan`) leaves out the id of a run never made."""
    head = f"rollback plan for {plan.stack}: {plan.from_version} -> {plan.to_version}"
    lines = [f"{head}  (run {plan.run_id})" if run else head]
    for i, step in enumerate(plan.steps, 1):
        d = step.description
        lines.append(f"  {i:>2}. {step.name:<12} {d.summary}  (~{d.expected_seconds:.0f}s)")
        if d.reason:
            lines.append(f"      {'':<12} why here: {d.reason}")
    if plan.warnings:
        lines.append("warnings:")
        lines += [f"  ! {w}" for w in plan.warnings]
    return "\n".join(lines)


def outcome_text(outcome: Any) -> str:
    if outcome.result is None:
        return outcome.plan.warnings[0] if outcome.plan.warnings else "nothing to do"
    r = outcome.result
    rows = [
        (
            s.name,
            s.state,
            f"{s.duration_s:.1f}s" if s.duration_s is not None else "-",
            s.error or s.note,
        )
        for s in r.steps
    ]
    lines = [table(rows, ["STEP", "STATE", "TIME", "NOTE"]), ""]
    lines.append(f"{r.result}: {r.message}")
    lines += [f"  ! {w}" for w in r.warnings if w not in outcome.plan.warnings]
    if r.time_to_traffic_restored_s is not None:
        lines.append(
            f"traffic restored after {r.time_to_traffic_restored_s:.1f}s; total {r.duration_s or 0:.1f}s"
        )
    lines += [f"  {layer}: {sentence}" for layer, sentence in r.state.items()]
    if outcome.report_keys:
        lines.append(f"report: {outcome.report_keys[0]}")
    return "\n".join(lines)


def _finish(ctx: click.Context, outcome: Any) -> None:
    emit(ctx, outcome, outcome_text)
    if not outcome.ok:
        ctx.exit(1)


def _options(
    reason: str, accept_data_loss: bool = False, force: bool = False, emergency: bool = False
) -> Any:
    from rollback.planner import Options

    return Options(
        accept_data_loss=accept_data_loss,
        force=force,
        reason=reason,
        actor=_actor(),
        emergency=emergency,
    )


BREAK_LOCK = click.option(
    "--break-lock", is_flag=True, help="Take over a lock whose lease has expired."
)
PARALLEL = click.option(
    "--parallel",
    type=WholeNumber(min=1),
    default=4,
    show_default=True,
    help="With several --stack: how many stacks roll back at once.",
)


@click.command(name="plan")
@click.argument("version")
@click.option(
    "--accept-data-loss",
    is_flag=True,
    help="Plan a database restore even though it loses recent writes.",
)
@click.option("--force", is_flag=True, help="Allow a target marked bad.")
@click.pass_context
def plan_cmd(ctx: click.Context, version: str, accept_data_loss: bool, force: bool) -> None:
    """Show the ordered plan to roll back to VERSION (or last-stable); changes nothing."""
    plan = _bench(ctx).planner().plan(version, _options("", accept_data_loss, force))
    emit(ctx, plan, lambda p: plan_text(p, run=False))


@click.command(name="to")
@click.argument("version")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (pipelines).")
@click.option(
    "--accept-data-loss",
    is_flag=True,
    help="Allow a database restore that loses the writes since the release's snapshot.",
)
@click.option("--force", is_flag=True, help="Allow a target marked bad.")
@click.option(
    "--skip",
    "skips",
    multiple=True,
    metavar="STEP[=REASON]",
    help="Leave a step out (journalled with who and why).",
)
@click.option("--reason", default="", help="Why; goes into the journal, notifications and report.")
@BREAK_LOCK
@PARALLEL
@click.option(
    "--via-queue",
    metavar="URL",
    help="Enqueue one job per stack on the agents' queue instead of running here.",
)
@click.option(
    "--wait/--no-wait", default=True, help="With --via-queue: wait for the agents' results."
)
@click.option(
    "--wait-timeout",
    type=FiniteRange(0),
    default=1800,
    show_default=True,
    help="With --via-queue: seconds to wait for the results.",
)
@click.pass_context
def to(
    ctx: click.Context,
    version: str,
    yes: bool,
    accept_data_loss: bool,
    force: bool,
    skips: tuple[str, ...],
    reason: str,
    break_lock: bool,
    parallel: int,
    via_queue: str | None,
    wait: bool,
    wait_timeout: float,
) -> None:
    """Roll back to VERSION (or last-stable): plan, confirm, execute, verify, report.

    With several stacks, each rolls back on its own (own lock and journal),
    PARALLEL at a time, after one confirmation for all; one summary ends it.
    With --via-queue, the agents on that queue do the work, one job per stack.
    """
    skip_map = dict((s.split("=", 1) + ["skipped by request"])[:2] for s in skips)
    if via_queue:
        from rollback import collector
        from rollback.cli.agent import via_queue as enqueue_fleet

        collector.resume()  # no run here: it may wait long for the agents (rollback.collector)

        if skip_map or break_lock:
            raise click.UsageError("--skip and --break-lock do not travel through the queue.")
        options = _options(reason, accept_data_loss, force)
        enqueue_fleet(
            ctx, via_queue, version, options, yes=yes, wait=wait, wait_timeout=wait_timeout
        )
        return
    if len(ctx.find_root().obj.settings.stacks) > 1:
        from rollback.cli.fleet import fleet_to

        options = _options(reason, accept_data_loss, force)
        fleet_to(
            ctx, version, options, yes=yes, skips=skip_map, break_lock=break_lock, parallel=parallel
        )
        return

    def confirm(plan: Any) -> bool:
        progress(plan_text(plan))
        if yes:
            return True
        if not sys.stdin.isatty():
            raise click.UsageError(
                "no terminal to confirm on; pass --yes to roll back from a pipeline."
            )
        return click.confirm(
            f"roll {plan.stack} back from {plan.from_version} to {plan.to_version}?", err=True
        )

    from rollback.preflight import begin

    # First, before the AWS session and the core's imports: the passphrase check (a
    # million-round PBKDF2 in its own thread) overlaps all of them and the plan.
    factory = ctx.find_root().obj
    unlocks = begin(factory.registry(), version, os.environ)
    from rollback.orchestrate import rollback_to

    bench = _bench(ctx)
    unlocks.start_stack_check(bench, version)  # its git and checkpoint reads overlap the plan
    outcome = rollback_to(
        bench,
        version,
        _options(reason, accept_data_loss, force),
        skips=skip_map,
        confirm=confirm,
        confirmation="--yes" if yes else "prompt",
        break_lock=break_lock,
        on_event=_on_event(ctx),
        unlocks=unlocks,
    )
    _finish(ctx, outcome)


@click.command()
@click.argument("run_id", metavar="RUN", type=RUN_ID)
@click.pass_context
def resume(ctx: click.Context, run_id: str) -> None:
    """Carry RUN forward: re-verify the step in flight (or re-apply the failed one), then
    continue and check the outcome.

    A rollback that failed stops on its last verified state and undoes nothing;
    fix the cause, then resume it. `rollback abort RUN` undoes it instead; an
    abort whose process died is finished by resume, as an abort.
    """
    from rollback.cutover import is_cutover
    from rollback.orchestrate import resume as resume_run
    from rollback.orchestrate import settle_left_lock

    factory = ctx.find_root().obj
    run, cleared = settle_left_lock(factory.store(), factory.settings.stack, run_id)
    if cleared is not None or run is None:
        emit(ctx, {"run_id": run_id, "lock_cleared": True, "message": cleared}, cleared)
        return
    if is_cutover(run):
        from rollback.cli.cutover import cutover_text, resume_cutover_run

        result, code = resume_cutover_run(factory, run_id)
        emit(ctx, result, cutover_text)
        ctx.exit(code)
    outcome = resume_run(_bench(ctx), run_id, actor=_actor(), on_event=_on_event(ctx))
    if outcome.result is not None and outcome.result.result == "aborted":
        emit(ctx, outcome, outcome_text)  # an abort killed half-way, finished: exits as `abort`
        return
    _finish(ctx, outcome)


@click.command()
@click.argument("run_id", metavar="RUN", type=RUN_ID)
@BREAK_LOCK
@click.pass_context
def abort(ctx: click.Context, run_id: str, break_lock: bool) -> None:
    """Undo the failed, stopped or dead rollback RUN, on purpose.

    Steps done are put back in reverse where that is safe: traffic returns
    only to a colour that passes its health check (otherwise it stays), a
    database snapshot is never undone. A cutover cannot be aborted: a failed
    one already returned users to the colour they came from.
    """
    from rollback.orchestrate import abort as abort_run

    outcome = abort_run(_bench(ctx), run_id, actor=_actor(), break_lock=break_lock)
    emit(ctx, outcome, outcome_text)
    if outcome.result is None or outcome.result.result != "aborted":
        ctx.exit(1)


@click.command()
@click.pass_context
def history(ctx: click.Context) -> None:
    """Runs on the stack: who, when, from, to, result, duration, time to traffic restored."""
    from rollback.journal import list_runs

    factory = ctx.find_root().obj
    runs = list_runs(factory.store(), factory.settings.stack)
    rows = [
        (
            r.run_id,
            r.actor,
            r.started_at,
            r.from_version,
            r.to_version,
            r.result,
            secs(r.duration_s),
            secs(r.time_to_traffic_restored_s),
        )
        for r in runs
    ]
    emit(
        ctx,
        {"runs": runs},
        table(rows, ["RUN", "WHO", "STARTED", "FROM", "TO", "RESULT", "TOOK", "TRAFFIC BACK"])
        if rows
        else "no runs",
    )


@click.command()
@click.argument("run_id", metavar="RUN", type=RUN_ID)
@click.pass_context
def report(ctx: click.Context, run_id: str) -> None:
    """The incident report of RUN (Markdown; JSON with --output json); stored with the run."""
    import json

    from rollback.journal import Journal
    from rollback.report import build_report, render_markdown, store_report

    factory = ctx.find_root().obj
    store, stack = factory.store(), factory.settings.stack
    keys = store_report(store, stack, run_id)
    data = build_report(Journal.load(store, stack, run_id))
    progress(f"report stored at {store.url.rstrip('/')}/{keys[0]}")
    if factory.settings.output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=False))
    else:
        click.echo(render_markdown(data))


@click.command()
@click.option(
    "--reason", default="emergency rollback", help="Why; goes into the journal and notifications."
)
@BREAK_LOCK
@PARALLEL
@click.pass_context
def emergency(ctx: click.Context, reason: str, break_lock: bool, parallel: int) -> None:
    """Stop what is deploying, then roll back to last-stable at once (no confirmation).

    With several stacks, each does so on its own, PARALLEL at a time; one summary ends it.
    """
    if len(ctx.find_root().obj.settings.stacks) > 1:
        from rollback.cli.fleet import fleet_emergency

        fleet_emergency(ctx, reason, _actor(), break_lock=break_lock, parallel=parallel)
        return

    from rollback.preflight import begin

    # First (see `to`): the passphrase check overlaps the session, the imports and the plan.
    unlocks = begin(ctx.find_root().obj.registry(), "last-stable", os.environ)
    from rollback.orchestrate import emergency as run_emergency

    bench = _bench(ctx)
    unlocks.start_stack_check(bench, "last-stable")
    _finish(
        ctx,
        run_emergency(
            bench,
            reason,
            actor=_actor(),
            break_lock=break_lock,
            on_event=_on_event(ctx),
            unlocks=unlocks,
        ),
    )
