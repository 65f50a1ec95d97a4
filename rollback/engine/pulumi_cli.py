"""The `pulumi` engine: the Pulumi Automation API driving the Pulumi CLI.

This is the engine production uses. It needs the `pulumi` command on PATH and
a backend the CLI is logged in to (or `backend_url`, passed to the CLI as
PULUMI_BACKEND_URL). What it guarantees:

- Secrets stay ciphertext. The stack file is written byte for byte as the
  release recorded it (`StackConfig.source`; comments, `environment:` and any
  secrets provider header intact), so nothing here decrypts config, and state
  is exported with `pulumi stack export` *without* `--show-secrets`
  (pkg/cmd/pulumi/stack/stack_export.go: secrets stay `ciphertext` unless
  that flag is given). `LocalWorkspace.export_stack` always adds the flag, so
  export and outputs call the CLI directly.
- Re-apply refreshes first (`up --refresh`, unless `refresh=False`), and
  `prove` is a live read: `preview --refresh --expect-no-changes`, which
  fails with "no changes were expected but changes were proposed"
  (pkg/backend/backenderr/backenderr.go) when the cloud differs; the changes
  it saw are returned per resource.
- The program runs with its own dependencies (`rollback.engine.pyenv`):
  PULUMI_PYTHON_CMD is never set by the toolkit.
- `cancel` on a self-managed backend waits for the update's process (named
  in its lock file) to end and never deletes a live update's lock
  (`rollback.engine.pulumi_locks`); on Pulumi Cloud it is `pulumi cancel`.

The CLI's output goes to this module's logger, line by line; nothing prints.
Automation API exceptions become `rollback.errors` classes in `_translated_errors`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.engine import Change, StackConfig
from rollback.engine.stack_file import stack_file_path, stack_file_text
from rollback.errors import ConfigError, EngineError, NotFound, StackBusy
from rollback.models import Checkpoint
from rollback.waiting import Timing

if TYPE_CHECKING:
    from pulumi import automation as auto

logger = logging.getLogger(__name__)

CLI_MISSING = (
    "the Pulumi CLI is not on PATH; install it or use --engine embedded against the embedded cloud."
)
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
MASKED = "[secret]"
# Steps of one replacement that Pulumi reports separately; callers want one "replace".
_REPLACE_OPS = frozenset(
    {"replace", "create-replacement", "delete-replaced", "discard-replaced", "import-replacement"}
)
_OP_NAMES = {
    "create": "create",
    "import": "create",
    "update": "update",
    "delete": "delete",
    "discard": "delete",
    "same": "same",
    "read": "same",
    "refresh": "same",
}
_STDERR_LINES_IN_ERRORS = 8
EXPECTED_NO_CHANGES = "no changes were expected but changes were proposed"
CLOUD_HOSTS = ("api.pulumi.com", "app.pulumi.com")
CANCEL_WAIT_S = 300.0


@dataclass(frozen=True)
class UpdateRecord:
    """One entry of `pulumi stack history`."""

    version: int | None
    kind: str
    result: str
    started_at: str
    ended_at: str | None
    message: str


def cli_available() -> bool:
    """True when a `pulumi` command is on PATH."""
    return shutil.which("pulumi") is not None


def find_project_dir(program_dir: Path) -> Path:
    """The directory holding Pulumi.yaml: `program_dir` or its nearest ancestor.

    `program_dir` may be the project root or the program's own directory (the
    project's `main`). Raises NotFound when no ancestor holds a project file.
    """
    start = program_dir.resolve()
    for candidate in (start, *start.parents):
        if any((candidate / name).is_file() for name in PROJECT_FILES):
            return candidate
    raise NotFound(
        f"no Pulumi.yaml in {program_dir} or above it; pass the Pulumi project's directory.",
        program_dir=str(program_dir),
    )


def checkpoint_from_deployment(deployment: auto.Deployment) -> Checkpoint:
    """Our Checkpoint from the Automation API's Deployment; IntegrityError unless version 3."""
    return Checkpoint.from_dict(
        {"version": deployment.version, "deployment": dict(deployment.deployment or {})}
    )


