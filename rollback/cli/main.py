"""Entry point: global options, lazy command groups, the one error handler.

Command modules are imported only when their command runs, so `rollback
--help` and light commands start without pulumi, boto3 or moto.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from rollback.errors import ExitCode, RollbackError

# name -> (module, attribute, short help). Help text lives here so that listing
# commands imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "cloud": ("rollback.cli.cloud", "cloud", "Start, stop or check the embedded cloud."),
    "release": ("rollback.cli.release", "release", "Record, list, verify and mark releases."),
    "stack": ("rollback.cli.stack", "stack", "Apply the stack, check drift, re-apply a release."),
    "lock": ("rollback.cli.lock", "lock", "Show the stack's lock, or break an expired one."),
    "cutover": ("rollback.cli.cutover", "cutover", "Shift traffic to COLOR in steps, watching."),
    "watch": ("rollback.cli.cutover", "watch", "Watch the release; roll back on a breach."),
    "plan": ("rollback.cli.run", "plan_cmd", "Show the ordered rollback plan; changes nothing."),
    "to": ("rollback.cli.run", "to", "Roll back to a version or last-stable."),
    "resume": ("rollback.cli.run", "resume", "Finish a run whose process died."),
    "status": ("rollback.cli.run", "status", "The run in progress, or the last one."),
    "history": ("rollback.cli.run", "history", "Past runs: who, when, from, to, result."),
    "report": ("rollback.cli.run", "report", "The incident report of a run."),
    "emergency": (
        "rollback.cli.run",
        "emergency",
        "Stop deploys and roll back to last-stable now.",
    ),
    "demo": ("rollback.cli.demo", "demo", "A bad deploy and its rollback on the embedded cloud."),
    "agent": ("rollback.cli.agent", "agent", "Set up and run the queue-driven rollback agent."),
}

# Commands that take several --stack: a fleet (to, emergency) or no stack at all.
SEVERAL_STACKS = frozenset({"to", "emergency", "cloud", "demo"})


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--stack",
    envvar="ROLLBACK_STACK",
    multiple=True,
    help="PROJECT/STACK; repeat (or comma-separate) for a fleet  [default: webapp/dev]",
)
@click.option(
    "--stacks-file",
    metavar="FILE",
    help="More stacks: one PROJECT/STACK a line, # for comments.",
)
@click.option(
    "--store",
    envvar="ROLLBACK_STORE",
    help="Directory or s3://bucket/prefix  [default: ./artifacts]",
)
@click.option(
    "--engine",
    envvar="ROLLBACK_ENGINE",
    type=click.Choice(["auto", "pulumi", "embedded"]),
    help="Stack engine  [default: auto]",
)
@click.option(
    "--output",
    "-o",
    envvar="ROLLBACK_OUTPUT",
    type=click.Choice(["text", "json"]),
    help="text for people, json (one document on stdout) for pipelines",
)
@click.option(
    "--debug", is_flag=True, default=None, envvar="ROLLBACK_DEBUG", help="Tracebacks and AWS logs."
)
@click.version_option(package_name="rollback")
@click.pass_context
def cli(ctx: click.Context, /, **flags: Any) -> None:
    """Roll a Pulumi-managed deployment back to a known-good release.

    Every step is planned, journalled and verified against the cloud. Exit
    codes: 0 ok, 1 a rollback or check failed, 2 usage or configuration,
    3 lock held, 4 integrity, 70 internal error.
    """
    from rollback.cli.factory import Factory

    ctx.obj = Factory.from_flags(flags)
    stacks = ctx.obj.settings.stacks
    if len(stacks) > 1 and ctx.invoked_subcommand not in SEVERAL_STACKS:
        raise click.UsageError(
            f"`rollback {ctx.invoked_subcommand}` works on one stack, and {len(stacks)} were "
            f"named ({', '.join(stacks)}); pass a single --stack."
        )
    _configure_logging(ctx.obj.settings.debug)


def _configure_logging(debug: bool) -> None:
    import logging  # here, not at the top: `rollback --help` should not pay for it

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s" if not debug else "%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "git", "s3transfer"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure ends here as one sentence and a documented exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = _wants_debug(args)
    json_output = _wants_json(args)
    try:
        # Without standalone mode click returns (not raises) the code of `ctx.exit(n)`.
        code = cli.main(args=args, prog_name="rollback", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("Aborted; nothing was changed after the prompt.", err=True)
        sys.exit(ExitCode.FAILED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        if json_output:  # pipelines get the one JSON document for usage errors too
            import json

            document = {"error": "UsageError", "message": exc.format_message(), "exit_code": 2}
            click.echo(json.dumps(document, sort_keys=True))
        sys.exit(ExitCode.USAGE)
    except RollbackError as exc:
        if debug:
            _print_traceback()
        _report(exc.message, exc.as_dict(), json_output)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        if debug:
            _print_traceback()
        message = f"internal error: {type(exc).__name__}: {exc}. Rerun with --debug and report it."
        _report(
            message, {"error": "InternalError", "message": message, "exit_code": 70}, json_output
        )
        sys.exit(ExitCode.INTERNAL)


def _wants_debug(args: list[str]) -> bool:
    import os

    # The same spellings config.load accepts, read before settings exist.
    from_env = os.environ.get("ROLLBACK_DEBUG", "").lower() in ("1", "true", "yes", "on")
    return "--debug" in args or from_env


def _wants_json(args: list[str]) -> bool:
    import os

    for i, arg in enumerate(args):
        if arg in ("--output", "-o") and i + 1 < len(args):
            return args[i + 1] == "json"
        if arg == "--output=json":
            return True
    return os.environ.get("ROLLBACK_OUTPUT") == "json"


def _report(message: str, data: dict[str, Any], json_output: bool) -> None:
    click.echo(f"error: {message}", err=True)
    if json_output:
        import json

        click.echo(json.dumps(data, sort_keys=True))


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()
