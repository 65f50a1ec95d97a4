"""The store: immutable content-addressed blobs, JSON documents and locks.

One protocol, two backends: a local directory (the default, `./artifacts`)
and `s3://bucket/prefix`. `open_store(url, clients)` picks the backend.

Key layout (documents are JSON, keys validated by `keys.check_key`):
  blobs/sha256/<aa>/<digest>                       content-addressed, immutable
  releases/<project>/<stack>/<version>/manifest.json   immutable release manifest
  releases/<project>/<stack>/<version>/status/<n>.json  append-only status history
  stacks/<project>/<stack>/...                     engine state (current checkpoint)
  runs/<project>/<stack>/<run-id>/...              run journals and reports
  locks/<project>/<stack>.lock                     the stack lock
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from rollback.errors import ConfigError

if TYPE_CHECKING:
    from rollback.aws.session import Clients


@dataclass(frozen=True)
class BlobRef:
    """A content-addressed blob in the store."""

    sha256: str
    size: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlobRef:
        return cls(sha256=str(data["sha256"]), size=int(data["size"]))


class Store(Protocol):
    """What every backend offers. Methods raise `rollback.errors` classes only."""

    url: str

    def put_blob(self, stream: BinaryIO) -> BlobRef:
        """Store bytes read from `stream`, hashing while writing (constant memory).

        Idempotent: storing bytes already present returns the same ref.
        """
        ...

    def put_blob_file(self, path: Path) -> BlobRef:
        """Store a file's bytes; raises NotFound/UsageError for a missing path or a directory."""
        ...

    def get_blob(self, sha256: str) -> bytes:
        """Read a (small) blob whole; raises IntegrityError if the bytes do not hash to it."""
        ...

    def fetch_blob(self, sha256: str, dest: Path) -> BlobRef:
        """Stream a blob to `dest`, verified before `dest` appears (constant memory).

        Raises IntegrityError on a mismatch; `dest` is then not created.
        """
        ...

    def has_blob(self, sha256: str) -> bool: ...

    def verify_blob(self, sha256: str) -> BlobRef:
        """Re-hash a stored blob; raises IntegrityError on a mismatch, NotFound if absent."""
        ...

    def delete_blob(self, sha256: str) -> None: ...

    def list_blobs(self) -> Iterator[str]: ...

    def put_doc(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        """Write a document atomically; with create_only raise AlreadyExists if it exists."""
        ...

    def put_docs(self, docs: Sequence[tuple[str, bytes]], *, create_only: bool = False) -> None:
        """Write several documents in order, as `put_doc` each; a reader or a crash sees a
        prefix of them. Raises AlreadyExists (create_only) naming the first that exists."""
        ...

    def get_doc(self, key: str) -> bytes:
        """Read a document; raises NotFound."""
        ...

    def has_doc(self, key: str) -> bool: ...

    def list_docs(self, prefix: str) -> list[str]:
        """Keys under `prefix` (a folder-like prefix ending in '/'), sorted."""
        ...

    def delete_doc(self, key: str) -> None: ...

    def swap_doc(self, key: str, expected: bytes, data: bytes | None) -> bool:
        """Compare-and-swap: replace the document with `data` (None: delete it) only if
        it still holds exactly `expected`; False, changing nothing, when it does not
        (or is gone). Local: under an flock of its folder; S3: `If-Match` on the ETag
        read with the bytes. Locks renew and release through this, never blindly.
        """
        ...

    def state_dir(self) -> Path:
        """A local directory for this machine's state (the embedded cloud's pid and address)."""
        ...


def open_store(url: str, clients: Clients | None = None) -> Store:
    """Open the store at `url` (a directory path, file:// or s3://bucket/prefix).

    Raises ConfigError for an unknown scheme or an S3 bucket that does not exist.
    """
    if "://" not in url:
        from rollback.store.local import LocalStore

        # Messages name the absolute path: "./artifacts" from the wrong directory misleads.
        try:
            root = Path(url).expanduser().absolute()
        except RuntimeError:  # `~someone/x` for a user this machine does not have
            raise ConfigError(
                f"store {url!r} starts with a home directory this machine does not know; "
                "fix --store.",
                store=url,
            ) from None
        return LocalStore(root, str(root))
    scheme = url.split("://", 1)[0].lower()
    if scheme == "file":
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"store URL {url!r} names a remote host; use file:///absolute/path or a plain directory."
            )
        from rollback.store.local import LocalStore

        return LocalStore(Path(unquote(parts.path)), url)
    if scheme == "s3":
        from rollback.store.s3 import S3Store

        if clients is None:
            from rollback.aws.session import Clients, make_session

            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            clients = Clients(make_session(region or "us-east-1"))
        return S3Store.open(url, clients("s3"))
    raise ConfigError(
        f"store URL {url!r} has an unknown scheme {scheme!r}; use a directory, file:// or s3://bucket/prefix.",
        store=url,
    )
