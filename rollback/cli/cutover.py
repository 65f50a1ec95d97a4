"""`rollback cutover COLOR` and `rollback watch`: automated rollback triggers.

SIGTERM and Ctrl-C set a flag (and wake any wait); the core sees it at its
next check and leaves traffic on a verified state. Waits are shown on stderr
only when it is a terminal.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import click

from rollback.cli.params import POSITIVE_MS, WholeNumber
from rollback.cli.render import emit

if TYPE_CHECKING:
    from rollback.cutover import Cutover
    from rollback.triggers import SignalSpec

SIGNAL_OPTIONS = (
    click.option(
        "--alarm",
        "alarms",
        multiple=True,
        help="CloudWatch alarm that must not reach ALARM (repeatable).",
    ),
    click.option(
        "--health", "health_urls", multiple=True, help="Health URL of the new colour (repeatable)."
    ),
    click.option(
        "--max-5xx-rate", help="Highest target 5xx rate, a fraction (0.05) or a percentage (5%)."
    ),
    click.option(
        "--max-p99-ms",
        type=POSITIVE_MS,
        help="Highest p99 target response time, in milliseconds.",
    ),
    click.option(
        "--health-failures",
        type=WholeNumber(min=1),
        default=3,
        show_default=True,
        help="Failed health checks in a row that are a breach.",
    ),
    click.option(
        "--interval", default="10s", show_default=True, help="How often the signals are read."
    ),
    click.option(
        "--follow-redirects",
        is_flag=True,
        help="A health URL answering 3xx passes when where it leads answers 2xx (default: fails).",
    ),
)


@dataclass(frozen=True)
class _SignalOptions:
    """The signal options as given (fields named as their click parameters).

    `spec()` parses them, after the command's own options.
    """

    alarms: tuple[str, ...]
    health_urls: tuple[str, ...]
    max_5xx_rate: str | None
    max_p99_ms: float | None
    health_failures: int
    interval: str
    follow_redirects: bool

    def spec(self) -> SignalSpec:
        from rollback.triggers import SignalSpec, parse_duration, parse_rate

        return SignalSpec(
            alarms=self.alarms,
            health_urls=self.health_urls,
            max_5xx_rate=parse_rate(self.max_5xx_rate) if self.max_5xx_rate is not None else None,
            max_p99_ms=self.max_p99_ms,
            failures=self.health_failures,
            interval_s=parse_duration(self.interval, "--interval"),
            follow_redirects=self.follow_redirects,
        )


def _signal_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command` the signal options, handed to it as one `signals` argument."""

    @functools.wraps(command)
    def with_signals(*args: Any, **kwargs: Any) -> Any:
        given = {f.name: kwargs.pop(f.name) for f in fields(_SignalOptions)}
        return command(*args, signals=_SignalOptions(**given), **kwargs)

    decorated: Callable[..., Any] = with_signals
    for option in reversed(SIGNAL_OPTIONS):
        decorated = option(decorated)
    return decorated


