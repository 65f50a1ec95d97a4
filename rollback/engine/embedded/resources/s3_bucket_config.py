"""S3 bucket sub-resources: policy, public access block, encryption, website, ownership
controls, and objects. Each configuration's id is the bucket name, as the provider's is."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.assets import asset_bytes, is_asset
from rollback.engine.embedded.resources.declared import covers, declared_json
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_NO_BUCKET = ("NoSuchBucket", "404")


def _missing(call: Any, missing: tuple[str, ...], **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if aws_code(exc) in missing or aws_code(exc) in _NO_BUCKET:
            return None
        raise


@dataclass(frozen=True)
class BucketPolicy:
    """aws:s3/bucketPolicy:BucketPolicy; the policy changes in place."""

    clients: Clients
    token = "aws:s3/bucketPolicy:BucketPolicy"
    replace_on = frozenset({"bucket", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = str(inputs["bucket"])
        self._put(name, bucket, inputs, "create")
        return bucket, present(self.read(bucket, inputs), self.token, bucket)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(
                self.clients("s3").get_bucket_policy, ("NoSuchBucketPolicy",), Bucket=id
            )
        if answer is None:
            return None
        return {
            **inputs,
            "bucket": id,
            "policy": declared_json(answer["Policy"], inputs.get("policy")),
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_NO_BUCKET):
            self.clients("s3").delete_bucket_policy(Bucket=id)

    def _put(self, name: str, bucket: str, inputs: dict[str, Any], action: str) -> None:
        policy = inputs["policy"]
        with applying(self.token, name, action):
            self.clients("s3").put_bucket_policy(
                Bucket=bucket,
                Policy=policy if isinstance(policy, str) else __import__("json").dumps(policy),
            )


_BLOCKS = (
    ("blockPublicAcls", "BlockPublicAcls"),
    ("blockPublicPolicy", "BlockPublicPolicy"),
    ("ignorePublicAcls", "IgnorePublicAcls"),
    ("restrictPublicBuckets", "RestrictPublicBuckets"),
)


@dataclass(frozen=True)
class BucketPublicAccessBlock:
    """aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock; the four switches change in place (default false)."""

    clients: Clients
    token = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    replace_on = frozenset({"bucket", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = str(inputs["bucket"])
        self._put(name, bucket, inputs, "create")
        return bucket, present(self.read(bucket, inputs), self.token, bucket)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(
                self.clients("s3").get_public_access_block,
                ("NoSuchPublicAccessBlockConfiguration",),
                Bucket=id,
            )
        if answer is None:
            return None
        live = answer["PublicAccessBlockConfiguration"]
        return {
            **inputs,
            "bucket": id,
            **{key: bool(live.get(parameter, False)) for key, parameter in _BLOCKS},
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_NO_BUCKET):
            self.clients("s3").delete_public_access_block(Bucket=id)

    def _put(self, name: str, bucket: str, inputs: dict[str, Any], action: str) -> None:
        with applying(self.token, name, action):
            self.clients("s3").put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration={
                    parameter: bool(inputs.get(key, False)) for key, parameter in _BLOCKS
                },
            )


def _encryption_rules(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    rules = []
    for rule in inputs.get("rules") or []:
        aws: dict[str, Any] = {}
        default = rule.get("applyServerSideEncryptionByDefault")
        if default:
            aws["ApplyServerSideEncryptionByDefault"] = {"SSEAlgorithm": default["sseAlgorithm"]}
            if default.get("kmsMasterKeyId"):
                aws["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default[
                    "kmsMasterKeyId"
                ]
        if rule.get("bucketKeyEnabled") is not None:
            aws["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
        rules.append(aws)
    return rules


@dataclass(frozen=True)
class BucketEncryption:
    """aws:s3/bucketServerSideEncryptionConfiguration[V2]; rules change in place; delete restores SSE-S3."""

    clients: Clients
    token: str
    replace_on = frozenset({"bucket", "expectedBucketOwner", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = str(inputs["bucket"])
        self._put(name, bucket, inputs, "create")
        return bucket, present(self.read(bucket, inputs), self.token, bucket)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(
                self.clients("s3").get_bucket_encryption,
                ("ServerSideEncryptionConfigurationNotFoundError",),
                Bucket=id,
            )
        if answer is None:
            return None
        live = answer["ServerSideEncryptionConfiguration"]["Rules"]
        declared = inputs.get("rules") or []
        if covers(live, _encryption_rules(inputs)):
            rules = declared
        else:
            rules = [
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": r.get("ApplyServerSideEncryptionByDefault", {}).get(
                            "SSEAlgorithm", ""
                        ),
                        "kmsMasterKeyId": r.get("ApplyServerSideEncryptionByDefault", {}).get(
                            "KMSMasterKeyID", ""
                        ),
                    },
                    "bucketKeyEnabled": bool(r.get("BucketKeyEnabled", False)),
                }
                for r in live
            ]
        return {**inputs, "bucket": id, "rules": rules}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_NO_BUCKET):
            self.clients("s3").delete_bucket_encryption(Bucket=id)

    def _put(self, name: str, bucket: str, inputs: dict[str, Any], action: str) -> None:
        with applying(self.token, name, action):
            self.clients("s3").put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={"Rules": _encryption_rules(inputs)},
            )


def _website(inputs: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if inputs.get("indexDocument"):
        config["IndexDocument"] = {"Suffix": inputs["indexDocument"]["suffix"]}
    if inputs.get("errorDocument"):
        config["ErrorDocument"] = {"Key": inputs["errorDocument"]["key"]}
    redirect = inputs.get("redirectAllRequestsTo")
    if redirect:
        config["RedirectAllRequestsTo"] = {"HostName": redirect["hostName"]}
        if redirect.get("protocol"):
            config["RedirectAllRequestsTo"]["Protocol"] = redirect["protocol"]
    return config


@dataclass(frozen=True)
class BucketWebsite:
    """aws:s3/bucketWebsiteConfiguration[V2]; documents and redirects change in place."""

    clients: Clients
    token: str
    replace_on = frozenset({"bucket", "expectedBucketOwner", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = str(inputs["bucket"])
        self._put(name, bucket, inputs, "create")
        return bucket, present(self.read(bucket, inputs), self.token, bucket)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        s3 = self.clients("s3")
        with applying(self.token, id, "read"):
            live = _missing(s3.get_bucket_website, ("NoSuchWebsiteConfiguration",), Bucket=id)
        if live is None:
            return None
        region = str(s3.meta.region_name or "us-east-1")
        outputs = {
            **inputs,
            "bucket": id,
            # The provider's names: <bucket>.s3-website-<region>.amazonaws.com (dash form).
            "websiteDomain": f"s3-website-{region}.amazonaws.com",
            "websiteEndpoint": f"{id}.s3-website-{region}.amazonaws.com",
        }
        if "IndexDocument" in live or "indexDocument" in inputs:
            outputs["indexDocument"] = {"suffix": live.get("IndexDocument", {}).get("Suffix", "")}
        if "ErrorDocument" in live or "errorDocument" in inputs:
            outputs["errorDocument"] = {"key": live.get("ErrorDocument", {}).get("Key", "")}
        if "RedirectAllRequestsTo" in live:
            redirect = live["RedirectAllRequestsTo"]
            outputs["redirectAllRequestsTo"] = {
                "hostName": redirect.get("HostName", ""),
                **({"protocol": redirect["Protocol"]} if "Protocol" in redirect else {}),
            }
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_NO_BUCKET):
            self.clients("s3").delete_bucket_website(Bucket=id)

    def _put(self, name: str, bucket: str, inputs: dict[str, Any], action: str) -> None:
        with applying(self.token, name, action):
            self.clients("s3").put_bucket_website(
                Bucket=bucket, WebsiteConfiguration=_website(inputs)
            )


@dataclass(frozen=True)
class BucketOwnershipControls:
    """aws:s3/bucketOwnershipControls:BucketOwnershipControls; the rule changes in place."""

    clients: Clients
    token = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
    replace_on = frozenset({"bucket", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = str(inputs["bucket"])
        self._put(name, bucket, inputs, "create")
        return bucket, present(self.read(bucket, inputs), self.token, bucket)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(
                self.clients("s3").get_bucket_ownership_controls,
                ("OwnershipControlsNotFoundError",),
                Bucket=id,
            )
        if answer is None:
            return None
        rules = answer["OwnershipControls"]["Rules"]
        ownership = rules[0]["ObjectOwnership"] if rules else ""
        return {**inputs, "bucket": id, "rule": {"objectOwnership": ownership}}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_NO_BUCKET):
            self.clients("s3").delete_bucket_ownership_controls(Bucket=id)

    def _put(self, name: str, bucket: str, inputs: dict[str, Any], action: str) -> None:
        with applying(self.token, name, action):
            self.clients("s3").put_bucket_ownership_controls(
                Bucket=bucket,
                OwnershipControls={
                    "Rules": [{"ObjectOwnership": inputs["rule"]["objectOwnership"]}]
                },
            )


# Pulumi object input -> PutObject parameter / HeadObject key.
_OBJECT_SETTINGS = (
    ("contentType", "ContentType"),
    ("cacheControl", "CacheControl"),
    ("contentDisposition", "ContentDisposition"),
    ("contentEncoding", "ContentEncoding"),
    ("contentLanguage", "ContentLanguage"),
    ("websiteRedirect", "WebsiteRedirectLocation"),
    ("serverSideEncryption", "ServerSideEncryption"),
    ("storageClass", "StorageClass"),
)


@dataclass(frozen=True)
class BucketObject:
    """aws:s3/bucketObject:BucketObject and BucketObjectv2; id is the key.

    Content (source asset, content, contentBase64), metadata and tags change
    in place by putting the object again; bucket and key force a new object.
    The ETag (MD5 of the content for a plain upload) shows content drift.
    """

    clients: Clients
    token: str
    replace_on = frozenset({"bucket", "key", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        key = str(inputs.get("key") or name)
        self._put(name, key, inputs, "create")
        return key, present(self.read(key, {**inputs, "key": key}), self.token, key)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, {**news, "key": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        s3 = self.clients("s3")
        bucket = str(inputs["bucket"])
        with applying(self.token, id, "read"):
            head = _missing(s3.head_object, ("NoSuchKey", "404"), Bucket=bucket, Key=id)
            if head is None:
                return None
            tags = pulumi_tags(s3.get_object_tagging(Bucket=bucket, Key=id).get("TagSet"))
        etag = str(head.get("ETag", "")).strip('"')
        outputs = {
            **inputs,
            "key": id,
            "bucket": bucket,
            "etag": etag,
            "versionId": head.get("VersionId", ""),
            "contentType": head.get("ContentType", ""),
            "arn": f"arn:aws:s3:::{bucket}/{id}",
        }
        for key, parameter in _OBJECT_SETTINGS[1:]:
            if key in inputs or parameter in head:
                outputs[key] = head.get(parameter, "")
        # A content change behind the stack's back shows as a different source hash.
        try:
            expected = self._content(inputs, Path.cwd())
        except OSError:  # read outside a run: the program's files are not at hand
            expected = None
        if expected is not None and hashlib.md5(expected).hexdigest() != etag:  # noqa: S324 (S3's ETag)
            for key in ("source", "content", "contentBase64"):
                if key in outputs:
                    outputs[key] = {"etag": etag}
        if tags or "tags" in inputs:
            outputs["tags"] = tags
        outputs["tagsAll"] = tags
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_NO_BUCKET, "NoSuchKey"):
            self.clients("s3").delete_object(Bucket=str(inputs["bucket"]), Key=id)

    def _put(self, name: str, key: str, inputs: dict[str, Any], action: str) -> None:
        body = self._content(inputs, Path.cwd()) or b""
        kwargs: dict[str, Any] = {"Bucket": str(inputs["bucket"]), "Key": key, "Body": body}
        for input_key, parameter in _OBJECT_SETTINGS:
            if inputs.get(input_key):
                kwargs[parameter] = inputs[input_key]
        if "ContentType" not in kwargs:
            guessed = mimetypes.guess_type(key)[0]
            kwargs["ContentType"] = guessed or "application/octet-stream"
        if inputs.get("acl"):
            kwargs["ACL"] = inputs["acl"]
        if inputs.get("metadata"):
            kwargs["Metadata"] = {str(k): str(v) for k, v in inputs["metadata"].items()}
        if inputs.get("tags"):
            kwargs["Tagging"] = "&".join(
                f"{t['Key']}={t['Value']}" for t in aws_tags(inputs["tags"])
            )
        with applying(self.token, name, action):
            self.clients("s3").put_object(**kwargs)

    @staticmethod
    def _content(inputs: dict[str, Any], base: Path) -> bytes | None:
        import base64

        source = inputs.get("source")
        if isinstance(source, dict) and is_asset(source):
            return asset_bytes(source, base)
        if inputs.get("content") is not None:
            return str(inputs["content"]).encode("utf-8")
        if inputs.get("contentBase64"):
            return base64.b64decode(str(inputs["contentBase64"]))
        return None


def appliers(clients: Clients) -> list[ResourceType]:
    """The S3 bucket sub-resource appliers (v7 names and the V2 names kept as aliases)."""
    return [
        BucketPolicy(clients),
        BucketPublicAccessBlock(clients),
        BucketOwnershipControls(clients),
        BucketEncryption(
            clients,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        ),
        BucketEncryption(
            clients,
            "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
        ),
        BucketWebsite(clients, "aws:s3/bucketWebsiteConfiguration:BucketWebsiteConfiguration"),
        BucketWebsite(clients, "aws:s3/bucketWebsiteConfigurationV2:BucketWebsiteConfigurationV2"),
        BucketObject(clients, "aws:s3/bucketObject:BucketObject"),
        BucketObject(clients, "aws:s3/bucketObjectv2:BucketObjectv2"),
    ]
