"""The `pulumi` engine: the Pulumi Automation API driving the Pulumi CLI.

This is the engine production uses. It needs the `pulumi` command on PATH and
a backend the CLI is logged in to (or `backend_url`, passed to the CLI as
PULUMI_BACKEND_URL). Secrets in a StackConfig are ciphertext; they are written
to the stack file as `secure:` values with their encryption salt and never
decrypted here, so no plaintext secret crosses a command line. The CLI
decrypts them with PULUMI_CONFIG_PASSPHRASE.

The CLI's output goes to this module's logger, line by line; nothing prints.
Automation API exceptions become `rollback.errors` classes in `_translated_errors`.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.engine import Change, StackConfig
from rollback.errors import ConfigError, EngineError, NotFound, StackBusy
from rollback.models import Checkpoint

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


def stack_settings_for(
    config: StackConfig, current: auto.StackSettings | None
) -> auto.StackSettings:
    """The stack file (Pulumi.<stack>.yaml) that carries `config`.

    Plain values become strings, as `pulumi config set` stores them; secrets
    stay ciphertext, marked `secure:`. The secrets provider of `current` is
    kept when `config` has no encryption salt of its own.
    """
    from pulumi import automation as auto
    from pulumi.automation._stack_settings import StackSettingsSecureConfigValue

    values: dict[str, Any] = {key: _config_text(value) for key, value in config.values.items()}
    values.update(
        {
            key: StackSettingsSecureConfigValue(secure=ciphertext)
            for key, ciphertext in config.secrets.items()
        }
    )
    if config.encryption_salt is not None:
        return auto.StackSettings(encryption_salt=config.encryption_salt, config=values)
    return auto.StackSettings(
        secrets_provider=current.secrets_provider if current else None,
        encrypted_key=current.encrypted_key if current else None,
        encryption_salt=current.encryption_salt if current else None,
        config=values,
    )


def _settings_view(settings: auto.StackSettings) -> tuple[Any, ...]:
    """A comparable form of a stack file's contents."""
    config = {
        key: ("secure", value.secure) if hasattr(value, "secure") else ("plain", value)
        for key, value in (settings.config or {}).items()
    }
    return (settings.secrets_provider, settings.encrypted_key, settings.encryption_salt, config)


def _config_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value  # strings, and objects set with `--path`, are stored as they are


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
        if earlier is not None and op != "replace":
            continue
        diff = earlier.diff if earlier else tuple(step.diffs or step.keys or ())
        changes[step.urn] = Change(urn=step.urn, type=step.type, op=op, diff=diff)
    return list(changes.values())


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
    ) -> None:
        """`project_dir` (or a directory under it) holds the Pulumi project used when no
        program is given (export, outputs, history, cancel).

        Raises ConfigError when the Pulumi CLI is not on PATH.
        """
        self.project_dir = project_dir
        self.backend_url = backend_url
        self._env = dict(env or {})
        self._command = command if command is not None else _pulumi_command()

    # -- StackEngine ---------------------------------------------------------

    def up(self, program_dir: Path, stack: str, config: StackConfig) -> Checkpoint:
        """Apply the program with `config`; return the stack's checkpoint afterwards.

        Raises StackBusy when another update runs, EngineError when the update fails.
        """
        with self._translated_errors(stack):
            target = self._stack(program_dir, stack, create=True)
            self._write_config(target, config)
            result = target.up(
                color="never",
                on_output=self._log_output,
                show_secrets=False,
            )
            logger.info(
                "stack %s updated (version %s): %s",
                target.name,
                result.summary.version,
                _summary_text(result.summary.resource_changes),
            )
            return checkpoint_from_deployment(target.export_stack())

    def preview(self, program_dir: Path, stack: str, config: StackConfig) -> list[Change]:
        """The changes `up` would make, one per resource; changes nothing in the cloud.

        The stack and its stack file are created or updated so the preview sees `config`.
        """
        events: list[auto.EngineEvent] = []
        with self._translated_errors(stack):
            target = self._stack(program_dir, stack, create=True)
            self._write_config(target, config)
            result = target.preview(
                color="never", on_output=self._log_output, on_event=events.append
            )
        changes = changes_from_events(events)
        logger.debug("preview summary of stack %s: %s", stack, dict(result.change_summary))
        return changes

    def export(self, stack: str) -> Checkpoint:
        """The stack's current checkpoint; NotFound when there is no such stack."""
        with self._translated_errors(stack):
            return checkpoint_from_deployment(self._stack(self.project_dir, stack).export_stack())

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's outputs; secret outputs are replaced by "[secret]"."""
        with self._translated_errors(stack):
            values = self._stack(self.project_dir, stack).outputs()
        return {key: MASKED if value.secret else value.value for key, value in values.items()}

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
        """Cancel the update running on the stack (`pulumi cancel`).

        Pulumi warns this may leave the stack inconsistent when a resource operation
        was in flight; the emergency stop accepts that. Raises EngineError when no
        update is running.
        """
        with self._translated_errors(stack):
            self._stack(self.project_dir, stack).cancel()
        logger.warning("cancelled the update running on stack %s", stack)

    # -- plumbing ------------------------------------------------------------

    def _workspace(self, program_dir: Path) -> auto.LocalWorkspace:
        from pulumi import automation as auto

        return auto.LocalWorkspace(
            work_dir=str(find_project_dir(program_dir)),
            env_vars=self._cli_env(),
            pulumi_command=self._command,
        )

    def _cli_env(self) -> dict[str, str]:
        env = {"PULUMI_SKIP_UPDATE_CHECK": "true"}
        # The program must run with this interpreter, whose site-packages hold
        # pulumi and pulumi_aws, not whatever `python3` comes first on PATH.
        if not os.environ.get("PULUMI_PYTHON_CMD"):
            env["PULUMI_PYTHON_CMD"] = sys.executable
        if self.backend_url:
            env["PULUMI_BACKEND_URL"] = self.backend_url
        env.update(self._env)
        return env

    def _stack(self, program_dir: Path, stack: str, *, create: bool = False) -> auto.Stack:
        from pulumi import automation as auto

        workspace = self._workspace(program_dir)
        if create:
            return auto.Stack.create_or_select(stack, workspace)
        return auto.Stack.select(stack, workspace)

    def _write_config(self, target: auto.Stack, config: StackConfig) -> None:
        """Write the stack file only when it differs: it may be a committed file."""
        workspace = target.workspace
        try:
            current = workspace.stack_settings(target.name)
        except FileNotFoundError:
            current = None
        wanted = stack_settings_for(config, current)
        if current is None or _settings_view(current) != _settings_view(wanted):
            workspace.save_stack_settings(target.name, wanted)

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


def _summary_text(resource_changes: Mapping[Any, int] | None) -> str:
    if not resource_changes:
        return "no changes"
    counts = {str(getattr(op, "value", op)): count for op, count in resource_changes.items()}
    return ", ".join(f"{count} {op}" for op, count in sorted(counts.items()))
