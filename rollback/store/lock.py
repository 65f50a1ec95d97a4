"""Per-stack locks: one document `locks/<project>/<stack>.lock`, written create-only.

The store's create-only write is the lock (local: link(2), which fails if the
name exists, like O_EXCL; S3: `If-None-Match: *`), the way Terraform's S3
backend locks. The document names its holder and a lease. An expired lease is
never broken silently: the caller must ask (`--break-lock`), and a lock whose
lease has not expired is never broken at all.

Breaking is itself guarded by a create-only marker
`locks/<project>/<stack>.lock.broken/<fingerprint>` (one per lock document
ever written), so of two runs breaking the same expired lock only one
proceeds; the markers stay as the record of who broke what.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollback.errors import AlreadyExists, IntegrityError, LockHeld, NotFound, UsageError

if TYPE_CHECKING:
    from rollback.store import Store

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 1800
_ATTEMPTS = 3  # a lock released between our write and our read: try again, briefly


@dataclass(frozen=True)
class LockInfo:
    """Who holds a stack's lock, and until when (times are ISO 8601, UTC)."""

    stack: str
    owner: str
    host: str
    pid: int
    run_id: str
    acquired_at: str
    lease_seconds: int
    expires_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockInfo:
        """Build from a lock document; raises IntegrityError when it is malformed."""
        try:
            info = cls(
                stack=str(data["stack"]),
                owner=str(data["owner"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                run_id=str(data["run_id"]),
                acquired_at=str(data["acquired_at"]),
                lease_seconds=int(data["lease_seconds"]),
                expires_at=str(data["expires_at"]),
            )
            info.expires_epoch()
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"lock document is malformed ({exc}); inspect it in the store and delete it if no run holds it.",
            ) from exc
        return info

    def expires_epoch(self) -> float:
        """The lease's end in seconds since the epoch."""
        return datetime.fromisoformat(self.expires_at).timestamp()

    def expired(self, now: float) -> bool:
        return now >= self.expires_epoch()

    def describe(self) -> str:
        """One phrase naming the holder, for messages."""
        return (
            f"run {self.run_id} (owner {self.owner} on host {self.host}, pid {self.pid}) "
            f"since {self.acquired_at}"
        )


def lock_key(stack: str) -> str:
    """The lock document's key for PROJECT/STACK; raises UsageError for another shape."""
    if stack.count("/") != 1 or not all(stack.split("/")):
        raise UsageError(f"stack {stack!r} is not PROJECT/STACK; pass webapp/prod, for example.")
    return f"locks/{stack}.lock"


def acquire_lock(
    store: Store,
    stack: str,
    run_id: str,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    break_expired: bool = False,
    now: Callable[[], float] = time.time,
    owner: str | None = None,
) -> LockInfo:
    """Take the stack's lock for `run_id`, or raise LockHeld naming who holds it.

    With `break_expired`, a lock whose lease has expired is replaced (the break
    is recorded in the store); a lock whose lease has not expired never is.
    Not re-entrant: a second call with the same run id while it holds the lock
    raises LockHeld too.
    """
    key = lock_key(stack)
    if not run_id:
        raise UsageError("a lock needs a run id; this is a bug in the caller.")
    if lease_seconds <= 0:
        raise UsageError(f"lease of {lease_seconds}s is not positive; pass a number of seconds.")
    info = _new_info(stack, run_id, lease_seconds, now(), owner)
    for _ in range(_ATTEMPTS):
        try:
            store.put_doc(key, _encode(info), create_only=True)
            log.debug("lock %s taken by run %s", key, run_id)
            return info
        except AlreadyExists:
            pass
        current = _read(store, key)
        if current is None:
            continue  # released between our write and our read
        raw, held = current
        if not held.expired(now()):
            raise _held_error(stack, held, expired=False)
        if not break_expired:
            raise _held_error(stack, held, expired=True)
        _break(store, stack, raw, held, run_id, now, owner)
    # Still contended after breaking or after releases: someone else is racing us.
    current = _read(store, key)
    if current is not None:
        raise _held_error(stack, current[1], expired=current[1].expired(now()))
    raise LockHeld(f"stack {stack} lock is contended; retry in a moment.", stack=stack)


def acquire_for_resume(
    store: Store,
    stack: str,
    run_id: str,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    break_expired: bool = False,
    owner: str | None = None,
) -> LockInfo | None:
    """Take the lock to resume `run_id`; returns the dead holder when it took its lock over.

    A lock held by this very run whose process is gone from this host is safe
    to replace: nobody else can be running this run. Any other holder raises
    LockHeld as `acquire_lock` does.
    """
    try:
        acquire_lock(
            store,
            stack,
            run_id,
            lease_seconds=lease_seconds,
            break_expired=break_expired,
            owner=owner,
        )
        return None
    except LockHeld:
        held = read_lock(store, stack)
        if (
            held is None
            or held.run_id != run_id
            or held.host != socket.gethostname()
            or process_alive(held.pid)
        ):
            raise
    release_lock(store, stack, run_id)
    acquire_lock(
        store, stack, run_id, lease_seconds=lease_seconds, break_expired=break_expired, owner=owner
    )
    return held


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_lock(store: Store, stack: str, run_id: str) -> None:
    """Release the stack's lock if `run_id` holds it; otherwise do nothing.

    Idempotent. (A lock broken and retaken by another run is not ours and stays.)
    """
    key = lock_key(stack)
    current = _read(store, key)
    if current is None or current[1].run_id != run_id:
        log.debug("lock %s not held by run %s; nothing to release", key, run_id)
        return
    store.delete_doc(key)


def read_lock(store: Store, stack: str) -> LockInfo | None:
    """Who holds the stack's lock, or None when it is free."""
    current = _read(store, lock_key(stack))
    return None if current is None else current[1]


def break_lock(
    store: Store,
    stack: str,
    *,
    now: Callable[[], float] = time.time,
    by: str | None = None,
) -> LockInfo | None:
    """Remove the stack's lock if its lease has expired; return what was removed.

    Returns None when the stack is not locked. Raises LockHeld when the lease
    has not expired (a live lock is never broken), or when another run broke
    it first.
    """
    key = lock_key(stack)
    current = _read(store, key)
    if current is None:
        return None
    raw, held = current
    if not held.expired(now()):
        raise _held_error(stack, held, expired=False)
    _break(store, stack, raw, held, "lock-break", now, by)
    return held


def _break(
    store: Store,
    stack: str,
    raw: bytes,
    held: LockInfo,
    breaker_run_id: str,
    now: Callable[[], float],
    owner: str | None,
) -> None:
    """Delete an expired lock document, if we are the one run allowed to."""
    fingerprint = hashlib.sha256(raw).hexdigest()[:32]
    marker = f"{lock_key(stack)}.broken/{fingerprint}"
    record = {
        "broken_by_run": breaker_run_id,
        "broken_by": owner or current_user(),
        "host": socket.gethostname(),
        "at": _iso(now()),
        "lock": held.to_dict(),
    }
    try:
        store.put_doc(marker, json.dumps(record, sort_keys=True).encode(), create_only=True)
    except AlreadyExists:
        return  # another run is breaking this very lock; the caller re-reads and reports
    current = _read(store, lock_key(stack))
    if current is not None and current[0] == raw:
        store.delete_doc(lock_key(stack))
        log.warning("broke the expired lock of stack %s held by %s", stack, held.describe())


def current_user() -> str:
    """The login name, or a stand-in when the system cannot tell (containers)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or f"uid-{os.getuid()}"


def _new_info(stack: str, run_id: str, lease: int, at: float, owner: str | None) -> LockInfo:
    start = math.floor(at)  # whole seconds, so the written expiry is exact
    return LockInfo(
        stack=stack,
        owner=owner or current_user(),
        host=socket.gethostname(),
        pid=os.getpid(),
        run_id=run_id,
        acquired_at=_iso(start),
        lease_seconds=lease,
        expires_at=_iso(start + lease),
    )


def _read(store: Store, key: str) -> tuple[bytes, LockInfo] | None:
    try:
        raw = store.get_doc(key)
    except NotFound:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"lock document {key} is not JSON; inspect it in the store and delete it if no run holds it.",
        ) from exc
    if not isinstance(data, dict):
        raise IntegrityError(f"lock document {key} is not a JSON object; inspect it in the store.")
    return raw, LockInfo.from_dict(data)


def _held_error(stack: str, held: LockInfo, *, expired: bool) -> LockHeld:
    if expired:
        message = (
            f"stack {stack} is locked by {held.describe()}; its lease expired at "
            f"{held.expires_at}. If that run is no longer running, pass --break-lock to take the lock over."
        )
    else:
        message = (
            f"stack {stack} is locked by {held.describe()}, lease until {held.expires_at}; "
            "wait for that run to finish (a live lease is never broken)."
        )
    return LockHeld(message, stack=stack, holder=held.to_dict(), expired=expired)


def _encode(info: LockInfo) -> bytes:
    return json.dumps(info.to_dict(), sort_keys=True, indent=2).encode()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