def changes_from_events(events: list[auto.EngineEvent]) -> list[Change]:
    """One Change per resource from the engine's resource-pre events, in the engine's order.

    The preview's change summary only counts operations; the events say which
    resource each one touches. The stack itself and providers are left out.
    """
    changes: dict[str, Change] = {}
    for event in events:
        pre = event.resource_pre_event
        if pre is None:
            continue
        step = pre.metadata
        if step.type.startswith("pulumi:"):
            continue
        op_value = getattr(step.op, "value", step.op)
        op = "replace" if op_value in _REPLACE_OPS else _OP_NAMES.get(op_value, op_value)
        earlier = changes.get(step.urn)
        # A refresh step ("same") comes before the update it leads to: the later op wins then.
        if earlier is not None and earlier.op != "same" and op != "replace":
            continue
        if earlier is None or earlier.op == "same":
            diff = tuple(step.diffs or step.keys or ())
        else:
            diff = earlier.diff
        changes[step.urn] = Change(urn=step.urn, type=step.type, op=op, diff=diff)
    return list(changes.values())


def counts_from_summary(resource_changes: Mapping[Any, int] | None) -> dict[str, int]:
    """The engine's own change counts (`summaryEvent.resourceChanges`): op -> resources."""
    return {
        str(getattr(op, "value", op)): int(count)
        for op, count in (resource_changes or {}).items()
        if count
    }


