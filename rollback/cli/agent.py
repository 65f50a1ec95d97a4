"""`rollback agent setup | run`, and the queue side of `rollback to --via-queue`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from rollback.cli.params import FiniteRange, WholeNumber
from rollback.cli.render import emit, progress, table

if TYPE_CHECKING:
    from rollback.agent_setup import SetupPlan
    from rollback.fleet import StackRun
    from rollback.orchestrate import Workbench
    from rollback.planner import Options


@click.group()
def agent() -> None:
    """Alarm-driven rollbacks from an SQS queue, without a CLI held open.

    The agent answers alarms of every stack with a current release in the store.
    """


def _alarms(factory: Any) -> list[str]:
    from rollback.agent_messages import AlarmIndex

    return AlarmIndex(factory.store()).refresh().alarms


def setup_text(plan: SetupPlan) -> str:
    rows = [(r.action, r.kind, r.name, r.id) for r in plan.resources]
    lines = [table(rows, ["ACTION", "KIND", "NAME", "ID"])]
    lines.append(f"alarms routed ({len(plan.alarms)}): {', '.join(plan.alarms)}")
    if plan.applied:
        lines += [f"{k}: {v}" for k, v in plan.outputs.items()]
        lines.append(f"run agents with: rollback agent run --queue {plan.outputs['queue_url']}")
    else:
        lines.append("dry run: nothing was changed.")
    return "\n".join(lines)


@agent.command()
@click.option(
    "--name",
    default="rollback-agent",
    show_default=True,
    help="Queue name; the DLQ and rule are named after it.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the resources and what would change; change nothing."
)
@click.option(
    "--visibility",
    type=WholeNumber(1, 43200),
    default=60,
    show_default=True,
    help="Queue visibility timeout, seconds.",
)
@click.option(
    "--redrive-after",
    type=WholeNumber(2, 1000),
    default=5,
    show_default=True,
    help="Receipts before SQS itself moves a message to the DLQ.",
)
@click.pass_context
def setup(
    ctx: click.Context, name: str, dry_run: bool, visibility: int, redrive_after: int
) -> None:
    """Create (idempotently) the queue, its dead-letter queue and the alarm rule."""
    from rollback.agent_setup import apply_setup, plan_setup

    factory = ctx.find_root().obj
    clients = factory.clients()
    plan = plan_setup(
        clients, name, _alarms(factory), visibility_s=visibility, redrive_after=redrive_after
    )
    if not dry_run:
        plan = apply_setup(clients, plan)
    emit(ctx, plan, setup_text)


@agent.command()
@click.option(
    "--queue",
    "queue_url",
    envvar="ROLLBACK_AGENT_QUEUE",
    required=True,
    metavar="URL",
    help="The SQS queue URL (agent setup prints it).",
)
@click.option(
    "--wait",
    "wait_s",
    type=WholeNumber(0, 20),
    default=20,
    show_default=True,
    help="Long-poll wait per receive, seconds.",
)
@click.option(
    "--visibility",
    type=WholeNumber(1, 43200),
    default=60,
    show_default=True,
    help="Visibility each heartbeat extends a message in work to, seconds.",
)
@click.option(
    "--heartbeat",
    type=FiniteRange(0.1),
    default=None,
    help="Seconds between heartbeats  [default: visibility / 4]",
)
@click.option(
    "--max-receives",
    type=WholeNumber(1),
    default=3,
    show_default=True,
    help="Failed receipts before a message is dead-lettered.",
)
@click.option(
    "--retry-delay",
    type=WholeNumber(0, 900),
    default=5,
    show_default=True,
    help="A failed message is visible again after this many seconds times its receipts.",
)
@click.option(
    "--metrics-port",
    type=WholeNumber(0, 65535),
    default=None,
    help="Serve /metrics (Prometheus) and /healthz on this port.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for the metrics server."
)
@click.option("--max-messages", type=WholeNumber(1), default=None, hidden=True)
@click.pass_context
def run(
    ctx: click.Context,
    queue_url: str,
    wait_s: int,
    visibility: int,
    heartbeat: float | None,
    max_receives: int,
    retry_delay: int,
    metrics_port: int | None,
    metrics_host: str,
    max_messages: int | None,
) -> None:
    """Receive alarm changes and jobs; roll back; until SIGTERM (then exit 0)."""
    import signal
    import threading

    from rollback.agent import Agent
    from rollback.agent_settle import AgentSettings
    from rollback.aws.sqs import Queue

    factory = ctx.find_root().obj
    sqs = factory.clients()("sqs")
    queue = Queue(sqs, queue_url)
    dlq_url = queue.dead_letter_url()
    if dlq_url is None:
        progress(f"warning: {queue_url} has no redrive policy; dead letters are dropped (logged).")
    benches: dict[str, Workbench] = {}

    def bench_for(stack: str) -> Workbench:
        if stack not in benches:
            benches[stack] = factory.for_stack(stack, shared=True).workbench()
        return benches[stack]

    metrics = None
    server = None
    if metrics_port is not None:
        from rollback.agent_metrics import AgentMetrics

        metrics = AgentMetrics(stale_after_s=wait_s * 3 + 60)
        server = metrics.serve(metrics_port, metrics_host)
        progress(f"metrics on http://{metrics_host}:{server.server_address[1]}/metrics")
    settings = AgentSettings(
        wait_s=wait_s,
        visibility_s=visibility,
        heartbeat_s=heartbeat or visibility / 4,
        max_receives=max_receives,
        retry_delay_s=retry_delay,
    )
    worker = Agent(
        queue,
        factory.store(),
        bench_for,
        settings=settings,
        dead_letter=Queue(sqs, dlq_url) if dlq_url else None,
        metrics=metrics,
        freeze_warm=True,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        progress(f"{signal.Signals(signum).name}: finishing the message in hand, then exiting")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        worker.serve(stop, max_messages=max_messages)
    finally:
        if server is not None:
            server.shutdown()
    handled = [h.to_dict() for h in worker.handled]
    counts: dict[str, int] = {}
    for h in handled:
        counts[h["outcome"]] = counts.get(h["outcome"], 0) + 1
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no messages"
    emit(
        ctx,
        {"agent": worker.name, "messages": handled, "counts": counts},
        f"{worker.name}: {summary}",
    )


def via_queue(
    ctx: click.Context,
    queue_url: str,
    version: str,
    options: Options,
    *,
    yes: bool,
    wait: bool,
    wait_timeout: float,
) -> None:
    """`rollback to VERSION --via-queue URL`: one job per stack, then (optionally) their results."""
    from rollback.agent_fleet import enqueue, wait_for
    from rollback.aws.sqs import Queue
    from rollback.cli.fleet import fleet_text

    factory = ctx.find_root().obj
    stacks = factory.settings.stacks
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "no terminal to confirm on; pass --yes to enqueue from a pipeline."
            )
        if not click.confirm(f"enqueue rollbacks of {len(stacks)} stacks to {version}?", err=True):
            from rollback.errors import UsageError

            raise UsageError("the fleet rollback was not confirmed; nothing was enqueued.")
    queue = Queue(factory.clients()("sqs"), queue_url)
    jobs = enqueue(
        queue,
        stacks,
        version,
        reason=options.reason,
        by=options.actor,
        accept_data_loss=options.accept_data_loss,
        force=options.force,
    )
    quiet = factory.settings.output == "json"
    if not quiet:
        for job in jobs:
            progress(f"{job.stack}: queued as job {job.id}")
    if not wait:
        emit(
            ctx,
            {"queued": [{"stack": j.stack, "job": j.id} for j in jobs], "queue": queue_url},
            f"{len(jobs)} jobs queued on {queue_url}; `rollback history` per stack shows the runs.",
        )
        return

    def done(run: StackRun, by: str) -> None:
        if not quiet:
            progress(
                f"{run.stack}: {run.result} after {run.duration_s:.1f}s by {by}  {run.message}"
            )

    fleet = wait_for(factory.store(), jobs, timeout_s=wait_timeout, on_done=done)
    emit(ctx, fleet, lambda f: fleet_text(f).replace("with up to 0 at a time", "through the queue"))
    if fleet.exit_code:
        ctx.exit(fleet.exit_code)
