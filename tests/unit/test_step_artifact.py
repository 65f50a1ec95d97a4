"""ArtifactStep against in-process moto S3 and the local store."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.aws.s3 import Objects
from rollback.errors import CheckFailed, IntegrityError, NotFound
from rollback.steps.artifact import ArtifactStep
from rollback.store import BlobRef, Store, open_store

BUCKET = "webapp-artifacts"
KEY = "releases/app.zip"


@dataclass
class Setup:
    client: Any
    store: Store
    root: Path
    release: BlobRef
    mutating: list[str]

    def step(self, bucket: str = BUCKET) -> ArtifactStep:
        return ArtifactStep(Objects(self.client), self.store, self.release, bucket, KEY)

    def current(self) -> tuple[bytes, str]:
        found = self.client.get_object(Bucket=BUCKET, Key=KEY)
        return found["Body"].read(), found["VersionId"]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        store = open_store(str(tmp_path / "store"))
        release = store.put_blob(io.BytesIO(b"release 1.4.0 " * 5000))
        mutating: list[str] = []

        def count(model: Any, **_: Any) -> None:
            if not model.name.startswith(("Describe", "List", "Get", "Head")):
                mutating.append(model.name)

        client.meta.events.register("before-call.s3", count)
        yield Setup(client, store, tmp_path / "store", release, mutating)


def test_uploads_when_missing_and_s3_checksum_proves_it(setup: Setup) -> None:
    step = setup.step()
    applied = step.apply()
    assert applied.changed
    assert setup.mutating == ["PutObject"]
    body, version = setup.current()
    assert body == setup.store.get_blob(setup.release.sha256)
    head = setup.client.head_object(Bucket=BUCKET, Key=KEY, ChecksumMode="ENABLED")
    (found,) = step.verify()
    assert found.ok
    assert found.observed["checksum_sha256"] == head["ChecksumSHA256"]
    assert found.observed["version_id"] == version


def test_second_apply_makes_no_mutating_call(setup: Setup) -> None:
    step = setup.step()
    step.apply()
    setup.mutating.clear()
    assert not step.apply().changed
    assert setup.mutating == []


def test_same_bytes_without_a_sha256_checksum_are_uploaded_again(setup: Setup) -> None:
    data = setup.store.get_blob(setup.release.sha256)
    setup.client.put_object(Bucket=BUCKET, Key=KEY, Body=data)  # a plain PUT: CRC32 only
    step = setup.step()
    assert not step.verify()[0].ok
    assert step.apply().changed
    assert step.verify()[0].ok


def test_verify_catches_a_change_behind_its_back(setup: Setup) -> None:
    step = setup.step()
    step.apply()
    setup.client.put_object(Bucket=BUCKET, Key=KEY, Body=b"hotfix", ChecksumAlgorithm="SHA256")
    (found,) = step.verify()
    assert not found.ok
    assert "expected" in found.note


def test_compensate_restores_the_previous_version(setup: Setup) -> None:
    setup.client.put_object(Bucket=BUCKET, Key=KEY, Body=b"release 1.5.0")
    before = setup.current()
    step = setup.step()
    applied = step.apply()
    assert setup.current()[0] != before[0]
    step.compensate(applied.prior)
    assert setup.current() == before
    step.compensate(applied.prior)  # idempotent
    assert setup.current() == before


def test_compensate_removes_what_it_uploaded_to_an_empty_key(setup: Setup) -> None:
    step = setup.step()
    step.compensate(step.apply().prior)
    assert setup.client.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_corrupt_store_blob_uploads_nothing(setup: Setup) -> None:
    digest = setup.release.sha256
    blob = setup.root / "blobs" / "sha256" / digest[:2] / digest
    assert blob.is_file()
    blob.write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        setup.step().apply()
    assert setup.mutating == []
    assert "Versions" not in setup.client.list_object_versions(Bucket=BUCKET)


def test_missing_bucket_is_not_found(setup: Setup) -> None:
    with pytest.raises(NotFound, match="bucket does not exist"):
        setup.step(bucket="no-such-bucket-here").apply()


def test_unversioned_bucket_cannot_restore_a_replaced_object(setup: Setup) -> None:
    setup.client.create_bucket(Bucket="plain-artifacts")
    setup.client.put_object(Bucket="plain-artifacts", Key=KEY, Body=b"release 1.5.0")
    step = setup.step(bucket="plain-artifacts")
    applied = step.apply()
    assert step.verify()[0].ok
    with pytest.raises(CheckFailed, match="not versioned"):
        step.compensate(applied.prior)
