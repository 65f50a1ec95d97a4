"""Entry point: global options, lazy command groups, the one error handler.

Command modules are imported only when their command runs, so `rollback
--help` and light commands start without pulumi, boto3 or moto.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import sys
from collections.abc import Callable, Sequence
from functools import partial
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

from rollback import collector

collector.pause()  # until the command runs: see rollback.collector

import click  # noqa: E402 - after the pause, which is for its import too

from rollback import __version__  # noqa: E402
from rollback.errors import (  # noqa: E402
    ExitCode,
    RollbackError,
    Terminated,
    interrupt_exit_code,
)

# On its way out the interpreter runs full garbage collections over every object
# still alive (click's and every imported module's: a tenth of `rollback --help`,
# far more after boto3 or pulumi), only to free memory the OS takes back anyway.
# Frozen at exit, those objects are skipped; other exit handlers (logging's flush,
# tempfile's clean-up) run as before.
atexit.register(gc.freeze)

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
    "resume": (
        "rollback.cli.run",
        "resume",
        "Carry a run forward: after its process died, or once a failure's cause is fixed.",
    ),
    "abort": (
        "rollback.cli.run",
        "abort",
        "Undo a failed rollback, only towards a healthy colour.",
    ),
    "status": ("rollback.cli.status", "status", "The run in progress, or the last one."),
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

# The root's options, accepted before or after the command (`rollback to 1.4.0 -o json`).
# option -> takes a value
GLOBAL_OPTIONS: dict[str, bool] = {
    "--stack": True,
    "--stacks-file": True,
    "--store": True,
    "--engine": True,
    "--output": True,
    "-o": True,
    "--debug": False,
    "--quiet": False,
    "-q": False,
    "--verbose": False,
    "-v": False,
}

GLOBAL_HELP = [
    ("--stack PROJECT/STACK", "ROLLBACK_STACK; repeat for a fleet  [default: webapp/dev]"),
    ("--store DIR|s3://B/P", "ROLLBACK_STORE  [default: ./artifacts]"),
    ("--engine auto|pulumi|embedded", "ROLLBACK_ENGINE  [default: auto]"),
    ("-o, --output text|json", "ROLLBACK_OUTPUT; json: one document on stdout"),
    ("-q, --quiet / -v, --verbose", "only warnings and errors / more detail on stderr"),
    ("--debug", "tracebacks and AWS wire logs (secrets redacted)"),
]

# Real examples shown at the end of each command's help (tests run every one
# through the parser). Keyed by the command path after `rollback`.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("rollback to last-stable --yes", "rollback --stack webapp/prod release list -o json"),
    "cloud": ('eval "$(rollback cloud start)"', "rollback cloud status"),
    "cloud start": ('eval "$(rollback cloud start)"', 'eval "$(rollback cloud start --port 5000)"'),
    "cloud status": ("rollback cloud status",),
    "cloud stop": ("rollback cloud stop",),
    "cutover": (
        "rollback cutover green --steps 10,50,100 --pause 2m --bake 10m --promote",
        "rollback cutover green --alarm webapp-prod-5xx --max-5xx-rate 2% -o json",
    ),
    "demo": ("rollback demo", "rollback demo --keep"),
    "emergency": (
        'rollback emergency --reason "5xx after 1.5.0"',
        "rollback --stack webapp/prod-eu --stack webapp/prod-us emergency --break-lock",
    ),
    "history": ("rollback history", "rollback history --stack webapp/prod -o json"),
    "lock": ("rollback lock show", "rollback lock break"),
    "lock break": ("rollback lock break --stack webapp/prod",),
    "lock show": ("rollback lock show", "rollback lock show -o json"),
    "plan": ("rollback plan last-stable", "rollback plan 1.4.0 --accept-data-loss -o json"),
    "release": ("rollback release list", "rollback release record 1.5.0 --artifact dist/app.tgz"),
    "release changelog": ("rollback release changelog 1.4.0 1.5.0",),
    "release list": ("rollback release list", "rollback release list --stack webapp/prod -o json"),
    "release mark": (
        'rollback release mark 1.4.0 --stable --reason "baked a week"',
        'rollback release mark 1.5.0 --bad --reason "5xx on checkout"',
    ),
    "release prune": ("rollback release prune --keep 5 --dry-run",),
    "release record": (
        "rollback release record 1.5.0 --artifact dist/app.tgz --color green",
        "rollback release record 1.5.0 --artifact dist/app.tgz --schema-revision b2 "
        "--migration-command 'alembic downgrade {revision}'",
    ),
    "release show": ("rollback release show last-stable", "rollback release show 1.4.0 -o json"),
    "release verify": ("rollback release verify 1.4.0",),
    "report": ("rollback report RUN", "rollback report RUN -o json"),
    "resume": ("rollback resume RUN",),
    "abort": ("rollback abort RUN", "rollback abort RUN -o json"),
    "agent": ("rollback agent setup --dry-run", "rollback agent run --queue URL"),
    "agent setup": ("rollback agent setup --dry-run", "rollback agent setup -o json"),
    "agent run": (
        "rollback agent run --queue URL",
        "rollback agent run --queue URL --metrics-port 9464",
    ),
    "cloud databases": ("rollback cloud databases", "rollback cloud databases -o json"),
    "stack": ("rollback stack up", "rollback stack verify 1.4.0"),
    "stack export": ("rollback stack export > checkpoint.json",),
    "stack reapply": ("rollback stack reapply 1.4.0",),
    "stack up": ("rollback stack up", "rollback stack up --program stacks/webapp"),
    "stack verify": ("rollback stack verify", "rollback stack verify 1.4.0 -o json"),
    "status": ("rollback status", "rollback status --watch -o json"),
    "to": (
        'rollback to last-stable --yes --reason "5xx on 1.5.0"',
        "rollback to 1.4.0 --accept-data-loss -o json --yes",
    ),
    "watch": ("rollback watch --window 10m --alarm webapp-prod-5xx", "rollback watch --promote"),
}


def hoist_global_options(args: list[str]) -> list[str]:
    """`rollback to 1.4 -o json` as `rollback -o json to 1.4`: globals may follow the command.

    Only the root's own options move (no subcommand has an option of the same
    name; a test keeps it so); everything after `--` stays where it is.
    """
    hoisted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            width = 2 if GLOBAL_OPTIONS[name] and "=" not in arg else 1
            hoisted.extend(args[i : i + width])
            i += width
            continue
        rest.append(arg)
        i += 1
    return hoisted + rest


def _format_epilog(path: str, ctx: click.Context, formatter: click.HelpFormatter) -> None:
    with formatter.section("Global options (before or after the command)"):
        formatter.write_dl(GLOBAL_HELP)
    _write_examples(formatter, EXAMPLES.get(path, ()))


def _write_examples(formatter: click.HelpFormatter, examples: tuple[str, ...]) -> None:
    if examples:
        with formatter.section("Examples"):
            for example in examples:  # never wrapped: each is copied whole into a shell
                formatter.write(f"{'':>{formatter.current_indent}}{example}\n")


def _with_help(command: click.Command, path: str) -> click.Command:
    """Give `command` (and its subcommands) the global options and examples in --help."""
    setattr(command, "format_epilog", partial(_format_epilog, path))  # noqa: B010
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _with_help(sub, f"{path} {name}")
    return command


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attr)
        return _with_help(command, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _write_examples(formatter, EXAMPLES[""])
        formatter.write_paragraph()
        formatter.write_text(
            "Global options may also follow the command. Shell completion: "
            'eval "$(_ROLLBACK_COMPLETE=bash_source rollback)" (zsh_source, fish_source).'
        )


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
    "--backend-url",
    envvar="PULUMI_BACKEND_URL",
    help="Pulumi backend of the pulumi engine (file://, s3://, https://api.pulumi.com)",
)
@click.option(
    "--no-refresh",
    "refresh",
    flag_value=False,
    default=None,
    help="Re-apply without refreshing state from the cloud first (journalled).",
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
@click.option(
    "--quiet", "-q", is_flag=True, default=None, help="Only warnings and errors on stderr."
)
@click.option("--verbose", "-v", is_flag=True, default=None, help="More detail on stderr.")
@click.version_option(version=__version__, prog_name="rollback")
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
    settings = ctx.obj.settings
    _configure_logging(settings.debug, settings.quiet, settings.verbose)
    if ctx.invoked_subcommand not in ("to", "emergency") or len(stacks) > 1:
        collector.resume()  # a single-stack rollback's executor resumes it (rollback.collector)


def _configure_logging(debug: bool, quiet: bool = False, verbose: bool = False) -> None:
    from rollback.cli import render

    render.QUIET = quiet and not debug
    configure = partial(_configure_handlers, debug, quiet, verbose)
    if "logging" in sys.modules:
        configure()
    else:
        # Light commands (`release list` on a local store, `lock show`) import nothing
        # that logs, and importing logging only to configure it would be a tenth of
        # their start. Configured as logging is imported, it is ready before any record.
        sys.meta_path.insert(0, _ConfigureOnImport("logging", configure))


def _configure_handlers(debug: bool, quiet: bool, verbose: bool) -> None:
    import logging

    from rollback.redact import install_redaction

    level = logging.DEBUG if debug or verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s" if not debug else "%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger().setLevel(level)
    install_redaction()
    if not debug:
        for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "git", "s3transfer"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


class _ConfigureOnImport:
    """An import hook (first on sys.meta_path) that runs `configure` once `name` is imported.

    It finds nothing itself: for `name` it takes the spec of the standard path
    finder and has that spec's loader run `configure` right after the module's
    code. It acts once and then stays in place, inert: taking it out of
    sys.meta_path could make another thread's import loop skip a finder.
    """

    def __init__(self, name: str, configure: Callable[[], None]) -> None:
        self.name = name
        self.configure: Callable[[], None] | None = configure

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name or self.configure is None:
            return None
        configure, self.configure = self.configure, None
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        run_module = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            configure()

        # The finder made this loader for this one spec: nothing else sees the change.
        setattr(spec.loader, "exec_module", exec_module)  # noqa: B010
        return spec


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure ends here as one sentence and a documented exit code.

    SIGTERM (a cancelled CI job) unwinds as Ctrl-C does, as Terminated: a run
    in flight stops where its journal says and releases its lock, and the
    command exits 143. Commands that wait on signals (cutover, watch, agent)
    install their own handlers meanwhile.
    """
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    previous = _on_sigterm(_terminate)
    try:
        _run(args)
    finally:
        _on_sigterm(previous)
        collector.resume()