class PulumiEngine:
    """A StackEngine over the Pulumi Automation API (LocalWorkspace)."""

    name = "pulumi"

    def __init__(
        self,
        *,
        project_dir: Path,
        backend_url: str | None = None,
        env: Mapping[str, str] | None = None,
        command: auto.PulumiCommand | None = None,
        refresh: bool = True,
        pyenv_cache: Path | None = None,
        timing: Timing | None = None,
        cancel_wait_s: float = CANCEL_WAIT_S,
    ) -> None:
        """`project_dir` (or a directory under it) holds the Pulumi project used when no
        program is given (export, outputs, history, cancel). `refresh` makes `up`
        refresh first (`--refresh`); `pyenv_cache` is where release environments are kept.

        Raises ConfigError when the Pulumi CLI is not on PATH.
        """
        self.project_dir = project_dir
        self.backend_url = backend_url or os.environ.get("PULUMI_BACKEND_URL") or None
        self.refresh = refresh
        self.pyenv_cache = pyenv_cache
        self.timing = timing or Timing()
        self.cancel_wait_s = cancel_wait_s
        self._env = dict(env or {})
        self._command = command if command is not None else _pulumi_command()
        self.last_changes: list[Change] = []
        self.last_counts: dict[str, int] | None = None
        self._program_env: dict[str, str] = {}

    # -- StackEngine ---------------------------------------------------------

    def up(self, program_dir: Path, stack: str, config: StackConfig) -> Checkpoint:
        """Apply the program with `config` (refreshing first unless disabled); return the checkpoint.

        Raises StackBusy when another update runs, EngineError when the update fails.
        """
        events: list[auto.EngineEvent] = []
        with self._translated_errors(stack):
            target = self._prepared(program_dir, stack, config)
            result = target.up(
                color="never",
                on_output=self._log_output,
                on_event=events.append,
                show_secrets=False,
                refresh=self.refresh or None,
            )
        self.last_changes = changes_from_events(events)
        summary = next((e.summary_event for e in events if e.summary_event), None)
        self.last_counts = counts_from_summary(
            summary.resource_changes if summary else result.summary.resource_changes
        )
        logger.info(
            "stack %s updated (version %s%s): %s",
            stack,
            result.summary.version,
            ", refreshed first" if self.refresh else ", not refreshed",
            _summary_text(self.last_counts),
        )
        return self._export(stack, find_project_dir(program_dir))

    def preview(self, program_dir: Path, stack: str, config: StackConfig) -> list[Change]:
        """The changes `up` would make, one per resource; changes nothing in the cloud."""
        events: list[auto.EngineEvent] = []
        with self._translated_errors(stack):
            target = self._prepared(program_dir, stack, config)
            result = target.preview(
                color="never", on_output=self._log_output, on_event=events.append
            )
        logger.debug("preview summary of stack %s: %s", stack, dict(result.change_summary))
        return changes_from_events(events)

    def prove(self, program_dir: Path, stack: str, config: StackConfig) -> list[Change]:
        """The live proof: `preview --refresh --expect-no-changes`; the changes it found (none: proven).

        Refresh reads every resource from the cloud first, so a change made by hand
        after the update shows as an update here. Raises EngineError for any other failure.
        """
        from pulumi import automation as auto

        events: list[auto.EngineEvent] = []
        with self._translated_errors(stack):
            target = self._prepared(program_dir, stack, config)
            try:
                target.preview(
                    color="never",
                    on_output=self._log_output,
                    on_event=events.append,
                    refresh=True,
                    expect_no_changes=True,
                )
            except auto.CommandError as exc:
                if EXPECTED_NO_CHANGES not in str(exc):
                    raise
        return [change for change in changes_from_events(events) if change.op != "same"]

    def export(self, stack: str) -> Checkpoint:
        """The stack's current checkpoint, secrets as ciphertext; NotFound when there is no such stack."""
        return self._export(stack, self.project_dir)

    def _export(self, stack: str, project_dir: Path) -> Checkpoint:
        from pulumi import automation as auto

        with self._translated_errors(stack):
            # Not workspace.export_stack: it adds --show-secrets.
            result = self._run(["stack", "export", "--stack", stack], project_dir)
            doc = json.loads(result.stdout)
        return checkpoint_from_deployment(
            auto.Deployment(version=doc.get("version"), deployment=doc.get("deployment"))
        )

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's outputs; secret outputs are "[secret]" (the CLI masks them without --show-secrets)."""
        with self._translated_errors(stack):
            result = self._run(["stack", "output", "--json", "--stack", stack], self.project_dir)
        values = json.loads(result.stdout or "{}")
        return {key: value for key, value in dict(values).items()}

    # -- beyond the protocol -------------------------------------------------

    def import_checkpoint(self, stack: str, checkpoint: Checkpoint) -> None:
        """Replace the stack's state with `checkpoint` (`pulumi stack import`); touches no cloud resource."""
        from pulumi import automation as auto

        with self._translated_errors(stack):
            target = self._stack(self.project_dir, stack, create=True)
            target.import_stack(
                auto.Deployment(version=checkpoint.version, deployment=checkpoint.deployment)
            )

    def history(self, stack: str, limit: int | None = None) -> list[UpdateRecord]:
        """The stack's updates, newest first; config secrets are not revealed."""
        with self._translated_errors(stack):
            summaries = self._stack(self.project_dir, stack).history(
                page_size=limit, show_secrets=False
            )
        return [
            UpdateRecord(
                version=summary.version,
                kind=str(summary.kind),
                result=str(summary.result),
                started_at=summary.start_time.isoformat(),
                ended_at=summary.end_time.isoformat() if summary.end_time else None,
                message=summary.message or "",
            )
            for summary in summaries
        ]

    def cancel(self, stack: str) -> None:
        """Stop the update running on the stack.

        Self-managed backends (file://, s3://): identify the update from its lock
        file, wait for that process to end (StackBusy, lock untouched, when it does
        not in time or runs on another host), then clear a lock its dead process
        left behind. Pulumi Cloud: `pulumi cancel`. EngineError when no update runs.
        """
        from rollback.engine import pulumi_locks

        url = self.backend_url or _logged_in_backend()
        if url and pulumi_locks.is_diy_backend(url):
            project = _project_name(find_project_dir(self.project_dir))
            locks = pulumi_locks.read_locks(url, project, stack)
            if not locks:
                raise EngineError(f"no update is running on stack {stack}.", stack=stack)
            pulumi_locks.wait_for_updates(
                locks, stack, timeout_s=self.cancel_wait_s, timing=self.timing
            )
            if not pulumi_locks.read_locks(url, project, stack):
                logger.warning("the update on stack %s ended; its lock is gone", stack)
                return
            logger.warning("the update on stack %s is dead; clearing the lock it left", stack)
        with self._translated_errors(stack):
            self._stack(self.project_dir, stack).cancel()
        logger.warning("cancelled the update running on stack %s", stack)

    # -- plumbing ------------------------------------------------------------

    def _prepared(self, program_dir: Path, stack: str, config: StackConfig) -> auto.Stack:
        """The stack selected in `program_dir`'s project with `config`'s stack file and the release's Python."""
        from rollback.engine import pyenv

        root = find_project_dir(program_dir)
        self._write_stack_file(root, stack, config)
        python = pyenv.prepare(root, self.pyenv_cache)
        self._program_env = python.cli_env() if python else {}
        return self._stack(root, stack, create=True)

    def _workspace(self, program_dir: Path) -> auto.LocalWorkspace:
        from pulumi import automation as auto

        return auto.LocalWorkspace(
            work_dir=str(find_project_dir(program_dir)),
            env_vars=self._cli_env(),
            pulumi_command=self._command,
        )

    def _cli_env(self) -> dict[str, str]:
        # PULUMI_PYTHON_CMD is never forced: the project's own environment (pyenv) or
        # the operator's choice decides which Python runs the program.
        env = {"PULUMI_SKIP_UPDATE_CHECK": "true", **self._program_env}
        if self.backend_url:
            env["PULUMI_BACKEND_URL"] = self.backend_url
        env.update(self._env)
        return env

    def _run(self, args: list[str], program_dir: Path) -> Any:
        """One CLI command in the project, with this engine's environment."""
        return self._command.run(
            list(args), str(find_project_dir(program_dir)), self._cli_env(), None, self._log_output
        )

    def _stack(self, program_dir: Path, stack: str, *, create: bool = False) -> auto.Stack:
        from pulumi import automation as auto

        workspace = self._workspace(program_dir)
        if not create:
            return auto.Stack.select(stack, workspace)
        # Select first: the stack exists on every run but the first, and
        # create_or_select always tries `stack init` (one failing CLI call) before it.
        try:
            return auto.Stack.select(stack, workspace)
        except auto.StackNotFoundError:
            return auto.Stack.create(stack, workspace)

    def _write_stack_file(self, root: Path, stack: str, config: StackConfig) -> None:
        """Write Pulumi.<stack>.yaml as recorded, byte for byte, only when it differs."""
        path = stack_file_path(root, stack)
        wanted = stack_file_text(config).encode("utf-8")
        try:
            if path.read_bytes() == wanted:
                return
        except FileNotFoundError:
            pass
        path.write_bytes(wanted)

    @staticmethod
    def _log_output(line: str) -> None:
        logger.info("%s", line.rstrip())

    @contextmanager
    def _translated_errors(self, stack: str) -> Iterator[None]:
        from pulumi import automation as auto

        try:
            yield
        except auto.ConcurrentUpdateError as exc:
            raise StackBusy(
                f"another update is running on stack {stack}; wait for it to finish, "
                "or cancel it (`rollback emergency`) if its process died.",
                stack=stack,
            ) from exc
        except auto.StackNotFoundError as exc:
            raise NotFound(
                f"stack {stack} does not exist in the Pulumi backend; check --stack and the backend you are logged in to.",
                stack=stack,
            ) from exc
        except auto.CommandError as exc:
            raise EngineError(
                f"the Pulumi CLI failed on stack {stack}: {_stderr_tail(exc)}",
                stack=stack,
            ) from exc
        except auto.InvalidVersionError as exc:
            raise ConfigError(f"the Pulumi CLI is too old for this toolkit: {exc}.") from exc
        except FileNotFoundError as exc:
            if _is_missing_cli(exc):
                raise ConfigError(CLI_MISSING) from exc
            raise


