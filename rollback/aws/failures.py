"""botocore failures as `rollback.errors`: the one translation the service wrappers share.

Each wrapper names its own service's codes; the messages are the same for all,
so a user reads one form whichever call failed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager

from rollback.errors import CloudError, IntegrityError, NotFound


@contextmanager
def translated(
    what: str,
    *,
    not_found: Collection[str] = (),
    absent: str | None = None,
    refused: Collection[str] = (),
) -> Iterator[None]:
    """Turn a botocore error raised inside into NotFound, IntegrityError or CloudError naming `what`.

    A ClientError whose code is in `not_found` becomes NotFound, saying `absent`
    instead of the service's own message when given; one in `refused` (S3's
    checksum mismatches) becomes IntegrityError; any other ClientError, and a
    BotoCoreError (no answer at all), becomes CloudError. The AWS error code
    is kept as the `code` field.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in not_found:
            said = absent if absent is not None else f"{message} ({code})"
            raise NotFound(f"{what}: {said}; check the stack's topology.", code=code) from exc
        if code in refused:
            raise IntegrityError(f"{what}: S3 refused the bytes ({message}).", code=code) from exc
        raise CloudError(f"{what} failed: {message} ({code}).", code=code) from exc
    except BotoCoreError as exc:
        raise CloudError(f"{what} failed: {exc}.") from exc