def _terminate(signum: int, frame: Any) -> None:
    # Once: the run unwinds to a state its journal names and releases its lock; a second
    # SIGTERM must not break that off half-way (SIGKILL still ends the process).
    _on_sigterm(_ignore)
    raise Terminated()


def _ignore(signum: int, frame: Any) -> None:
    """Not SIG_IGN: a program we start after it (git) must not inherit an ignored SIGTERM."""


def _on_sigterm(handler: Any) -> Any:
    """Install `handler` for SIGTERM and return the one before (nothing off the main thread)."""
    import signal
    import threading

    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _interrupted(exc: BaseException | None) -> str:
    """What an interrupt outside a run says (a run in flight raises Interrupted instead)."""
    return "Terminated (SIGTERM)." if isinstance(exc, Terminated) else "Interrupted."


def _run(args: list[str]) -> None:
    debug = _wants_debug(args)
    json_output = _wants_json(args)
    try:
        # Without standalone mode click returns (not raises) the code of `ctx.exit(n)`.
        code = cli.main(args=args, prog_name="rollback", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort: `from None` at a prompt, `from` the interrupt elsewhere
        # (a run in flight raises Interrupted instead, naming the run to resume).
        at_prompt = exc.__cause__ is None
        cause = exc.__context__
        click.echo(
            "Aborted; nothing was changed after the prompt." if at_prompt else _interrupted(cause),
            err=True,
        )
        interrupted = isinstance(cause, KeyboardInterrupt)
        sys.exit(interrupt_exit_code(cause) if interrupted else ExitCode.FAILED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        if json_output:  # pipelines get the one JSON document for usage errors too
            import json

            document = {"error": "UsageError", "message": exc.format_message(), "exit_code": 2}
            click.echo(json.dumps(document, sort_keys=True, allow_nan=False))
        sys.exit(ExitCode.USAGE)
    except RollbackError as exc:
        if debug:
            _print_traceback()
        _report(exc.message, exc.as_dict(), json_output)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        click.echo(_interrupted(exc), err=True)
        sys.exit(interrupt_exit_code(exc))
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

        click.echo(json.dumps(data, sort_keys=True, allow_nan=False))


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()
