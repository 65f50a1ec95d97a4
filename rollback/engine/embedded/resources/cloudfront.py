"""CloudFront distributions.

The program's nested blocks (camelCase, lists) and CloudFront's
DistributionConfig (PascalCase, `{Quantity, Items}` wrappers) are converted
both ways by one table per block, so that what is sent is what is read back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.acm import go_time
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import partition_of
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags
from rollback.errors import CheckFailed, EngineError
from rollback.waiting import Timing, poll

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

# The zone of every CloudFront domain name, for Route53 alias records
# (terraform-provider-aws internal/service/cloudfront: `hosted_zone_id`).
HOSTED_ZONE = {"aws": "Z2FDTNDATAQYW2", "aws-cn": "Z3RFFRIM2A3IF5"}
# How long the provider waits for a distribution to be Deployed.
DEPLOY_TIMEOUT = 90 * 60.0


class Conversion(Protocol):
    def api(self, value: Any) -> Any: ...

    def pulumi(self, value: Any) -> Any: ...


@dataclass(frozen=True)
class Scalar:
    """A value as it is, or cast each way (the SDK sends every number as a float)."""

    to_api: Callable[[Any], Any] | None = None
    to_pulumi: Callable[[Any], Any] | None = None

    def api(self, value: Any) -> Any:
        return self.to_api(value) if self.to_api else value

    def pulumi(self, value: Any) -> Any:
        return self.to_pulumi(value) if self.to_pulumi else value


PLAIN = Scalar()
INT = Scalar(int)
INT_TEXT = Scalar(lambda v: str(int(v)), int)  # ResponseCode is a string in the API


@dataclass(frozen=True)
class Items:
    """A list <-> `{Quantity, Items}`; trusted signers and key groups also say `Enabled`."""

    item: Conversion = PLAIN
    enabled: bool = False

    def api(self, value: Any) -> Any:
        items = [self.item.api(v) for v in value or []]
        wrapped: dict[str, Any] = {"Quantity": len(items)}
        if items:
            wrapped["Items"] = items
        if self.enabled:
            wrapped["Enabled"] = bool(items)
        return wrapped

    def pulumi(self, value: Any) -> Any:
        return [self.item.pulumi(v) for v in (value or {}).get("Items") or []]


@dataclass(frozen=True)
class Block:
    """A nested block: Pulumi key -> (API key, conversion); `defaults` are the provider's
    schema defaults, which it sends when the program leaves a field out."""

    fields: dict[str, tuple[str, Conversion]]
    defaults: dict[str, Any] = field(default_factory=dict)

    def api(self, value: Any) -> Any:
        return {
            **self.defaults,
            **{
                name: conversion.api(value[key])
                for key, (name, conversion) in self.fields.items()
                if value.get(key) is not None
            },
        }

    def pulumi(self, value: Any) -> Any:
        return {
            key: conversion.pulumi(value[name])
            for key, (name, conversion) in self.fields.items()
            if name in value
        }


@dataclass(frozen=True)
class GeoRestriction:
    """`{restrictionType, locations}` <-> `{RestrictionType, Quantity, Items}`."""

    def api(self, value: Any) -> Any:
        return {"RestrictionType": value["restrictionType"], **Items().api(value.get("locations"))}

    def pulumi(self, value: Any) -> Any:
        return {"restrictionType": value["RestrictionType"], "locations": Items().pulumi(value)}


@dataclass(frozen=True)
class Behavior(Block):
    """A cache behaviour: `cachedMethods` sits inside AllowedMethods in the API; without a
    cache policy the legacy TTLs are sent, MinTTL defaulting to 0 as in the provider."""

    def api(self, value: Any) -> Any:
        behavior: dict[str, Any] = super().api(value)
        if value.get("cachedMethods") is not None and "AllowedMethods" in behavior:
            behavior["AllowedMethods"]["CachedMethods"] = Items().api(value["cachedMethods"])
        if not value.get("cachePolicyId"):
            behavior.setdefault("MinTTL", 0)
        return behavior

    def pulumi(self, value: Any) -> Any:
        behavior: dict[str, Any] = super().pulumi(value)
        cached = value.get("AllowedMethods", {}).get("CachedMethods")
        if cached is not None:
            behavior["cachedMethods"] = Items().pulumi(cached)
        return behavior


_BEHAVIOR: dict[str, tuple[str, Conversion]] = {
    "targetOriginId": ("TargetOriginId", PLAIN),
    "viewerProtocolPolicy": ("ViewerProtocolPolicy", PLAIN),
    "allowedMethods": ("AllowedMethods", Items()),
    "cachePolicyId": ("CachePolicyId", PLAIN),
    "originRequestPolicyId": ("OriginRequestPolicyId", PLAIN),
    "responseHeadersPolicyId": ("ResponseHeadersPolicyId", PLAIN),
    "realtimeLogConfigArn": ("RealtimeLogConfigArn", PLAIN),
    "fieldLevelEncryptionId": ("FieldLevelEncryptionId", PLAIN),
    "compress": ("Compress", PLAIN),
    "smoothStreaming": ("SmoothStreaming", PLAIN),
    "minTtl": ("MinTTL", INT),
    "defaultTtl": ("DefaultTTL", INT),
    "maxTtl": ("MaxTTL", INT),
    "forwardedValues": (
        "ForwardedValues",
        Block(
            {
                "queryString": ("QueryString", PLAIN),
                "cookies": (
                    "Cookies",
                    Block(
                        {
                            "forward": ("Forward", PLAIN),
                            "whitelistedNames": ("WhitelistedNames", Items()),
                        }
                    ),
                ),
                "headers": ("Headers", Items()),
                "queryStringCacheKeys": ("QueryStringCacheKeys", Items()),
            }
        ),
    ),
    "functionAssociations": (
        "FunctionAssociations",
        Items(Block({"eventType": ("EventType", PLAIN), "functionArn": ("FunctionARN", PLAIN)})),
    ),
    "lambdaFunctionAssociations": (
        "LambdaFunctionAssociations",
        Items(
            Block(
                {
                    "eventType": ("EventType", PLAIN),
                    "lambdaArn": ("LambdaFunctionARN", PLAIN),
                    "includeBody": ("IncludeBody", PLAIN),
                }
            )
        ),
    ),
    "trustedKeyGroups": ("TrustedKeyGroups", Items(enabled=True)),
    "trustedSigners": ("TrustedSigners", Items(enabled=True)),
}

_BEHAVIOR_DEFAULTS = {"Compress": False, "FieldLevelEncryptionId": ""}

_ORIGIN = Block(
    {
        "originId": ("Id", PLAIN),
        "domainName": ("DomainName", PLAIN),
        "originPath": ("OriginPath", PLAIN),
        "connectionAttempts": ("ConnectionAttempts", INT),
        "connectionTimeout": ("ConnectionTimeout", INT),
        "originAccessControlId": ("OriginAccessControlId", PLAIN),
        "customHeaders": (
            "CustomHeaders",
            Items(Block({"name": ("HeaderName", PLAIN), "value": ("HeaderValue", PLAIN)})),
        ),
        "customOriginConfig": (
            "CustomOriginConfig",
            Block(
                {
                    "httpPort": ("HTTPPort", INT),
                    "httpsPort": ("HTTPSPort", INT),
                    "originProtocolPolicy": ("OriginProtocolPolicy", PLAIN),
                    "originSslProtocols": ("OriginSslProtocols", Items()),
                    "originKeepaliveTimeout": ("OriginKeepaliveTimeout", INT),
                    "originReadTimeout": ("OriginReadTimeout", INT),
                },
                {"OriginKeepaliveTimeout": 5, "OriginReadTimeout": 30},
            ),
        ),
        "s3OriginConfig": (
            "S3OriginConfig",
            Block({"originAccessIdentity": ("OriginAccessIdentity", PLAIN)}),
        ),
        "originShield": (
            "OriginShield",
            Block(
                {"enabled": ("Enabled", PLAIN), "originShieldRegion": ("OriginShieldRegion", PLAIN)}
            ),
        ),
    },
    {"ConnectionAttempts": 3, "ConnectionTimeout": 10, "OriginPath": ""},
)

# Top-level inputs that are part of the DistributionConfig (loggingConfig is done apart).
_CONFIG = Block(
    {
        "enabled": ("Enabled", PLAIN),
        "comment": ("Comment", PLAIN),
        "aliases": ("Aliases", Items()),
        "defaultRootObject": ("DefaultRootObject", PLAIN),
        "httpVersion": ("HttpVersion", PLAIN),
        "isIpv6Enabled": ("IsIPV6Enabled", PLAIN),
        "priceClass": ("PriceClass", PLAIN),
        "webAclId": ("WebACLId", PLAIN),
        "continuousDeploymentPolicyId": ("ContinuousDeploymentPolicyId", PLAIN),
        "staging": ("Staging", PLAIN),
        "origins": ("Origins", Items(_ORIGIN)),
        "originGroups": (
            "OriginGroups",
            Items(
                Block(
                    {
                        "originId": ("Id", PLAIN),
                        "failoverCriteria": (
                            "FailoverCriteria",
                            Block({"statusCodes": ("StatusCodes", Items(INT))}),
                        ),
                        "members": ("Members", Items(Block({"originId": ("OriginId", PLAIN)}))),
                    }
                )
            ),
        ),
        "defaultCacheBehavior": ("DefaultCacheBehavior", Behavior(_BEHAVIOR, _BEHAVIOR_DEFAULTS)),
        "orderedCacheBehaviors": (
            "CacheBehaviors",
            Items(
                Behavior({"pathPattern": ("PathPattern", PLAIN), **_BEHAVIOR}, _BEHAVIOR_DEFAULTS)
            ),
        ),
        "customErrorResponses": (
            "CustomErrorResponses",
            Items(
                Block(
                    {
                        "errorCode": ("ErrorCode", INT),
                        "responseCode": ("ResponseCode", INT_TEXT),
                        "responsePagePath": ("ResponsePagePath", PLAIN),
                        "errorCachingMinTtl": ("ErrorCachingMinTTL", INT),
                    }
                )
            ),
        ),
        "restrictions": (
            "Restrictions",
            Block({"geoRestriction": ("GeoRestriction", GeoRestriction())}),
        ),
        "viewerCertificate": (
            "ViewerCertificate",
            Block(
                {
                    "cloudfrontDefaultCertificate": ("CloudFrontDefaultCertificate", PLAIN),
                    "acmCertificateArn": ("ACMCertificateArn", PLAIN),
                    "iamCertificateId": ("IAMCertificateId", PLAIN),
                    "minimumProtocolVersion": ("MinimumProtocolVersion", PLAIN),
                    "sslSupportMethod": ("SSLSupportMethod", PLAIN),
                },
                {"CloudFrontDefaultCertificate": False, "MinimumProtocolVersion": "TLSv1"},
            ),
        ),
    },
    {
        "Comment": "",
        "DefaultRootObject": "",
        "HttpVersion": "http2",
        "IsIPV6Enabled": False,
        "PriceClass": "PriceClass_All",
        "WebACLId": "",
    },
)
_LOGGING = Block(
    {
        "bucket": ("Bucket", PLAIN),
        "includeCookies": ("IncludeCookies", PLAIN),
        "prefix": ("Prefix", PLAIN),
    }
)


def distribution_config(inputs: dict[str, Any], caller_reference: str) -> dict[str, Any]:
    """The DistributionConfig the program's inputs describe."""
    config: dict[str, Any] = {"CallerReference": caller_reference, **_CONFIG.api(inputs)}
    logging = inputs.get("loggingConfig")
    config["Logging"] = {
        "Enabled": bool(logging),
        "IncludeCookies": False,
        "Bucket": "",
        "Prefix": "",
        **(_LOGGING.api(logging) if logging else {}),
    }
    return config


