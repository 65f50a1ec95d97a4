"""Per-stack locks: one document `locks/<project>/<stack>.lock`, written create-only.

The store's create-only write is the lock (local: link(2), which fails if the
name exists, like O_EXCL; S3: `If-None-Match: *`), the way Terraform's S3
backend locks. The document names its holder, the run it takes the lock
for, and a lease. Every later change to it is a compare-and-swap
(`Store.swap_doc`: local flock, S3 `If-Match`): a renewal, a release or a
break lands only on the very document it read, so none of them can remove
or overwrite a lock another run took meanwhile.

While a run lives, a `Heartbeat` (a daemon thread) renews its lease every
lease/3, so a restore that waits two hours keeps a 30-minute lease fresh and
a lease that did expire means its holder stopped renewing: it is dead or cut
off. An expired lease is still never broken silently: the caller must ask
(`--break-lock`, `rollback lock break`).

A live lease is never broken, with two exceptions where its holder provably
cannot be running any more (`stale_reason`), taken over without being asked
and with a logged note:
- its run's journal has a `finished` event (the process died between its
  last journal record and releasing the lock);
- its pid is gone from this host and its run has no journal: the run
  was killed between taking the lock and writing `run.json`, before it
  changed anything (a `watch` never writes one).
A killed run that has a journal and did not finish is not stale: it must be
resumed (`rollback resume RUN` takes over its own lock), not run over.

Breaking is a compare-and-swap delete of the document read, so of two runs
breaking the same lock only one succeeds; it leaves a create-only marker
`locks/<project>/<stack>.lock.broken/<fingerprint>` (one per lock document
ever written) as the record of who broke what, when, and why.

"This host" means this machine in this boot (hostname and Linux's boot id,
`on_this_host`): only there does a gone pid prove its process dead.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
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
    boot_id: str = ""  # this boot of this machine, so "same host" is not just a hostname

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
                boot_id=str(data.get("boot_id") or ""),
            )
            info.expires_epoch()
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"it lacks {exc.args[0]}" if isinstance(exc, KeyError) else str(exc)
            raise IntegrityError(
                f"the lock document of {data.get('stack', 'the stack')} is malformed ({problem}); "
                "inspect it in the store and delete it if no run holds it.",
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
        stale = stale_reason(store, held)
        if stale is not None:
            _break(store, stack, raw, held, run_id, now, owner, why=stale)
            continue
        if not held.expired(now()):
            raise _held_error(stack, held, expired=False)
        if not break_expired:
            raise _held_error(stack, held, expired=True)
        _break(store, stack, raw, held, run_id, now, owner, why="its lease expired")
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
            or not on_this_host(held)
            or process_alive(held.pid)
        ):
            raise
    release_lock(store, stack, run_id)
    acquire_lock(
        store, stack, run_id, lease_seconds=lease_seconds, break_expired=break_expired, owner=owner
    )
    return held


def stale_reason(store: Store, held: LockInfo) -> str | None:
    """Why the holder of `held` cannot be running any more, or None when it may be.

    Stale: its run's journal says it finished, or its pid is gone from this
    host and its run never wrote a journal. Raises IntegrityError when the
    holder's journal does not pass its hash chain.
    """
    from rollback.journal import run_state  # the journal sits above the store

    state = run_state(store, held.stack, held.run_id)
    if state.startswith("finished"):
        return f"run {held.run_id} {state}, and its process ended before releasing the lock"
    if state == "absent" and on_this_host(held) and not process_alive(held.pid):
        return (
            f"run {held.run_id} was killed before it changed anything "
            f"(pid {held.pid} on {held.host} is gone and it wrote no journal)"
        )
    return None


def takeable(store: Store, stack: str) -> bool:
    """Whether the stack's lock is free, or held by a stale holder the next run takes over."""
    held = read_lock(store, stack)
    return held is None or stale_reason(store, held) is not None


def clear_left_lock(
    store: Store, stack: str, run_id: str, *, now: Callable[[], float] = time.time
) -> str | None:
    """Clear the lock `run_id` left behind if it cannot be running; return a sentence saying so.

    For `rollback resume RUN`: a run killed after its `finished` record, or
    before it wrote `run.json` (its pid gone from this host, or its lease
    expired since no heartbeat renews it), leaves a lock that nothing would
    resume. Returns None when `run_id` holds no lock, or holds one as an
    unfinished run with a journal (resume takes that over itself). Raises
    LockHeld when the run wrote no journal yet and may still be starting.
    """
    key = lock_key(stack)
    current = _read(store, key)
    if current is None or current[1].run_id != run_id:
        return None
    raw, held = current
    why = stale_reason(store, held)
    if why is None:
        from rollback.journal import run_state

        if run_state(store, stack, run_id) != "absent":
            return None
        if not held.expired(now()):
            raise LockHeld(
                f"run {run_id} holds the lock of {stack} ({held.describe()}) and has not written "
                f"its journal yet; if it was killed on host {held.host}, its lease ends at "
                f"{held.expires_at}: run `rollback lock break` after that.",
                stack=stack,
                holder=held.to_dict(),
                expired=False,
            )
        why = f"run {run_id} was killed before it changed anything (its lease expired unrenewed)"
    if not _break(store, stack, raw, held, f"resume-{run_id}", now, None, why=why):
        raise LockHeld(f"stack {stack} lock is contended; retry in a moment.", stack=stack)
    return f"{why}; its lock is cleared"


