"""The S3 store, `s3://bucket/prefix`.

Blobs are hashed while they are copied to a local temporary file (constant
memory), then uploaded under their final key only if absent; S3 makes an
object visible only when its upload completes, so no partial blob is ever
seen. Documents are single `put_object` calls, conditional
(`If-None-Match: *`) when written create-only: that is what the locks rely on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from rollback.errors import AlreadyExists, CloudError, ConfigError, NotFound
from rollback.store import BlobRef
from rollback.store.hashing import (
    CHUNK,
    check_digest_matches,
    copy_hashing,
    fetch_verified,
    open_source,
)
from rollback.store.keys import BLOB_PREFIX, blob_key, check_key, check_prefix, is_digest

_MISSING = ("404", "NoSuchKey", "NotFound")
_CONFLICT = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_DENIED = ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch")
STATE_DIR = ".rollback-state"


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into the bucket and a key prefix ('' or ending in '/')."""
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise ConfigError(f"store URL {url!r} has no bucket; use s3://BUCKET/PREFIX.", store=url)
    if prefix:
        check_key(prefix)
    return bucket, f"{prefix}/" if prefix else ""


class S3Store:
    """Blobs and documents as objects in one bucket under one prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str, url: str) -> None:
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix
        self.url = url

    @classmethod
    def open(cls, url: str, client: Any) -> S3Store:
        """Open `s3://bucket/prefix`; raises ConfigError if the bucket does not exist."""
        bucket, prefix = parse_s3_url(url)
        store = cls(client, bucket, prefix, url)
        try:
            client.head_bucket(Bucket=bucket)
        except Exception as exc:  # noqa: BLE001 - translated by _translate below
            if _code(exc) == "InvalidBucketName":
                raise ConfigError(
                    f"{bucket!r} is not a valid bucket name; fix --store.", bucket=bucket
                ) from exc
            if _code(exc) in _MISSING or _code(exc) == "NoSuchBucket":
                raise ConfigError(
                    f"bucket {bucket} does not exist; create it or fix --store.",
                    bucket=bucket,
                ) from exc
            raise store._translate(exc, f"open bucket {bucket}") from exc
        return store

    # blobs

    def put_blob(self, stream: BinaryIO) -> BlobRef:
        # The key is the digest, known only at the end: spool to a local file while
        # hashing, then upload that file by name (s3transfer then reads each part
        # from disk as it sends it, instead of buffering parts in memory).
        fd, spool = tempfile.mkstemp(prefix="rollback-blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                ref = copy_hashing(stream, out)
            key = self._key(blob_key(ref.sha256))
            if not self._exists(key):  # immutable: same name, same bytes
                self._call("upload blob", self._upload, spool, key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spool)
        return ref

    def put_blob_file(self, path: Path) -> BlobRef:
        with open_source(path) as stream:
            return self.put_blob(stream)

    def get_blob(self, sha256: str) -> bytes:
        body = self._get(blob_key(sha256), what=f"blob {sha256}")
        data = body.read()
        body.close()
        actual = BlobRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        check_digest_matches(sha256, actual, self.url)
        return bytes(data)

    def fetch_blob(self, sha256: str, dest: Path) -> BlobRef:
        body = self._get(blob_key(sha256), what=f"blob {sha256}")
        try:
            return fetch_verified(_Readable(body), sha256, Path(dest), self.url)
        finally:
            body.close()

    def has_blob(self, sha256: str) -> bool:
        return self._exists(self._key(blob_key(sha256)))

    def verify_blob(self, sha256: str) -> BlobRef:
        body = self._get(blob_key(sha256), what=f"blob {sha256}")
        try:
            ref = copy_hashing(_Readable(body))
        finally:
            body.close()
        check_digest_matches(sha256, ref, self.url)
        return ref

    def delete_blob(self, sha256: str) -> None:
        """Remove a blob; idempotent."""
        key = self._key(blob_key(sha256))
        self._call("delete blob", self._s3.delete_object, Bucket=self.bucket, Key=key)

    def list_blobs(self) -> Iterator[str]:
        for key in self._list(BLOB_PREFIX):
            name = key.rsplit("/", 1)[-1]
            if is_digest(name):
                yield name

    # documents

    def put_doc(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        extra = {"IfNoneMatch": "*"} if create_only else {}
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=self._key(check_key(key)), Body=data, **extra
            )
        except Exception as exc:  # noqa: BLE001 - translated below
            if create_only and _code(exc) in _CONFLICT:
                raise AlreadyExists(
                    f"document {key} already exists in {self.url}; it is written only once.",
                    key=key,
                ) from exc
            raise self._translate(exc, f"write {key}") from exc

    def put_docs(self, docs: Sequence[tuple[str, bytes]], *, create_only: bool = False) -> None:
        # S3 has no multi-object write: one conditional put each, in order (a prefix on failure).
        for key, data in docs:
            self.put_doc(key, data, create_only=create_only)

    def get_doc(self, key: str) -> bytes:
        body = self._get(check_key(key), what=f"document {key}")
        try:
            return bytes(body.read())
        finally:
            body.close()

    def has_doc(self, key: str) -> bool:
        return self._exists(self._key(check_key(key)))

    def list_docs(self, prefix: str) -> list[str]:
        return sorted(self._list(check_prefix(prefix)))

    def delete_doc(self, key: str) -> None:
        """Remove a document; idempotent."""
        self._call(
            f"delete {key}",
            self._s3.delete_object,
            Bucket=self.bucket,
            Key=self._key(check_key(key)),
        )

    def swap_doc(self, key: str, expected: bytes, data: bytes | None) -> bool:
        full = self._key(check_key(key))
        try:
            got = self._s3.get_object(Bucket=self.bucket, Key=full)
        except Exception as exc:  # noqa: BLE001 - translated below
            if _code(exc) in _MISSING:
                return False
            raise self._translate(exc, f"read {key}") from exc
        try:
            current = bytes(got["Body"].read())
        finally:
            got["Body"].close()
        if current != expected:
            return False
        # The ETag read with these bytes: the write lands only if nobody wrote since.
        condition = {"IfMatch": got["ETag"]}
        try:
            if data is None:
                self._s3.delete_object(Bucket=self.bucket, Key=full, **condition)
            else:
                self._s3.put_object(Bucket=self.bucket, Key=full, Body=data, **condition)
        except Exception as exc:  # noqa: BLE001 - translated below
            if _code(exc) in (*_CONFLICT, *_MISSING):
                return False
            raise self._translate(exc, f"swap {key}") from exc
        return True

    def state_dir(self) -> Path:
        # Machine-local state (the embedded cloud's pid) cannot live in a bucket.
        path = Path.cwd() / STATE_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    # internals

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _upload(self, spool: str, key: str) -> None:
        from boto3.s3.transfer import S3Transfer, TransferConfig

        # Bounded concurrency bounds memory: at most this many parts in flight.
        config = TransferConfig(
            multipart_threshold=8 * CHUNK, multipart_chunksize=8 * CHUNK, max_concurrency=4
        )
        # S3Transfer, not the client's injected upload_file: the clients are botocore's.
        S3Transfer(self._s3, config).upload_file(spool, self.bucket, key)

    def _get(self, key: str, *, what: str) -> Any:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:  # noqa: BLE001 - translated below
            if _code(exc) in _MISSING:
                raise NotFound(f"{what} is not in {self.url}.", key=key) from exc
            raise self._translate(exc, f"read {key}") from exc

    def _exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - translated below
            if _code(exc) in _MISSING:
                return False
            raise self._translate(exc, f"check {key}") from exc
        return True

    def _list(self, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", ()):
                    yield item["Key"][len(self.prefix) :]
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, f"list {prefix}") from exc

    def _call(self, action: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, action) from exc

    def _translate(self, exc: Exception, action: str) -> Exception:
        """Turn a botocore failure into ours; anything else (a bug) passes through."""
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        if isinstance(exc, ParamValidationError):
            return ConfigError(f"cannot {action} in {self.url}: {exc}; fix --store.")
        if isinstance(exc, ClientError):
            if _code(exc) in _DENIED:
                return ConfigError(
                    f"access denied to {self.url} ({action}); check the AWS credentials and the bucket policy.",
                    store=self.url,
                )
            return CloudError(f"S3 refused to {action} in {self.url}: {exc}.", code=_code(exc))
        if isinstance(exc, BotoCoreError):
            return CloudError(f"cannot reach S3 to {action} in {self.url}: {exc}.")
        return exc


class _Readable:
    """A botocore StreamingBody seen as a plain `read(n)` stream."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._body.read(n if n >= 0 else None)
        return data


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
