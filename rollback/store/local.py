"""The local-directory store (the default, `./artifacts`).

Writes go to a temporary file in the target's file system, are fsynced, then
linked or renamed into place, so a reader never sees a partial file. Nothing
is created until the first write: opening a store changes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from rollback.errors import AlreadyExists, ConfigError, NotFound, UsageError
from rollback.store import BlobRef
from rollback.store.hashing import (
    check_digest_matches,
    copy_hashing,
    fetch_verified,
    open_source,
    sha256_of,
)
from rollback.store.keys import BLOB_PREFIX, blob_key, check_key, check_prefix, is_digest

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_TMP_PREFIX = ".tmp-"
# How often a write retries when another process removes an emptied folder under it.
_PRUNE_RACES = 10

T = TypeVar("T")


SYNC_THREADS = 8
_syncers: dict[int, ThreadPoolExecutor] = {}  # by pid: a forked child has none of its parent's
_syncers_lock = threading.Lock()


def sync_pool() -> ThreadPoolExecutor:
    """This process's fsync threads (SYNC_THREADS), started as writes need them, then kept.

    A thread started per write would make each write wait for the scheduler
    to run it: on a busy machine that is milliseconds per thread, paid on the
    way to the first change of a run (its journal is one write of several
    files). A long-lived process may start them all at once beforehand (the
    agent does).
    """
    from concurrent.futures import ThreadPoolExecutor

    pid = os.getpid()
    with _syncers_lock:
        if pid not in _syncers:
            _syncers[pid] = ThreadPoolExecutor(
                max_workers=SYNC_THREADS, thread_name_prefix="store-fsync"
            )
        return _syncers[pid]


def _fsync_all(fds: list[int]) -> None:
    """fsync open files; several at once, so their waits overlap."""
    if len(fds) <= 1:
        for fd in fds:
            os.fsync(fd)
        return
    list(sync_pool().map(os.fsync, fds))


def _shown(text: str, limit: int = 120) -> str:
    """`text` for a message: whole when short, else its start and end around `...`."""
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


def _open_folder(directory: Path) -> int | None:
    """An fd of `directory`, or None when there is no such folder."""
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LocalStore:
    """Blobs and documents as files under `root`."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = Path(root)
        self.url = url or str(self.root)
        if "\x00" in str(self.root):  # exists() would say False; every open would raise
            raise self._unusable("it contains a NUL byte")
        try:
            is_file = self.root.exists() and not self.root.is_dir()
        except OSError as exc:  # a name too long: no path the system takes
            raise self._unusable(exc.strerror or str(exc)) from None
        if is_file:
            raise ConfigError(
                f"store {self.root} is a file, not a directory; fix --store.", store=self.url
            )

    def _unusable(self, why: str) -> ConfigError:
        return ConfigError(
            f"store {_shown(self.url)!r} is not a usable path ({why}); fix --store.",
            store=self.url,
        )

    # blobs

    def put_blob(self, stream: BinaryIO) -> BlobRef:
        tmp = self._temp_file(self.root / BLOB_PREFIX)
        try:
            with open(tmp, "wb") as out:
                ref = copy_hashing(stream, out)
                out.flush()
                os.fsync(out.fileno())
            # Read-only on disk: blobs are immutable, the mode says so to people too.
            os.chmod(tmp, 0o444)
            final = self.root / blob_key(ref.sha256)
            self._makedirs(final.parent)
            with contextlib.suppress(FileExistsError):  # same bytes already stored
                self._oserror_as_config(os.link, tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return ref

    def put_blob_file(self, path: Path) -> BlobRef:
        with open_source(path) as stream:
            return self.put_blob(stream)

    def get_blob(self, sha256: str) -> bytes:
        with self._open_blob(sha256) as stream:
            data = stream.read()
        actual = BlobRef(sha256=sha256_of(data), size=len(data))
        check_digest_matches(sha256, actual, self.url)
        return data

    def fetch_blob(self, sha256: str, dest: Path) -> BlobRef:
        with self._open_blob(sha256) as stream:
            return fetch_verified(stream, sha256, Path(dest), self.url)

    def has_blob(self, sha256: str) -> bool:
        return (self.root / blob_key(sha256)).is_file()

    def verify_blob(self, sha256: str) -> BlobRef:
        with self._open_blob(sha256) as stream:
            ref = copy_hashing(stream)
        check_digest_matches(sha256, ref, self.url)
        return ref

    def delete_blob(self, sha256: str) -> None:
        """Remove a blob; idempotent (a missing blob is not an error)."""
        path = self.root / blob_key(sha256)
        with contextlib.suppress(FileNotFoundError):
            self._oserror_as_config(path.unlink)

    def list_blobs(self) -> Iterator[str]:
        base = self.root / BLOB_PREFIX
        if not base.is_dir():
            return
        for shard in sorted(p for p in base.iterdir() if p.is_dir()):
            for blob in sorted(shard.iterdir()):
                if is_digest(blob.name):
                    yield blob.name

    # documents

    def put_doc(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        self.put_docs([(key, data)], create_only=create_only)

    def put_docs(self, docs: Sequence[tuple[str, bytes]], *, create_only: bool = False) -> None:
        """Write several documents, in order, waiting for the disk once.

        Each is written to a temporary file, the files are fsynced together
        (the file system commits them in one go), then each is linked into
        place in order: a reader, or a crash, sees a prefix of them, each
        complete. Raises AlreadyExists (create_only) naming the first that
        exists; the ones before it stay written.
        """
        staged: list[tuple[str, Path, str]] = []
        fds: list[int] = []
        try:
            folders: set[Path] = set()
            for key, data in docs:
                path = self.root / check_key(key)
                if path.is_dir():
                    raise UsageError(
                        f"store key {key!r} names a folder of documents; choose another key.",
                        key=key,
                    )
                fd, tmp = self._temp_fd(path.parent, made=path.parent in folders)
                folders.add(path.parent)
                fds.append(fd)
                staged.append((key, path, tmp))
                self._oserror_as_config(_write_all, fd, data)
                os.fchmod(fd, 0o644)
            self._oserror_as_config(_fsync_all, fds)
            for fd in fds:
                os.close(fd)
            fds = []
            for key, path, tmp in staged:
                if create_only:
                    # link() fails if the name exists: the O_EXCL of a complete file.
                    try:
                        self._oserror_as_config(os.link, tmp, path)
                    except FileExistsError:
                        raise AlreadyExists(
                            f"document {key} already exists in {self.url}; it is written only once.",
                            key=key,
                        ) from None
                else:
                    self._oserror_as_config(os.replace, tmp, path)
        finally:
            for fd in fds:
                os.close(fd)
            for _, _, tmp in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def get_doc(self, key: str) -> bytes:
        path = self.root / check_key(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"document {key} is not in {self.url}.", key=key) from None

    def has_doc(self, key: str) -> bool:
        return (self.root / check_key(key)).is_file()

    def list_docs(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        if prefix.endswith("/"):
            top = self.root / prefix
        else:  # a partial name (or nothing): walk its folder, filter by the prefix
            top = (self.root / prefix).parent if prefix else self.root
        if not top.is_dir():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_doc(self, key: str) -> None:
        """Remove a document; idempotent (a missing document is not an error)."""
        path = self.root / check_key(key)
        with contextlib.suppress(FileNotFoundError):
            self._oserror_as_config(path.unlink)
            self._prune(path.parent)

    def swap_doc(self, key: str, expected: bytes, data: bytes | None) -> bool:
        path = self.root / check_key(key)
        fd = self._locked_folder(path.parent)
        if fd is None:
            return False
        try:
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                return False
            if current != expected:
                return False
            if data is None:
                self._oserror_as_config(path.unlink)
                self._prune(path.parent)
                return True
            tmp = self._temp_file(path.parent)
            try:
                with open(tmp, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o644)
                self._oserror_as_config(os.replace, tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            return True
        finally:
            os.close(fd)  # releases the flock

    def state_dir(self) -> Path:
        return self._makedirs(self.root / ".state")

    # internals

    def _open_blob(self, sha256: str) -> BinaryIO:
        path = self.root / blob_key(sha256)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is not in {self.url}.", sha256=sha256) from None

    def _temp_file(self, directory: Path) -> str:
        fd, tmp = self._temp_fd(directory)
        os.close(fd)
        return tmp

    def _temp_fd(self, directory: Path, *, made: bool = False) -> tuple[int, str]:
        """A new temporary file in `directory`, made first unless `made`: (fd, path).

        Another process may remove the folder, empty, between our making it and
        our file's creation (`_prune`); then it is made again. Once the file is
        in it, the folder is not empty and stays.
        """
        import tempfile  # here: it pulls in shutil, random, bz2 and lzma, which reads never need

        for _ in range(_PRUNE_RACES):
            if not made:
                self._makedirs(directory)
            try:
                return self._oserror_as_config(tempfile.mkstemp, prefix=_TMP_PREFIX, dir=directory)
            except FileNotFoundError:
                made = False
        raise ConfigError(
            f"store {self.url}: folder {directory} keeps disappearing; is another program deleting it?",
            store=self.url,
        )

    def _locked_folder(self, directory: Path) -> int | None:
        """`directory` opened and flocked (the caller closes it), or None when it is not there.

        Every swap in a folder holds its flock, so a swap cannot interleave with
        another's read-compare-write; a create-only link cannot succeed meanwhile
        either, since the document exists for as long as it compares equal. A
        folder emptied and removed while we waited for its flock may have been
        made again: the flock must be on the folder the path names now.
        """
        for _ in range(_PRUNE_RACES):
            fd = self._oserror_as_config(_open_folder, directory)
            if fd is None:
                return None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                named = os.stat(directory)
            except FileNotFoundError:
                os.close(fd)
                return None
            held = os.fstat(fd)
            if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                return fd
            os.close(fd)
        raise ConfigError(
            f"store {self.url}: folder {directory} keeps being replaced; is another program writing it?",
            store=self.url,
        )

    def _prune(self, directory: Path) -> None:
        """Remove `directory` and its parents up to the root while they are empty.

        A document's folder exists while it holds documents, as a prefix does in
        S3: taking and releasing a lock, or a stop request made and cleared,
        leaves the store as it was.
        """
        while directory != self.root and self.root in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:  # not empty (or not ours to remove): it stays
                return
            directory = directory.parent

    def _makedirs(self, directory: Path) -> Path:
        self._oserror_as_config(directory.mkdir, parents=True, exist_ok=True)
        return directory

    def _oserror_as_config(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a file-system call; permission and space problems become ConfigError.

        FileExistsError and FileNotFoundError pass through: callers give them meaning.
        """
        try:
            return call(*args, **kwargs)
        except (FileExistsError, FileNotFoundError):
            raise
        except OSError as exc:
            raise ConfigError(
                f"store {self.url} cannot be written ({exc.strerror or exc}); check its permissions and free space, or fix --store.",
                store=self.url,
            ) from exc
