"""How an AWS failure inside an applier becomes an EngineError naming the resource."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rollback.errors import CheckFailed, EngineError
from rollback.waiting import poll

# An ALB's network interfaces outlive it by minutes on real AWS: a subnet or a
# security group they use cannot be deleted until they are gone.
DEPENDENCY_TIMEOUT = 600.0
_BUSY = {"DependencyViolation", "ResourceInUse"}


def aws_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


@contextmanager
def applying(token: str, name: str, action: str) -> Iterator[None]:
    """Run AWS calls for one resource; a botocore error becomes EngineError.

    The error names the type token, the resource (logical name or physical id),
    the action and carries AWS's code and message as fields.
    """
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        raise EngineError(
            f"Could not {action} {token} {name!r}: {code}: {message}",
            resource=name,
            type=token,
            action=action,
            aws_code=code,
            aws_message=message,
        ) from exc
    except (WaiterError, BotoCoreError) as exc:
        raise EngineError(
            f"Could not {action} {token} {name!r}: {exc}",
            resource=name,
            type=token,
            action=action,
            aws_message=str(exc),
        ) from exc


@contextmanager
def already_gone(*codes: str) -> Iterator[None]:
    """Let a delete pass when AWS answers with one of `codes`: the resource is gone already."""
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        if aws_code(exc) not in codes:
            raise


def present(outputs: dict[str, Any] | None, token: str, id: str) -> dict[str, Any]:
    """`outputs` of a read right after a write; EngineError when the resource vanished meanwhile."""
    if outputs is None:
        raise EngineError(
            f"{token} {id!r} disappeared while it was being applied; run the engine again.",
            resource=id,
            type=token,
        )
    return outputs


def delete_when_free(token: str, id: str, delete: Callable[[], object], gone: set[str]) -> None:
    """Call `delete` until AWS stops answering that something still depends on the resource.

    An error whose code is in `gone` means already deleted. Gives up with
    EngineError after DEPENDENCY_TIMEOUT seconds.
    """
    from botocore.exceptions import ClientError

    def attempt() -> bool | None:
        try:
            delete()
        except ClientError as exc:
            if aws_code(exc) in gone:
                return True
            if aws_code(exc) in _BUSY:
                return None
            raise
        return True

    with applying(token, id, "delete"):
        try:
            poll(f"{token} {id} to be free of dependents", attempt, timeout=DEPENDENCY_TIMEOUT)
        except CheckFailed as exc:
            raise EngineError(
                f"Could not delete {token} {id!r}: {exc.message}", resource=id, type=token
            ) from exc
