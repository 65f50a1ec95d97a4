"""S3: the release artifact object, checked by S3's own SHA-256 checksum.

Uploads are single PUTs carrying the expected ChecksumSHA256, so S3 itself
refuses bytes that do not hash to the release's digest, and head_object with
ChecksumMode=ENABLED returns a whole-object SHA-256 to compare (a multipart
upload would give a checksum of part checksums instead). A single PUT is
limited to 5 GiB.
"""

from __future__ import annotations

import base64
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback.aws.failures import translated
from rollback.errors import CloudError, UsageError

MAX_SINGLE_PUT = 5 * 1024**3


def sha256_b64(hex_digest: str) -> str:
    """The base64 form S3 uses for ChecksumSHA256, from a hex digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _translated(what: str) -> AbstractContextManager[None]:
    """The shared translation with S3's codes: a missing bucket, bytes that fail their checksum."""
    return translated(
        what,
        not_found=("NoSuchBucket",),
        absent="the bucket does not exist",
        refused=("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"),
    )


@dataclass(frozen=True)
class ObjectHead:
    """What head_object says about the current version of a key."""

    version_id: str | None  # None in a bucket that never had versioning
    size: int
    checksum_sha256: str | None  # base64, None when the object was stored without one


class Objects:
    """Typed access to the S3 calls the artifact step makes."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        """The current object at `key`, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            with _translated(f"reading s3://{bucket}/{key}"):
                found = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except CloudError as exc:
            if exc.fields.get("code") in ("404", "NoSuchKey", "NotFound") and isinstance(
                exc.__cause__, ClientError
            ):
                # head_object cannot tell a missing bucket from a missing key.
                self._require_bucket(bucket)
                return None
            raise
        version = found.get("VersionId")
        return ObjectHead(
            version_id=None if version in (None, "null") else str(version),
            size=int(found["ContentLength"]),
            checksum_sha256=found.get("ChecksumSHA256"),
        )

    def _require_bucket(self, bucket: str) -> None:
        with _translated(f"reading bucket {bucket}"):
            self.client.head_bucket(Bucket=bucket)

    def versioned(self, bucket: str) -> bool:
        """Whether the bucket keeps every version (versioning Enabled)."""
        with _translated(f"reading versioning of bucket {bucket}"):
            return bool(self.client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled")

    def put_file(self, bucket: str, key: str, path: Path, sha256_hex: str) -> str | None:
        """Upload `path` in one PUT that S3 checks against `sha256_hex`; the new version id."""
        size = path.stat().st_size
        if size > MAX_SINGLE_PUT:
            raise UsageError(
                f"the artifact is {size} bytes; uploads here are single PUTs of at most 5 GiB.",
            )
        with path.open("rb") as body, _translated(f"uploading s3://{bucket}/{key}"):
            put = self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=sha256_b64(sha256_hex),
            )
        version = put.get("VersionId")
        return None if version in (None, "null") else str(version)

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Delete the key (a delete marker when versioned) or exactly one version of it."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        with _translated(f"deleting s3://{bucket}/{key}"):
            self.client.delete_object(**kwargs)
