"""Run a Pulumi Python program in-process with the SDK's own runtime.

The program runs as the Pulumi language host runs it (`run_in_stack`, which
waits for every outstanding registration), but against an `EmbeddedMonitor`
instead of the engine. Each run happens on its own thread: the SDK keeps its
state in context variables and a per-thread event loop, so a fresh thread
with freshly reset settings gives every run a clean runtime, and several runs
in one process do not see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import runpy
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rollback.engine.embedded.program import (
    Declaration,
    InvokeHandler,
    ProgramRun,
    ResourceHandler,
)
from rollback.errors import EngineError, RollbackError, UsageError

logger = logging.getLogger(__name__)
_program_logger = logging.getLogger(__name__ + ".program")
# Several programs never run at once in one process: cwd, sys.path and the
# SDK's class-level callback registry are process-wide.
_RUN_LOCK = threading.Lock()

# Threads that carry the program's RPCs. Registrations wait in them for the gate
# (gate.py), and an invoke needs one while they wait, so this is no cap on
# parallelism (the gate's is): the pool only grows as threads are needed.
RPC_THREADS = 1024

# Allocations between two collections of the youngest generation during a run (Python's
# default is 700): the SDK's futures and Outputs live as long as the run.
_YOUNG_THRESHOLD = 10_000

# Called once the program's own code has returned: (what it constructed, its error or None).
AfterCode = Callable[[tuple[Declaration, ...], BaseException | None], None]


def program_main(program_dir: Path) -> Path:
    """The program's entry file: `__main__.py` in the directory, or under the `main:` of its Pulumi.yaml.

    Raises UsageError when neither holds a Python Pulumi program.
    """
    main = program_dir / "__main__.py"
    project_file = program_dir / "Pulumi.yaml"
    if not main.is_file() and project_file.is_file():
        import yaml

        try:
            project = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{project_file} is not valid YAML: {exc}.") from exc
        if isinstance(project, dict) and project.get("main"):
            main = program_dir / str(project["main"]) / "__main__.py"
    if not main.is_file():
        raise UsageError(
            f"{program_dir} holds no Pulumi Python program (no __main__.py); "
            "pass the program's directory with --program."
        )
    return main


def run_program(
    program_dir: Path,
    *,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: Iterable[str],
    preview: bool,
    handler: ResourceHandler,
    max_workers: int = 4,
    reader: Any = None,
    invoke: InvokeHandler | None = None,
    after_code: AfterCode | None = None,
    deferring: Callable[[], bool] | None = None,
    held: Callable[[], int] | None = None,
) -> ProgramRun:
    """Run the program to completion; return every registration, its result and the exports.

    `config` maps `project:key` to the plain string value (secrets decrypted);
    `secret_keys` names those that are secret, so outputs derived from them stay
    secret. `handler` is called for each custom resource, from up to
    `max_workers` threads at once; `invoke`, when given, answers the data
    sources it supports (while `deferring()` is true, an unsupported one is
    answered empty and left for the caller to refuse). `after_code`, when
    given, is called with every resource the program constructed once its
    own code has raised, or has returned and every RPC still unfinished is one
    the handler holds (`held()` of them); it may raise to refuse the run. A
    failure of the handler is re-raised as is (RollbackErrors) or as
    EngineError; an exception of the program becomes an EngineError naming the
    program and the message.
    """
    program_dir = program_dir.resolve()
    main = program_main(program_dir)
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            outcome["run"] = _run_on_this_thread(
                main,
                project,
                stack,
                dict(config),
                list(secret_keys),
                preview,
                handler,
                max_workers,
                reader,
                invoke,
                after_code,
                deferring,
                held,
            )
        except BaseException as exc:  # noqa: BLE001 handed to the calling thread
            outcome["error"] = exc
        finally:
            finished.set()

    with _RUN_LOCK, collector_for_a_run():
        thread = threading.Thread(target=target, name=f"pulumi-program-{project}-{stack}")
        thread.start()
        try:
            finished.wait()
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM: the program's thread is applying to the cloud. The caller's
            # lock must outlive it, so the interrupt waits for it (a second Ctrl-C does not).
            # Not thread.join() again: an interrupted join marks the thread stopped while it
            # still runs (CPython 3.11, bpo-45274's fix), and returns at once.
            finished.wait()
            raise
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    run: ProgramRun = outcome["run"]
    return run


@contextlib.contextmanager
def collector_for_a_run() -> Iterator[None]:
    """Set the garbage collector for a run: older objects frozen, the youngest generation larger.

    The SDK makes several futures and Outputs per property of every resource,
    so a run of a few hundred resources triggers full collections, and each
    rescans every object the process had before it (~300,000 once pulumi_aws,
    boto3 and moto are imported): 0.2 s of CPU each, a tenth of a
    200-resource `up`. Those are modules, classes and caches that outlive the
    run; frozen (`gc.freeze`) they are skipped, and they go back to the oldest
    generation when the run ends. The run's own garbage is collected as
    usual, its youngest generation every `_YOUNG_THRESHOLD` allocations
    rather than 700 (most of what the SDK makes lives as long as the run).
    Nested, only the outermost acts (the engine's `up` holds it over the
    checkpoint's write too); a process that keeps objects frozen itself is
    left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], _YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _run_on_this_thread(
    main: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    preview: bool,
    handler: ResourceHandler,
    max_workers: int,
    reader: Any = None,
    invoke: InvokeHandler | None = None,
    after_code: AfterCode | None = None,
    deferring: Callable[[], bool] | None = None,
    held: Callable[[], int] | None = None,
) -> ProgramRun:
    from google.protobuf import empty_pb2
    from pulumi.runtime import config as runtime_config
    from pulumi.runtime import settings
    from pulumi.runtime.mocks import MockEngine, MockSettings
    from pulumi.runtime.stack import register_stack_transformation, run_in_stack

    from rollback.engine.embedded.monitor import DeclarationRecorder, EmbeddedMonitor

    program_dir = main.parent
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_unobserved_failure)
    asyncio.set_event_loop(loop)
    executor = _CountingExecutor(max_workers=max_workers, thread_name_prefix="pulumi-rpc")
    loop.set_default_executor(executor)
    monitor = EmbeddedMonitor(handler, reader, invoke, deferring)
    modules_before = set(sys.modules)
    cwd_before = os.getcwd()
    try:
        # What set_mocks does, minus creating the root Stack: run_in_stack makes
        # it, as under the real language host, so exports land on it.
        settings.reset_options(
            project=project,
            stack=stack,
            root_directory=str(program_dir),
            preview=preview,
            organization="organization",
        )
        settings.configure(
            MockSettings(  # type: ignore[no-untyped-call]
                monitor=monitor,
                monitor_features=set(
                    monitor.GetDeploymentInfo(empty_pb2.Empty()).supportedFeatures
                ),
                engine=MockEngine(_program_logger),
                project=project,
                stack=stack,
                dry_run=preview,
                organization="organization",
                root_directory=str(program_dir),
                callbacks=None,
            )
        )
        runtime_config.set_all_config(config, secret_keys)
        sys.path.insert(0, str(program_dir))
        os.chdir(program_dir)

        code_failure: list[BaseException] = []
        recorder = DeclarationRecorder(project, stack)

        def program() -> Awaitable[None] | None:
            if after_code is not None:
                register_stack_transformation(recorder)
            try:
                runpy.run_path(str(main), run_name="__main__")
            except BaseException as exc:
                code_failure.append(exc)
                if after_code is not None:
                    after_code(tuple(recorder.declarations), exc)  # may raise a better cause
                raise
            return None if after_code is None else when_settled()

        async def when_settled() -> None:
            # Registrations are sent once the code has returned: wait until all that
            # can be sent without a step's result has been (the gate holds the rest).
            await _settled(executor, held)
            error = monitor.failure  # a registration refused on arrival refuses the run
            assert after_code is not None
            after_code(tuple(recorder.declarations), error)
            if error is not None:
                raise error

        try:
            loop.run_until_complete(run_in_stack(program))
        except BaseException as exc:
            failure = monitor.failure
            if code_failure and failure is code_failure[0]:
                failure = None  # the program's own exception, handed to waiting registrations
            if isinstance(failure, RollbackError):
                raise failure from None
            if failure is not None:
                raise EngineError(
                    f"applying the program {main} failed: {type(failure).__name__}: {failure}",
                    program=str(main),
                ) from failure
            if isinstance(exc, RollbackError):
                raise
            raise EngineError(
                f"the program {main} failed: {_describe(exc)}", program=str(main)
            ) from exc
        if monitor.failure is not None:
            raise EngineError(
                f"applying the program {main} failed: {monitor.failure}", program=str(main)
            ) from monitor.failure
        return ProgramRun(
            project=project,
            stack=stack,
            stack_urn=monitor.stack_urn,
            resources=tuple(monitor.registered),
            exports=dict(monitor.exports),
            component_outputs=dict(monitor.component_outputs),
        )
    finally:
        _close_loop(loop)
        executor.shutdown(wait=True)
        monitor.loops.close()  # the RPC threads' event loops (monitor.LoopPool)
        asyncio.set_event_loop(None)
        os.chdir(cwd_before)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(program_dir))
        _forget_program_modules(program_dir, modules_before)