def _project_name(root: Path) -> str:
    from rollback.stacks import load_project

    return load_project(root).name


def _logged_in_backend() -> str | None:
    """The backend `pulumi login` chose (~/.pulumi/credentials.json `current`), if any."""
    home = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    try:
        doc = json.loads((home / "credentials.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    current = doc.get("current") if isinstance(doc, dict) else None
    return str(current) if current else None


def _pulumi_command() -> auto.PulumiCommand:
    """The Automation API's handle on the CLI; it runs `pulumi version`, which fails when absent."""
    from pulumi import automation as auto

    try:
        return auto.PulumiCommand()
    except FileNotFoundError as exc:
        if _is_missing_cli(exc):
            raise ConfigError(CLI_MISSING) from exc
        raise
    except auto.InvalidVersionError as exc:
        raise ConfigError(f"the Pulumi CLI is too old for this toolkit: {exc}.") from exc


def _is_missing_cli(exc: FileNotFoundError) -> bool:
    # subprocess names the program it could not start in `filename`.
    return Path(str(exc.filename or "")).name == "pulumi"


def _stderr_tail(exc: Exception) -> str:
    """The last lines the CLI wrote to stderr (Pulumi masks secrets in what it prints).

    CommandError keeps only `str(CommandResult)`: "code: .. stdout: .. stderr: ..".
    """
    text = str(exc)
    marker = "\n stderr: "
    stderr = text[text.rfind(marker) + len(marker) :] if marker in text else text
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(lines[-_STDERR_LINES_IN_ERRORS:]) or type(exc).__name__


def _summary_text(counts: Mapping[str, int]) -> str:
    if not set(counts) - {"same"}:
        return "no changes"
    return ", ".join(f"{count} {op}" for op, count in sorted(counts.items()))
