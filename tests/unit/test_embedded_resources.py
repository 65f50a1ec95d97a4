"""The embedded engine's per-type appliers against in-process moto.

For each type: create then read gives back the inputs' key properties; an
in-place update changes the cloud (checked with plain boto3); a change made
behind the applier's back shows in read (drift); delete removes the resource
and a second delete is a no-op. One moto backend and one dependency chain
(VPC, subnets, security group, ALB, target groups, zone, DB subnet group) are
built per module; each test creates and deletes its own resource under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine.embedded.resources import SUPPORTED, ResourceType, resource_types
from rollback.errors import EngineError

REGION = "us-east-1"


@dataclass(frozen=True)
class Cloud:
    """The appliers and a plain boto3 session on the same moto backend."""

    session: boto3.Session
    types: dict[str, ResourceType]

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def applier(self, token: str) -> ResourceType:
        return self.types[token]


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        yield Cloud(session=session, types=resource_types(Clients(session=session)))


def test_every_supported_token_has_an_applier(cloud: Cloud) -> None:
    assert set(cloud.types) == SUPPORTED
    assert all(applier.token == token for token, applier in cloud.types.items())


# --- S3 ---------------------------------------------------------------------


def test_bucket_lifecycle(cloud: Cloud) -> None:
    s3 = cloud.client("s3")
    bucket = cloud.applier("aws:s3/bucket:Bucket")
    inputs = {"bucket": "artifacts-lifecycle", "tags": {"app": "webapp"}, "forceDestroy": True}

    id, outputs = bucket.create("artifacts", inputs)

    assert id == "artifacts-lifecycle"
    assert outputs["arn"] == "arn:aws:s3:::artifacts-lifecycle"
    assert bucket.read(id, outputs) == outputs

    news = {**inputs, "tags": {"app": "webapp", "tier": "data"}}
    bucket.update(id, inputs, news)
    live = s3.get_bucket_tagging(Bucket=id)["TagSet"]
    assert {t["Key"]: t["Value"] for t in live} == {"app": "webapp", "tier": "data"}

    s3.put_bucket_tagging(Bucket=id, Tagging={"TagSet": [{"Key": "app", "Value": "other"}]})
    read = bucket.read(id, outputs)
    assert read is not None and read["tags"] == {"app": "other"}

    s3.put_object(Bucket=id, Key="release.tar.gz", Body=b"v1")
    bucket.delete(id, outputs)
    assert id not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    bucket.delete(id, outputs)
    assert bucket.read(id, outputs) is None


def test_bucket_without_a_name_gets_one_from_the_logical_name(cloud: Cloud) -> None:
    bucket = cloud.applier("aws:s3/bucket:Bucket")
    id, outputs = bucket.create("Artifacts", {})
    try:
        assert id.startswith("artifacts-") and outputs["bucket"] == id
        cloud.client("s3").head_bucket(Bucket=id)
    finally:
        bucket.delete(id, outputs)


def test_bucket_versioning_lifecycle(cloud: Cloud) -> None:
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="versioned")
    versioning = cloud.applier("aws:s3/bucketVersioning:BucketVersioning")
    inputs = {"bucket": "versioned", "versioningConfiguration": {"status": "Enabled"}}

    id, outputs = versioning.create("versioning", inputs)

    assert id == "versioned"
    assert s3.get_bucket_versioning(Bucket=id)["Status"] == "Enabled"
    assert versioning.read(id, outputs) == outputs

    news = {"bucket": "versioned", "versioningConfiguration": {"status": "Suspended"}}
    versioning.update(id, inputs, news)
    assert s3.get_bucket_versioning(Bucket=id)["Status"] == "Suspended"

    s3.put_bucket_versioning(Bucket=id, VersioningConfiguration={"Status": "Enabled"})
    read = versioning.read(id, news)
    assert read is not None and read["versioningConfiguration"]["status"] == "Enabled"

    versioning.delete(id, news)
    assert s3.get_bucket_versioning(Bucket=id)["Status"] == "Suspended"
    versioning.delete(id, news)
    s3.delete_bucket(Bucket=id)
    assert versioning.read(id, news) is None


def test_an_aws_failure_names_the_resource(cloud: Cloud) -> None:
    versioning = cloud.applier("aws:s3/bucketVersioning:BucketVersioning")
    with pytest.raises(EngineError) as caught:
        versioning.create(
            "versioning",
            {"bucket": "no-such-bucket", "versioningConfiguration": {"status": "Enabled"}},
        )
    assert "versioning" in caught.value.message
    assert caught.value.fields["aws_code"] == "NoSuchBucket"
