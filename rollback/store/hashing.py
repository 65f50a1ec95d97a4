"""Streaming sha256: copy, hash and verify in one pass with a fixed-size buffer.

Every backend moves blob bytes through these functions, so memory stays at
one chunk (1 MiB) whatever the blob size.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from rollback.errors import IntegrityError, NotFound, UsageError
from rollback.store import BlobRef

CHUNK = 1024 * 1024


class Readable(Protocol):
    """Anything with `read(n)`: a file, a socket body, a test's generator stream."""

    def read(self, n: int = -1, /) -> bytes: ...


def chunks(stream: Readable) -> Iterator[memoryview]:
    """Yield the stream's bytes chunk by chunk, reusing one buffer when it can.

    Each chunk is valid only until the next one is read.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while True:
            n = readinto(view)
            if not n:
                return
            yield view[:n]
    else:
        while True:
            data = stream.read(CHUNK)
            if not data:
                return
            yield memoryview(data)


def open_source(path: Path) -> BinaryIO:
    """Open a file whose bytes are to become a blob.

    Raises UsageError for a directory and NotFound for a missing file, so every
    backend refuses them in the same words.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; pass a file.", path=str(path))
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"file {path} does not exist; check the path.", path=str(path)) from None


def sha256_of(data: bytes) -> str:
    """The sha256 of `data`, in hex."""
    import hashlib  # on first use: it loads OpenSSL (~4 ms), which a command that hashes nothing skips

    return hashlib.sha256(data).hexdigest()


def copy_hashing(source: Readable, dest: BinaryIO | None = None) -> BlobRef:
    """Hash `source` to its end, writing every byte to `dest` when given."""
    import hashlib  # on first use, as in sha256_of

    digest = hashlib.sha256()
    size = 0
    for chunk in chunks(source):
        digest.update(chunk)
        if dest is not None:
            dest.write(chunk)
        size += len(chunk)
    return BlobRef(sha256=digest.hexdigest(), size=size)


def check_digest_matches(expected: str, actual: BlobRef, where: str) -> None:
    """Raise IntegrityError when the bytes read do not hash to the name they are stored under."""
    if actual.sha256 != expected:
        raise IntegrityError(
            f"blob {expected} in {where} is corrupt: its bytes hash to {actual.sha256}; "
            "restore it from a copy or record the release again.",
            sha256=expected,
            actual=actual.sha256,
        )


def fetch_verified(source: Readable, sha256: str, dest: Path, where: str) -> BlobRef:
    """Copy `source` to `dest`, which appears only once the bytes hash to `sha256`.

    The bytes go to a temporary file beside `dest` first; on a mismatch it is
    removed and IntegrityError raised, so `dest` is never created.
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        raise NotFound(
            f"directory {dest.parent} does not exist; create it or choose another destination.",
            path=str(dest.parent),
        )
    import tempfile  # here: it pulls in shutil, random, bz2 and lzma; a start-up never needs them

    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            ref = copy_hashing(source, out)
            out.flush()
            os.fsync(out.fileno())
        check_digest_matches(sha256, ref, where)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return ref