def as_declared(live: Any, declared: Any) -> Any:
    """`live` in the shape of `declared`: only declared keys of blocks (a key the read cannot
    see keeps its declared value), declared items of lists first. Defaults CloudFront fills
    in are then no drift, while a changed declared value is."""
    if isinstance(declared, dict) and isinstance(live, dict):
        return {k: as_declared(live[k], v) if k in live else v for k, v in declared.items()}
    if isinstance(declared, list) and isinstance(live, list):
        if len(declared) == len(live) and all(isinstance(d, dict) for d in declared):
            return [as_declared(a, b) for a, b in zip(live, declared, strict=True)]
        return in_declared_order(live, declared)
    return live


@dataclass(frozen=True)
class Distribution:
    """aws:cloudfront/distribution:Distribution; id is the distribution id. Changes in place.

    As terraform-provider-aws (internal/service/cloudfront/distribution.go):
    the caller reference is made once and kept; create and update wait until
    the distribution is Deployed unless `waitForDeployment` is false; delete
    disables an enabled distribution, waits until it is Deployed and then
    deletes it with the current ETag, or with `retainOnDelete` only disables it.
    """

    clients: Clients
    token = "aws:cloudfront/distribution:Distribution"
    replace_on = frozenset({"staging", "region"})
    timing: Timing = field(default_factory=Timing)

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        # The provider's caller reference is a Terraform unique id (id.UniqueId).
        config = distribution_config(inputs, f"terraform-{uuid.uuid4().hex[:26]}")
        cloudfront = self.clients("cloudfront")
        with applying(self.token, name, "create"):
            if inputs.get("tags"):
                created = cloudfront.create_distribution_with_tags(
                    DistributionConfigWithTags={
                        "DistributionConfig": config,
                        "Tags": {"Items": aws_tags(inputs["tags"])},
                    }
                )
            else:
                created = cloudfront.create_distribution(DistributionConfig=config)
        id = str(created["Distribution"]["Id"])
        if inputs.get("waitForDeployment", True):
            self._wait_deployed(name, id)
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        cloudfront = self.clients("cloudfront")
        with applying(self.token, id, "update"):
            current = cloudfront.get_distribution_config(Id=id)
            reference = current["DistributionConfig"]["CallerReference"]
            cloudfront.update_distribution(
                Id=id,
                IfMatch=current["ETag"],
                DistributionConfig=distribution_config(news, reference),
            )
            to_set, to_remove = tag_changes(olds, news)
            arn = cloudfront.get_distribution(Id=id)["Distribution"]["ARN"]
            if to_set:
                cloudfront.tag_resource(Resource=arn, Tags={"Items": aws_tags(to_set)})
            if to_remove:
                cloudfront.untag_resource(Resource=arn, TagKeys={"Items": to_remove})
        if news.get("waitForDeployment", True):
            self._wait_deployed(id, id)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        cloudfront = self.clients("cloudfront")
        with applying(self.token, id, "read"):
            try:
                answer = cloudfront.get_distribution(Id=id)
            except ClientError as exc:
                if aws_code(exc) == "NoSuchDistribution":
                    return None
                raise
            distribution = answer["Distribution"]
            tags = cloudfront.list_tags_for_resource(Resource=distribution["ARN"])
        config = distribution["DistributionConfig"]
        live: dict[str, Any] = _CONFIG.pulumi(config)
        logging = config.get("Logging") or {}
        if logging.get("Enabled"):
            live["loggingConfig"] = _LOGGING.pulumi(logging)
        declared = {k: as_declared(live[k], v) for k, v in inputs.items() if k in live}
        region = str(cloudfront.meta.region_name or "us-east-1")
        outputs = {
            **live,
            **inputs,
            **declared,
            "arn": distribution["ARN"],
            "callerReference": config["CallerReference"],
            "domainName": distribution["DomainName"],
            "etag": answer.get("ETag", ""),
            "hostedZoneId": HOSTED_ZONE.get(partition_of(region), HOSTED_ZONE["aws"]),
            "inProgressValidationBatches": distribution.get("InProgressInvalidationBatches", 0),
            "lastModifiedTime": go_time(distribution.get("LastModifiedTime")),
            "status": distribution.get("Status", ""),
            "retainOnDelete": bool(inputs.get("retainOnDelete", False)),
            "waitForDeployment": bool(inputs.get("waitForDeployment", True)),
        }
        return with_tags(outputs, pulumi_tags(tags.get("Tags", {}).get("Items")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        cloudfront = self.clients("cloudfront")
        with applying(self.token, id, "delete"):
            try:
                current = cloudfront.get_distribution_config(Id=id)
            except ClientError as exc:
                if aws_code(exc) == "NoSuchDistribution":
                    return
                raise
            if current["DistributionConfig"].get("Enabled"):
                disabled = {**current["DistributionConfig"], "Enabled": False}
                cloudfront.update_distribution(
                    Id=id, IfMatch=current["ETag"], DistributionConfig=disabled
                )
        if inputs.get("retainOnDelete"):
            return
        self._wait_deployed(id, id)
        with applying(self.token, id, "delete"), already_gone("NoSuchDistribution"):
            etag = cloudfront.get_distribution_config(Id=id)["ETag"]
            cloudfront.delete_distribution(Id=id, IfMatch=etag)

    def _wait_deployed(self, name: str, id: str) -> None:
        seen: list[str] = []

        def deployed() -> bool | None:
            with applying(self.token, name, "read"):
                status = self.clients("cloudfront").get_distribution(Id=id)["Distribution"][
                    "Status"
                ]
            seen.append(str(status))
            return True if status == "Deployed" else None

        try:
            poll(
                f"CloudFront distribution {id} to be Deployed",
                deployed,
                timeout=DEPLOY_TIMEOUT,
                timing=self.timing,
                observe=lambda: f"status {seen[-1]}" if seen else "",
            )
        except CheckFailed as exc:
            raise EngineError(
                f"{self.token} {name!r}: {exc.message}", resource=name, type=self.token
            ) from exc


def appliers(clients: Clients) -> list[ResourceType]:
    """The CloudFront applier."""
    return [Distribution(clients)]
