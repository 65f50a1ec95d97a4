"""One exception tree. Every failure a user can cause or meet is a RollbackError.

Each class carries its exit code; the CLI's single handler turns the exception
into one sentence on stderr and that code. Subclasses hold structured fields
so that callers (and JSON output) need not parse messages.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    FAILED = 1  # the rollback or a check failed; the system is in a verified state
    USAGE = 2  # usage or configuration error
    LOCKED = 3  # another run holds the lock
    INTEGRITY = 4  # a hash or a signature does not match
    INTERNAL = 70  # a bug: please report it
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM): a cancelled CI job, handled as Ctrl-C is


class RollbackError(Exception):
    """Base of every error the toolkit raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "exit_code": int(self.exit_code),
            **{k: v for k, v in self.fields.items() if _jsonable(v)},
        }


def failure_sentence(exc: Exception, during: str) -> str:
    """One sentence for a step's failure: our message, or what an unexpected error said."""
    if isinstance(exc, RollbackError):
        return exc.message.rstrip(".")
    return f"{during} raised {type(exc).__name__}: {exc}"


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | list | dict)


class UsageError(RollbackError):
    """The user asked for something malformed or impossible (exit 2)."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """Settings, store URL, credentials or an engine are not usable (exit 2)."""


class NotFound(UsageError):
    """A release, run, file or cloud resource the user named does not exist (exit 2)."""


class AlreadyExists(UsageError):
    """Something that must be created once exists already (exit 2)."""


class CheckFailed(RollbackError):
    """A rollback step or a verification failed; the state is described (exit 1)."""

    exit_code = ExitCode.FAILED


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread wherever it is, so it unwinds as Ctrl-C does."""


class Interrupted(RollbackError):
    """Ctrl-C (exit 130) or SIGTERM (143) in the middle of a run: it stopped where its
    journal says, and its lock is released."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, *, terminated: bool = False, **fields: Any) -> None:
        super().__init__(message, **fields)
        if terminated:
            self.exit_code = ExitCode.TERMINATED


def interrupt_exit_code(exc: BaseException | None) -> ExitCode:
    """The exit code of an interrupt: 143 for SIGTERM, 130 for Ctrl-C."""
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED


class LockHeld(RollbackError):
    """Another run holds the stack lock (exit 3)."""

    exit_code = ExitCode.LOCKED


class StackBusy(LockHeld):
    """Another Pulumi update is running on the stack (exit 3)."""


class IntegrityError(RollbackError):
    """Stored bytes do not match their recorded hash, or a tag moved (exit 4)."""

    exit_code = ExitCode.INTEGRITY


class CloudError(RollbackError):
    """An AWS call failed in a way the caller could not handle (exit 1)."""

    exit_code = ExitCode.FAILED


class EngineError(RollbackError):
    """A stack engine could not run or apply a program (exit 1)."""

    exit_code = ExitCode.FAILED
