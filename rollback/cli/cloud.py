"""`rollback cloud start|stop|status`: the embedded cloud (moto's server on loopback).

`eval "$(rollback cloud start)"` points the shell at it: in text mode stdout
holds only `export`/`unset` lines; progress goes to stderr.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from rollback import cloud as embedded
from rollback.cli.params import WholeNumber
from rollback.cli.render import emit, progress


@click.group()
def cloud() -> None:
    """Start, stop or check the embedded cloud that rehearsals and tests run against."""


@cloud.command("start")
@click.option("--port", type=WholeNumber(1, 65535), help="Port on 127.0.0.1  [default: a free one]")
@click.pass_context
def start(ctx: click.Context, port: int | None) -> None:
    """Start moto's server on 127.0.0.1 and print the shell lines that point AWS clients at it.

    Where PostgreSQL is installed, also start a PostgreSQL cluster that backs
    every RDS instance with a real database (PGHOST/PGPORT are exported).
    Idempotent: when one already answers, prints its lines and starts nothing.
    """
    from rollback.waiting import Timing

    state_dir = _state_dir(ctx)
    progress("starting the embedded cloud ...")
    # moto imports its whole service catalogue first: that wait reports like every other.
    timing = Timing(on_wait=ctx.find_root().obj.wait_printer())
    state = embedded.start(state_dir, port, timing)
    verb = "already running" if state.already_running else "started"
    progress(f"embedded cloud {verb} at {state.url} (pid {state.pid}); log {state.log}")
    environment = embedded.fake_environment(state.url)
    cluster = embedded.postgres_cluster(state)
    if cluster is not None:
        progress(
            f"RDS databases are real PostgreSQL at {cluster.address}: instance X is database X, "
            "reached as its master user with its master password (`rollback cloud databases`)"
        )
        # libpq's own variables: `psql -U USER INSTANCE` then reaches the instance's database.
        environment.update({"PGHOST": "127.0.0.1", "PGPORT": str(cluster.port)})
    else:
        reason = embedded.no_data_reason() or "PostgreSQL did not start (see the warning above)."
        progress(f"RDS databases hold no data: {reason}")
    data = {**state.record(), "already_running": state.already_running, "environment": environment}
    emit(ctx, data, _exports(environment))


@cloud.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say whether the recorded embedded cloud answers (exit 0) or not (exit 1)."""
    result = embedded.status(_state_dir(ctx))
    emit(ctx, result, result.message)
    if not result.answering:
        ctx.exit(1)


@cloud.command("databases")
@click.pass_context
def databases(ctx: click.Context) -> None:
    """List the embedded cloud's PostgreSQL databases: each RDS instance's, each snapshot's.

    Connect to instance X as `postgresql://MASTER_USER:PASSWORD@127.0.0.1:PORT/X`.
    Exit 1 when the cloud runs without PostgreSQL.
    """
    listing = embedded.databases(_state_dir(ctx))
    lines = [f"PostgreSQL {listing['address']} (connect as the instance's master user)"]
    lines += [f"{name}\t{what}" for name, what in listing["databases"].items()]
    emit(ctx, listing, "\n".join(lines))


@cloud.command("stop")
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the recorded embedded cloud; when none runs, say so and exit 0."""
    result = embedded.stop(_state_dir(ctx))
    emit(ctx, result, result.message)


def _state_dir(ctx: click.Context) -> Path:
    factory = ctx.find_root().obj
    if factory.settings.store.startswith("s3://"):
        # Opening an S3 store needs its bucket, which may live in the very cloud
        # being started; the S3 store keeps machine state in the working directory.
        from rollback.store.s3 import STATE_DIR

        return Path.cwd() / STATE_DIR
    path: Path = factory.store().state_dir()
    return path


def _exports(environment: dict[str, str]) -> str:
    lines = [f"export {name}={shlex.quote(str(value))}" for name, value in environment.items()]
    lines.append(f"unset {' '.join(embedded.unsafe_variables())}")
    return "\n".join(lines)
