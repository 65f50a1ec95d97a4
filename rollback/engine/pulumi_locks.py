"""The update locks of Pulumi's self-managed ("diy") backends: file:// and s3://.

An update on a diy backend writes `.pulumi/locks/<stack path>/<uuid>.json`
holding `{"pid", "username", "hostname", "timestamp"}` of the `pulumi`
process and deletes it when it ends; `pulumi cancel` there only deletes every
lock file of the stack, whether its process still runs or not
(pkg/backend/diy/lock.go `lockContent`, `stackLockDir`, `lockPath`;
pkg/backend/diy/backend.go `CancelCurrentUpdate`). The stack path is
`organization/<project>/<stack>` for project-scoped backends and `<stack>`
for the legacy layout.

So an emergency stop here identifies the update from the lock's contents and
waits for that process to end; it refuses, never deletes, when the process
still runs or cannot be seen from this host.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from rollback.errors import ConfigError, StackBusy
from rollback.waiting import Timing

logger = logging.getLogger(__name__)

LOCKS_DIR = ".pulumi/locks"
DIY_SCHEMES = ("file", "s3", "gs", "azblob")


@dataclass(frozen=True)
class UpdateLock:
    """One lock file of a running (or dead) update."""

    key: str
    pid: int
    username: str
    hostname: str
    timestamp: str

    def describe(self) -> str:
        return f"pid {self.pid} of {self.username}@{self.hostname} (since {self.timestamp})"


def is_diy_backend(url: str | None) -> bool:
    """True for a self-managed backend URL (file://, s3://, gs://, azblob://)."""
    return bool(url) and urlparse(str(url)).scheme in DIY_SCHEMES


def lock_dirs(project: str, stack: str) -> list[str]:
    """Where the locks of `stack` may be, relative to the backend root (both layouts)."""
    parts = stack.split("/")
    name = parts[-1]
    if len(parts) == 3:
        return [f"{LOCKS_DIR}/{parts[0]}/{parts[1]}/{name}"]
    return [f"{LOCKS_DIR}/organization/{project}/{name}", f"{LOCKS_DIR}/{name}"]


def read_locks(url: str, project: str, stack: str, s3_client: Any = None) -> list[UpdateLock]:
    """The lock files of `stack` on the diy backend at `url`; ConfigError for a backend we cannot read."""
    parsed = urlparse(url)
    found: list[tuple[str, bytes]] = []
    if parsed.scheme == "file":
        root = Path(unquote(parsed.netloc + parsed.path)).expanduser()
        for rel in lock_dirs(project, stack):
            folder = root / rel
            if folder.is_dir():
                found += [(str(p), p.read_bytes()) for p in sorted(folder.glob("*.json"))]
    elif parsed.scheme == "s3":
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        for rel in lock_dirs(project, stack):
            full = f"{prefix}/{rel}/" if prefix else f"{rel}/"
            listing = s3_client.list_objects_v2(Bucket=bucket, Prefix=full)
            for item in listing.get("Contents", []):
                if "/" in item["Key"][len(full) :] or not item["Key"].endswith(".json"):
                    continue
                body = s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found.append((f"s3://{bucket}/{item['Key']}", body))
    else:
        raise ConfigError(
            f"the toolkit cannot read update locks on a {parsed.scheme}:// backend; stop the "
            "running `pulumi` process yourself, then run `pulumi cancel`."
        )
    return [_lock(key, body) for key, body in found]


def _lock(key: str, body: bytes) -> UpdateLock:
    try:
        doc = json.loads(body)
        return UpdateLock(
            key=key,
            pid=int(doc["pid"]),
            username=str(doc.get("username", "?")),
            hostname=str(doc.get("hostname", "?")),
            timestamp=str(doc.get("timestamp", "?")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the update lock {key} is not a Pulumi lock file; inspect it by hand."
        ) from exc


def process_alive(pid: int) -> bool:
    """True when a process `pid` exists on this host (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def wait_for_updates(
    locks: list[UpdateLock],
    stack: str,
    *,
    timeout_s: float,
    timing: Timing,
    hostname: str | None = None,
) -> None:
    """Wait until every locked update's process has ended; StackBusy when one still runs or is on another host."""
    from rollback.errors import CheckFailed
    from rollback.waiting import poll

    here = hostname or socket.gethostname()
    elsewhere = [lock for lock in locks if lock.hostname != here]
    if elsewhere:
        raise StackBusy(
            f"an update on stack {stack} runs as {elsewhere[0].describe()}, another host; "
            "this host cannot see whether it still runs, so its lock was left in place. "
            "Stop it there, then retry.",
            stack=stack,
        )
    running = [lock for lock in locks if process_alive(lock.pid)]
    if not running:
        return
    logger.warning("waiting for the update on stack %s to end: %s", stack, running[0].describe())
    try:
        poll(
            f"the update on stack {stack} ({running[0].describe()}) to end",
            lambda: True if not any(process_alive(lock.pid) for lock in running) else None,
            timeout=timeout_s,
            timing=timing,
        )
    except CheckFailed as exc:
        raise StackBusy(
            f"the update on stack {stack} ({running[0].describe()}) still runs after "
            f"{timeout_s:.0f}s; its lock was left in place. Stop that process (kill "
            f"{running[0].pid}) or wait for it, then retry.",
            stack=stack,
        ) from exc
