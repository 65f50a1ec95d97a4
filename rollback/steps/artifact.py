"""Artifact step: the release's artifact at the bucket and key the stack reads it from.

"In place" means S3 reports a SHA-256 checksum for the current object equal
to the release's digest. An object stored without a SHA-256 checksum (a plain
PUT gets a CRC32 only) cannot be proved equal, so it is uploaded again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rollback.aws.s3 import Objects, sha256_b64
from rollback.errors import CheckFailed
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence
from rollback.store import BlobRef, Store
from rollback.waiting import Timing


class ArtifactStep:
    """Upload the release artifact from the store when the object differs or is missing."""

    kind = "artifact"

    def __init__(
        self,
        s3: Objects,
        store: Store,
        release_artifact: BlobRef,
        bucket: str,
        key: str,
        timing: Timing | None = None,
    ) -> None:
        self.s3 = s3
        self.store = store
        self.artifact = release_artifact
        self.bucket = bucket
        self.key = key
        self.timing = timing or Timing()

    @property
    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def describe(self) -> StepDescription:
        return StepDescription(
            kind=self.kind,
            summary=(
                f"make sure {self._where} holds the release artifact "
                f"(sha256 {self.artifact.sha256[:12]}, {self.artifact.size} bytes)"
            ),
            changes={
                "bucket": self.bucket,
                "key": self.key,
                "sha256": self.artifact.sha256,
                "size": self.artifact.size,
            },
            reason="the stack deploys the application from this object",
            expected_seconds=1.0 + self.artifact.size / 50e6,
        )

    def apply(self) -> Applied:
        """Upload when the current object's S3 SHA-256 is not the release's; otherwise no call.

        `prior` names the version we uploaded and the one it covered, for compensate.
        Raises IntegrityError when the store's blob or S3's check does not match.
        """
        head = self.s3.head(self.bucket, self.key)
        if head is not None and head.checksum_sha256 == sha256_b64(self.artifact.sha256):
            return Applied(changed=False, detail={"version_id": head.version_id})
        versioned = self.s3.versioned(self.bucket)
        with tempfile.TemporaryDirectory(prefix="rollback-artifact-") as tmp:
            path = Path(tmp) / "artifact"
            self.store.fetch_blob(self.artifact.sha256, path)
            uploaded = self.s3.put_file(self.bucket, self.key, path, self.artifact.sha256)
        prior = {
            "existed": head is not None,
            "previous_version": head.version_id if head else None,
            "versioned": versioned,
            "uploaded_version": uploaded,
        }
        return Applied(changed=True, prior=prior, detail={"version_id": uploaded})

    def verify(self) -> list[Evidence]:
        """Read S3's SHA-256 of the current object back; ok when it is the release's."""
        head = self.s3.head(self.bucket, self.key)
        expected = sha256_b64(self.artifact.sha256)
        observed: dict[str, Any] = {
            "object": self._where,
            "expected_sha256": self.artifact.sha256,
            "expected_checksum_sha256": expected,
        }
        if head is None:
            return [evidence("s3:HeadObject", observed, False, f"{self._where} does not exist")]
        observed.update(
            version_id=head.version_id, size=head.size, checksum_sha256=head.checksum_sha256
        )
        ok = head.checksum_sha256 == expected
        note = ""
        if not ok:
            note = (
                f"{self._where} has no SHA-256 checksum"
                if head.checksum_sha256 is None
                else f"{self._where} has SHA-256 {head.checksum_sha256}, expected {expected}"
            )
        return [evidence("s3:HeadObject", observed, ok, note)]

    def compensate(self, prior: dict[str, Any]) -> None:
        """Remove the version we uploaded, so the previous one is current again.

        In an unversioned bucket an object we replaced is gone: CheckFailed says
        so. Deleting a version already deleted is a no-op, so this is idempotent.
        """
        uploaded = prior.get("uploaded_version")
        if prior.get("versioned") and uploaded:
            self.s3.delete(self.bucket, self.key, uploaded)
        elif not prior.get("existed"):
            self.s3.delete(self.bucket, self.key)
        else:
            raise CheckFailed(
                f"cannot restore the previous {self._where}: the bucket is not versioned, so "
                "the upload replaced it; enable versioning on the artifact bucket.",
                object=self._where,
            )