class _Interrupt:
    """The flag SIGTERM/SIGINT set; `sleep` waits on it so a signal ends a wait at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.name: str | None = None

    def __call__(self) -> str | None:
        return self.name

    def sleep(self, seconds: float) -> None:
        self.event.wait(seconds)

    @contextmanager
    def installed(self) -> Iterator[_Interrupt]:
        def handler(signum: int, frame: Any) -> None:
            self.name = signal.Signals(signum).name
            self.event.set()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, old in previous.items():
                signal.signal(s, old)


def exit_code(ok: bool, signal_name: str | None) -> int:
    """0 ok, 1 failed; a Ctrl-C (or SIGTERM) that ended the wait is 130 (143), as everywhere."""
    if signal_name == "SIGINT":
        return 130
    if signal_name == "SIGTERM":
        return 143
    return 0 if ok else 1


def _apis(factory: Any) -> Any:
    from rollback.aws.cloudwatch import Alarms, Metrics
    from rollback.aws.elbv2 import LoadBalancing
    from rollback.aws.route53 import Dns
    from rollback.triggers import CloudApis

    clients = factory.clients()
    return CloudApis(
        elbv2=LoadBalancing(clients("elbv2")),
        route53=Dns(clients("route53")),
        alarms=Alarms(clients("cloudwatch")),
        metrics=Metrics(clients("cloudwatch")),
    )


def rollback_to_of(factory: Any, actor: str, via: str) -> Callable[[str, str], Any]:
    """The full rollback (`rollback to VERSION --yes`) as `rollback_to(version, reason)`.

    `via` names the command in the run's confirmation (cutover, watch).
    """

    def rollback_to(version: str, reason: str) -> Any:
        from rollback.orchestrate import rollback_to as orchestrated
        from rollback.planner import Options

        return orchestrated(
            factory.workbench(),
            version,
            Options(reason=reason, actor=actor),
            confirmation=f"rollback {via}",
        )

    return rollback_to


@contextmanager
def _cutover_runner(factory: Any) -> Iterator[Cutover]:
    """The Cutover that `cutover` and `resume` run, with SIGTERM and Ctrl-C caught meanwhile."""
    from rollback.cutover import Cutover
    from rollback.waiting import Timing

    actor = _actor()
    interrupt = _Interrupt()
    bench = factory.workbench()
    with interrupt.installed():
        yield Cutover(
            factory.store(),
            factory.settings.stack,
            _apis(factory),
            timing=Timing(sleep=interrupt.sleep, on_wait=factory.wait_printer()),
            interrupted=interrupt,
            notifiers=factory.notifiers(),
            rollback_to=rollback_to_of(factory, actor, "cutover"),
            actor=actor,
            owner=bench.owner(),
            outcome=bench.outcome_check,
        )


def resume_cutover_run(factory: Any, run_id: str) -> tuple[Any, int]:
    """`rollback resume RUN` for a cutover run, with `cutover`'s signal handling.

    Returns the result and the exit code: 130 (143) when Ctrl-C (SIGTERM)
    ended it, as `cutover` itself exits.
    """
    with _cutover_runner(factory) as runner:
        result = runner.resume(run_id)
    return result, exit_code(result.ok, runner.interrupted())


def _actor() -> str:
    from rollback.store.lock import current_user

    return current_user()


def cutover_text(result: Any) -> str:
    lines = [result.message]
    for step in result.to_dict().get("steps", []):
        lines.append(
            f"  {step['state']:<20} {step['name']}{'  ' + step['error'] if step['error'] else ''}"
        )
    rollback = result.to_dict().get("rollback")
    if rollback:
        lines.append(f"  rollback run {rollback.get('run_id')}: {rollback.get('result')}")
    return "\n".join(lines)


@click.command()
@click.argument("color", type=click.Choice(["blue", "green"]))
@click.option(
    "--steps",
    default="100",
    show_default=True,
    help="Percentages of traffic for COLOR, e.g. 10,50,100.",
)
@click.option(
    "--pause",
    default="1m",
    show_default=True,
    help="How long each step before the last is watched.",
)
@click.option(
    "--bake",
    default="0",
    show_default=True,
    help="How long the last step is watched (90s, 10m, 1h).",
)
@_signal_options
@click.option(
    "--rollback-on-breach",
    is_flag=True,
    help="After reverting traffic, roll back to the previous stable release.",
)
@click.option("--promote", is_flag=True, help="Mark the release stable when the bake passes.")
@click.pass_context
def cutover(
    ctx: click.Context,
    color: str,
    steps: str,
    pause: str,
    bake: str,
    signals: _SignalOptions,
    rollback_on_breach: bool,
    promote: bool,
) -> None:
    """Move traffic to COLOR in steps, watching alarms, metrics and health URLs.

    On a breach traffic goes back to the other colour at once (verified) and
    the command exits 1; SIGTERM leaves it on the last verified step for
    `rollback resume RUN`.
    """
    from rollback.cutover import CutoverSpec, parse_steps
    from rollback.triggers import parse_duration

    factory = ctx.find_root().obj
    spec = CutoverSpec(
        color=color,
        steps=parse_steps(steps),
        pause_s=parse_duration(pause, "--pause"),
        bake_s=parse_duration(bake, "--bake"),
        signals=signals.spec(),
        promote=promote,
        rollback_on_breach=rollback_on_breach,
    )
    with _cutover_runner(factory) as runner:
        result = runner.run(spec)
    emit(ctx, result, cutover_text)
    ctx.exit(exit_code(result.ok, runner.interrupted()))


@click.command()
@click.option(
    "--window",
    default="10m",
    show_default=True,
    help="How long after the release was recorded to watch.",
)
@_signal_options
@click.option(
    "--to", "to_version", help="Roll back to this version on a breach  [default: last stable]"
)
@click.option(
    "--promote", is_flag=True, help="Mark the release stable when the window passes clean."
)
@click.pass_context
def watch(
    ctx: click.Context,
    window: str,
    signals: _SignalOptions,
    to_version: str | None,
    promote: bool,
) -> None:
    """Watch the current release for its window; roll back on a breach.

    Exit 0 when the window passes clean, 1 when it rolled back (or stopped),
    3 when another run holds the lock.
    """
    from rollback.triggers import WatchSpec, parse_duration, stop_checker, watch_release
    from rollback.waiting import Timing

    factory = ctx.find_root().obj
    spec = WatchSpec(
        window_s=parse_duration(window, "--window"),
        signals=signals.spec(),
        to_version=to_version,
        promote=promote,
    )
    actor = _actor()
    rollback_to = rollback_to_of(factory, actor, "watch")
    interrupt = _Interrupt()
    store = factory.store()
    with interrupt.installed():
        result = watch_release(
            factory.registry(),
            _apis(factory),
            spec,
            rollback_to,
            timing=Timing(sleep=interrupt.sleep, on_wait=factory.wait_printer()),
            should_stop=stop_checker(store, factory.settings.stack, interrupt),
            actor=actor,
        )
    emit(ctx, result, cutover_text)
    ctx.exit(exit_code(result.ok, interrupt()))