class _CountingExecutor(ThreadPoolExecutor):
    """The RPC threads, counting the calls not finished yet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self.unfinished = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._count_lock:
            self.unfinished += 1
        future = super().submit(fn, *args, **kwargs)
        # Registered before asyncio chains its own callback: counted down first.
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: Any) -> None:
        with self._count_lock:
            self.unfinished -= 1


async def _settled(executor: _CountingExecutor, held: Callable[[], int] | None) -> None:
    """Return once the program can make no progress without a held registration.

    That is: the event loop has no callback ready to run (a registration takes
    several turns of the loop before it is sent), every unfinished RPC is one
    the caller holds (`held()`), and it stays so over a few turns (a finished
    RPC's result reaches the loop just after it is counted down).
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # CPython's queue of callbacks to run next
    steady = 0
    while steady < 3:
        await asyncio.sleep(0.001)  # the loop runs all that is ready meanwhile
        idle = ready is None or len(ready) == 0
        if idle and executor.unfinished == (held() if held is not None else 0):
            steady += 1
        else:
            steady = 0


def _unobserved_failure(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A registration's failure the SDK never awaited: already reported as the run's error.

    asyncio would print it with a traceback on stderr ("Future exception was
    never retrieved"); the run raises the first failure as one sentence, so
    the rest goes to the debug log only.
    """
    if context.get("exception") is not None:
        logger.debug(
            "unobserved failure in the program's runtime: %s",
            context.get("message"),
            exc_info=context["exception"],
        )
        return
    loop.default_exception_handler(context)


def _describe(exc: BaseException) -> str:
    from pulumi.errors import RunError

    if isinstance(exc, RunError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what a failed run left pending (as the automation server does), then close."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(task)
    loop.close()


def _forget_program_modules(program_dir: Path, before: set[str]) -> None:
    """Unload the program's own modules so the next run imports its files afresh.

    `program_dir` is resolved, and is both the run's sys.path entry and its working
    directory, so its modules' files start with it: a string test, where resolving
    each of the thousands of modules a first run imports (pulumi_aws's) took half a
    second of CPU.
    """
    inside = os.path.join(program_dir, "")
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules.get(name), "__file__", None)
        if module_file and module_file.startswith(inside):
            del sys.modules[name]