def boot_id() -> str:
    """This boot of this machine (Linux's random boot id), or "" where the system has none."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def on_this_host(held: LockInfo) -> bool:
    """Whether the lock was taken on this machine, in this boot, so its pid can be checked here.

    The hostname alone is not enough: CI runners and containers share names.
    A lock from before a reboot (another boot id) is not "here" either; its
    lease, no longer renewed, says when it may be broken.
    """
    if held.host != socket.gethostname():
        return False
    ours = boot_id()
    return not (held.boot_id and ours and held.boot_id != ours)


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

    Idempotent. (A lock broken and retaken by another run is not ours and
    stays: the delete is conditional on the document we read.)
    """
    key = lock_key(stack)
    for _ in range(_ATTEMPTS):  # a heartbeat may renew between our read and our delete
        current = _read(store, key)
        if current is None or current[1].run_id != run_id:
            log.debug("lock %s not held by run %s; nothing to release", key, run_id)
            return
        if store.swap_doc(key, current[0], None):
            return
    log.warning("could not release lock %s of run %s: it keeps changing", key, run_id)


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
    """Remove the stack's lock if its lease has expired or its holder is stale; return it.

    Returns None when the stack is not locked. Raises LockHeld when the lease
    has not expired and the holder may be running (a live lock is never
    broken), or when another run broke it first.
    """
    key = lock_key(stack)
    current = _read(store, key)
    if current is None:
        return None
    raw, held = current
    why = stale_reason(store, held)
    if why is None:
        if not held.expired(now()):
            raise _held_error(stack, held, expired=False)
        why = "its lease expired"
    if not _break(store, stack, raw, held, "lock-break", now, by, why=why):
        current = _read(store, key)
        if current is not None:
            raise _held_error(stack, current[1], expired=current[1].expired(now()))
    return held


def _break(
    store: Store,
    stack: str,
    raw: bytes,
    held: LockInfo,
    breaker_run_id: str,
    now: Callable[[], float],
    owner: str | None,
    *,
    why: str,
) -> bool:
    """Delete a lock document (expired or stale) if it is still `raw`; True when we did.

    The delete is a compare-and-swap, so of two runs breaking the same lock
    exactly one succeeds; that one leaves the create-only marker saying who
    broke what, when and why.
    """
    if not store.swap_doc(lock_key(stack), raw, None):
        return False  # renewed, released or broken by someone else: the caller re-reads
    fingerprint = hashlib.sha256(raw).hexdigest()[:32]
    record = {
        "broken_by_run": breaker_run_id,
        "broken_by": owner or current_user(),
        "host": socket.gethostname(),
        "at": _iso(now()),
        "why": why,
        "lock": held.to_dict(),
    }
    with contextlib.suppress(AlreadyExists):
        store.put_doc(
            f"{lock_key(stack)}.broken/{fingerprint}",
            json.dumps(record, sort_keys=True).encode(),
            create_only=True,
        )
    log.warning("took over the lock of stack %s held by %s: %s", stack, held.describe(), why)
    return True


