"""S3 buckets and their versioning configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.failures import applying, aws_code
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = {"404", "NoSuchBucket", "NotFound"}


def _region(s3: Any) -> str:
    return str(s3.meta.region_name or "us-east-1")


def _bucket_exists(s3: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if aws_code(exc) in _GONE:
            return False
        raise
    return True


@dataclass(frozen=True)
class Bucket:
    """aws:s3/bucket:Bucket; id is the bucket name. Only tags change in place."""

    clients: Clients
    token = "aws:s3/bucket:Bucket"
    replace_on = frozenset({"bucket", "bucketPrefix", "objectLockEnabled", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        s3 = self.clients("s3")
        bucket = physical_name(inputs, "bucket", name.lower(), 63)
        region = _region(s3)
        with applying(self.token, name, "create"):
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            if inputs.get("objectLockEnabled"):
                kwargs["ObjectLockEnabledForBucket"] = True
            s3.create_bucket(**kwargs)
            if inputs.get("tags"):
                s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": aws_tags(inputs["tags"])})
        return bucket, self._outputs(bucket, region, inputs, inputs.get("tags") or {})

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        s3 = self.clients("s3")
        to_set, to_remove = tag_changes(olds, news)
        with applying(self.token, id, "update"):
            if to_set or to_remove:
                # S3 has no per-key tag calls: the whole set is replaced.
                tags = {str(k): str(v) for k, v in (news.get("tags") or {}).items()}
                if tags:
                    s3.put_bucket_tagging(Bucket=id, Tagging={"TagSet": aws_tags(tags)})
                else:
                    s3.delete_bucket_tagging(Bucket=id)
        return self._outputs(id, _region(s3), {**news, "bucket": id}, news.get("tags") or {})

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        s3 = self.clients("s3")
        with applying(self.token, id, "read"):
            if not _bucket_exists(s3, id):
                return None
            tags: dict[str, str] = {}
            # Tags are read only when declared: drift is judged on declared inputs,
            # and a no-change `up` stays at one read per bucket.
            if inputs.get("tags"):
                try:
                    tags = pulumi_tags(s3.get_bucket_tagging(Bucket=id)["TagSet"])
                except ClientError as exc:
                    if aws_code(exc) != "NoSuchTagSet":
                        raise
        return self._outputs(id, _region(s3), {**inputs, "bucket": id}, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        """Delete the bucket; with `forceDestroy` every object version goes first."""
        s3 = self.clients("s3")
        with applying(self.token, id, "delete"):
            if not _bucket_exists(s3, id):
                return
            if inputs.get("forceDestroy"):
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=id):
                    doomed = [
                        {"Key": v["Key"], "VersionId": v["VersionId"]}
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                    ]
                    if doomed:
                        s3.delete_objects(Bucket=id, Delete={"Objects": doomed, "Quiet": True})
            s3.delete_bucket(Bucket=id)

    def _outputs(
        self, bucket: str, region: str, inputs: dict[str, Any], tags: dict[str, Any]
    ) -> dict[str, Any]:
        outputs = {
            **inputs,
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
            "bucketRegion": region,
            "region": inputs.get("region") or region,
        }
        return with_tags(outputs, {str(k): str(v) for k, v in tags.items()})


@dataclass(frozen=True)
class BucketVersioning:
    """aws:s3/bucketVersioning:BucketVersioning; id is the bucket name.

    Delete suspends versioning (a bucket's versioning cannot be switched off),
    as the AWS provider does.
    """

    clients: Clients
    token = "aws:s3/bucketVersioning:BucketVersioning"
    replace_on = frozenset({"bucket", "expectedBucketOwner", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = str(inputs["bucket"])
        self._put(name, bucket, inputs, "create")
        return bucket, dict(inputs)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return dict(news)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        s3 = self.clients("s3")
        with applying(self.token, id, "read"):
            if not _bucket_exists(s3, id):
                return None
            live = s3.get_bucket_versioning(Bucket=id)
        configuration = dict(inputs.get("versioningConfiguration") or {})
        configuration["status"] = live.get("Status", "Disabled")
        if "MFADelete" in live or "mfaDelete" in configuration:
            configuration["mfaDelete"] = live.get("MFADelete", "Disabled")
        return {**inputs, "bucket": id, "versioningConfiguration": configuration}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        s3 = self.clients("s3")
        with applying(self.token, id, "delete"):
            if (
                _bucket_exists(s3, id)
                and s3.get_bucket_versioning(Bucket=id).get("Status") == "Enabled"
            ):
                s3.put_bucket_versioning(Bucket=id, VersioningConfiguration={"Status": "Suspended"})

    def _put(self, name: str, bucket: str, inputs: dict[str, Any], action: str) -> None:
        configuration = inputs.get("versioningConfiguration") or {}
        status = configuration.get("status", "Enabled")
        if status == "Disabled":
            return  # "Disabled" is only valid for a bucket that never had versioning
        wanted: dict[str, Any] = {"Status": status}
        if configuration.get("mfaDelete"):
            wanted["MFADelete"] = configuration["mfaDelete"]
        kwargs: dict[str, Any] = {"Bucket": bucket, "VersioningConfiguration": wanted}
        if inputs.get("mfa"):
            kwargs["MFA"] = inputs["mfa"]
        if inputs.get("expectedBucketOwner"):
            kwargs["ExpectedBucketOwner"] = inputs["expectedBucketOwner"]
        with applying(self.token, name, action):
            self.clients("s3").put_bucket_versioning(**kwargs)


@dataclass(frozen=True)
class BucketV2(Bucket):
    """aws:s3/bucketV2:BucketV2, the v6 name of v7's Bucket, still accepted by pulumi-aws v7."""

    token = "aws:s3/bucketV2:BucketV2"


@dataclass(frozen=True)
class BucketVersioningV2(BucketVersioning):
    """aws:s3/bucketVersioningV2:BucketVersioningV2, the v6 name of BucketVersioning."""

    token = "aws:s3/bucketVersioningV2:BucketVersioningV2"


def appliers(clients: Clients) -> list[ResourceType]:
    """The S3 appliers."""
    return [
        Bucket(clients),
        BucketVersioning(clients),
        BucketV2(clients),
        BucketVersioningV2(clients),
    ]