class Heartbeat:
    """Renews a held lock's lease every lease/3 while the run lives (a daemon thread).

        with Heartbeat(store, info):     # info: what acquire_lock returned
            ...                          # the run; the lease never runs out under it

    Each renewal is a compare-and-swap of the very document last written, so
    a lock broken and retaken by another run is never overwritten: the
    heartbeat then stops and `lost` says so (logged as an error). `wait`
    (seconds -> True when told to stop) and `now` are injectable for tests;
    `renew()` does one renewal in the caller's thread.
    """

    def __init__(
        self,
        store: Store,
        info: LockInfo,
        *,
        now: Callable[[], float] = time.time,
        interval_s: float | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.store = store
        self.info = info
        self.now = now
        self.interval_s = interval_s if interval_s is not None else max(1.0, info.lease_seconds / 3)
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None
        self.renewals = 0
        self.lost = False

    def renew(self) -> bool:
        """Extend the lease to now + lease; False (and `lost`) when the lock is no longer ours."""
        if self.lost:
            return False
        start = math.floor(self.now())
        renewed = replace(self.info, expires_at=_iso(start + self.info.lease_seconds))
        if renewed.expires_at <= self.info.expires_at:
            return True  # nothing to extend (a clock that stood still)
        if self.store.swap_doc(lock_key(self.info.stack), _encode(self.info), _encode(renewed)):
            self.info = renewed
            self.renewals += 1
            log.debug("renewed the lock of %s until %s", self.info.stack, renewed.expires_at)
            return True
        self.lost = True
        log.error(
            "the lock of stack %s is no longer held by run %s (broken or released); "
            "its lease is not renewed any more",
            self.info.stack,
            self.info.run_id,
        )
        return False

    def _beat(self) -> None:
        while not self._wait(self.interval_s) and not self._stop.is_set():
            try:
                if not self.renew():
                    return
            except Exception:  # noqa: BLE001 - a store hiccup must not kill the run; retry next beat
                log.warning(
                    "renewing the lock of %s failed; retrying", self.info.stack, exc_info=True
                )

    def start(self) -> Heartbeat:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._beat, name=f"lock-heartbeat-{self.info.run_id}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (waits for a renewal in progress, so a release after it is clean)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class HeldLock:
    """A stack lock for one run, renewed while held: take it, run, release it.

        with HeldLock(store, stack, run_id, lease_seconds=1800) as held:
            ...   # held.note says when a dead run's lock was taken over on resume

    `resuming` takes over a lock this very run left behind on this host
    (`acquire_for_resume`). Leaving the block stops the heartbeat, then
    releases the lock (conditionally: a lock another run took stays).
    """

    def __init__(
        self,
        store: Store,
        stack: str,
        run_id: str,
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        break_expired: bool = False,
        owner: str | None = None,
        resuming: bool = False,
        heartbeat: Callable[[Store, LockInfo], Heartbeat] = Heartbeat,
    ) -> None:
        self.store = store
        self.stack = stack
        self.run_id = run_id
        self.lease_seconds = lease_seconds
        self.break_expired = break_expired
        self.owner = owner
        self.resuming = resuming
        self._make_heartbeat = heartbeat
        self.heartbeat: Heartbeat | None = None
        self.note: str | None = None
        self.taken_at: float | None = None  # time.monotonic() once taken: reads after it are ours

    def acquire(self) -> HeldLock:
        """Take the lock (LockHeld as `acquire_lock`) and start renewing it.

        Ctrl-C or SIGTERM after the lock was written, before it is handed back,
        releases it: no caller holds it yet to release it.
        """
        try:
            return self._acquire()
        except KeyboardInterrupt:
            self.release()
            raise

    def _acquire(self) -> HeldLock:
        if self.resuming:
            dead = acquire_for_resume(
                self.store,
                self.stack,
                self.run_id,
                lease_seconds=self.lease_seconds,
                break_expired=self.break_expired,
                owner=self.owner,
            )
            if dead is not None:
                self.note = (
                    f"took over the lock run {self.run_id} left behind "
                    f"(pid {dead.pid} on {dead.host} is gone)"
                )
                log.warning("%s", self.note)
        else:
            acquire_lock(
                self.store,
                self.stack,
                self.run_id,
                lease_seconds=self.lease_seconds,
                break_expired=self.break_expired,
                owner=self.owner,
            )
        info = read_lock(self.store, self.stack)
        if info is None or info.run_id != self.run_id:  # pragma: no cover - taken from under us
            raise LockHeld(f"stack {self.stack} lock is contended; retry in a moment.")
        self.taken_at = time.monotonic()
        self.heartbeat = self._make_heartbeat(self.store, info).start()
        return self

    @property
    def lost(self) -> bool:
        """True once a renewal found the lock taken by another run (a run should stop then)."""
        return self.heartbeat is not None and self.heartbeat.lost

    def release(self) -> None:
        """Stop the heartbeat, then release the lock; idempotent."""
        if self.heartbeat is not None:
            self.heartbeat.stop()
        release_lock(self.store, self.stack, self.run_id)

    def __enter__(self) -> HeldLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


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
        boot_id=boot_id(),
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
    if on_this_host(held) and not process_alive(held.pid):
        message = (
            f"stack {stack} is locked by {held.describe()}, whose process is gone before the run "
            f"finished; `rollback resume {held.run_id}` finishes it (and takes its lock over)."
        )
        return LockHeld(message, stack=stack, holder=held.to_dict(), expired=expired, dead=True)
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
