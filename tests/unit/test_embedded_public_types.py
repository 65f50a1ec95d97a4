"""Types and provider settings that Pulumi's public static-site and assume-role examples use.

ACM certificate validation (a wait, not a resource), CloudFront distributions,
IAM access keys (a secret that AWS shows once), and explicit providers that
assume roles. Each against in-process moto, read back with plain boto3.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, drifted
from rollback.engine.embedded.providers import provider_clients
from rollback.engine.embedded.resources.acm import CertificateValidation, go_time
from rollback.engine.embedded.resources.cloudfront import Distribution
from rollback.engine.embedded.secrets import is_secret, reveal
from rollback.errors import EngineError
from rollback.store.local import LocalStore
from rollback.waiting import Timing

DOMAIN = "www.example.dev"


@dataclass
class Calls:
    """Operation names and parameters the session sent."""

    made: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((model.name, dict(params)))

    def named(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.made if name == operation]


@dataclass
class Cloud:
    session: boto3.Session
    clients: Clients
    calls: Calls


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        calls = Calls()
        session.events.register("provide-client-params.*.*", calls)
        yield Cloud(session, Clients(session), calls)


@dataclass
class FakeTime:
    """A clock that moves only when slept; `on_sleep` runs at each sleep."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Any = None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()

    def timing(self) -> Timing:
        return Timing(sleep=self.sleep, clock=lambda: self.now)


def _certificate(cloud: Cloud) -> dict[str, Any]:
    acm = cloud.clients("acm")
    arn = acm.request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")["CertificateArn"]
    certificate: dict[str, Any] = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    return certificate


def test_certificate_validation_waits_until_acm_issues_the_certificate(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.settings

    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 3600)
    certificate = _certificate(cloud)
    record = certificate["DomainValidationOptions"][0]["ResourceRecord"]["Name"]
    # ACM validates while the engine sleeps: moto's stand-in delay ends at the first sleep.
    time = FakeTime(on_sleep=lambda: monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", -1))
    validation = CertificateValidation(cloud.clients, timing=time.timing())
    inputs = {"certificateArn": certificate["CertificateArn"], "validationRecordFqdns": [record]}

    id, outputs = validation.create("validation", inputs)

    assert time.sleeps == [1.0]
    described = cloud.clients("acm").describe_certificate(CertificateArn=inputs["certificateArn"])
    assert described["Certificate"]["Status"] == "ISSUED"
    # The provider's id: the certificate's IssuedAt before the wait, as Go prints a time.
    assert id == go_time(certificate["IssuedAt"]) and id.endswith(" +0000 UTC")
    assert outputs["certificateArn"] == inputs["certificateArn"]
    assert validation.read(id, inputs) == outputs
    validation.delete(id, inputs)  # nothing in the cloud to delete
    assert validation.read(id, inputs) == outputs


def test_certificate_validation_refuses_missing_records_and_gives_up_on_a_pending_certificate(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.settings

    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 3600)
    certificate = _certificate(cloud)
    arn = certificate["CertificateArn"]
    time = FakeTime()
    validation = CertificateValidation(cloud.clients, timing=time.timing())

    with pytest.raises(EngineError, match=f"missing {DOMAIN} DNS validation record"):
        validation.create("validation", {"certificateArn": arn, "validationRecordFqdns": ["x.dev"]})
    assert time.sleeps == []  # refused before any wait
    with pytest.raises(EngineError, match="gave up waiting for ACM Certificate"):
        validation.create("validation", {"certificateArn": arn})
    assert sum(time.sleeps) == pytest.approx(75 * 60)  # the provider's create timeout
    assert validation.read(go_time(None), {"certificateArn": arn}) is None  # not issued: gone


def _distribution_inputs(**changes: Any) -> dict[str, Any]:
    origin = "site.s3-website-us-east-1.amazonaws.com"
    inputs: dict[str, Any] = {
        "enabled": True,
        "origins": [
            {
                "originId": "site",
                "domainName": origin,
                "customOriginConfig": {
                    "originProtocolPolicy": "http-only",
                    "httpPort": 80.0,
                    "httpsPort": 443.0,
                    "originSslProtocols": ["TLSv1.2"],
                },
            }
        ],
        "defaultCacheBehavior": {
            "targetOriginId": "site",
            "viewerProtocolPolicy": "redirect-to-https",
            "allowedMethods": ["GET", "HEAD"],
            "cachedMethods": ["GET", "HEAD"],
            "forwardedValues": {"queryString": False, "cookies": {"forward": "none"}},
            "defaultTtl": 600.0,
        },
        "customErrorResponses": [
            {"errorCode": 404.0, "responseCode": 404.0, "responsePagePath": "/404.html"}
        ],
        "restrictions": {"geoRestriction": {"restrictionType": "none"}},
        "viewerCertificate": {"cloudfrontDefaultCertificate": True},
        "tags": {"team": "web"},
    }
    inputs.update(changes)
    return inputs


def test_distribution_reads_back_as_declared_changes_in_place_and_is_disabled_before_delete(
    cloud: Cloud,
) -> None:
    distribution = Distribution(cloud.clients, timing=FakeTime().timing())
    inputs = _distribution_inputs()
    cloudfront = cloud.clients("cloudfront")

    id, outputs = distribution.create("cdn", inputs)

    config = cloudfront.get_distribution_config(Id=id)["DistributionConfig"]
    assert config["DefaultCacheBehavior"]["AllowedMethods"]["CachedMethods"]["Items"] == [
        "GET",
        "HEAD",
    ]
    assert config["CustomErrorResponses"]["Items"][0]["ResponseCode"] == "404"
    assert config["IsIPV6Enabled"] is False and config["PriceClass"] == "PriceClass_All"
    assert outputs["hostedZoneId"] == "Z2FDTNDATAQYW2" and outputs["status"] == "Deployed"
    assert outputs["domainName"].endswith(".cloudfront.net")
    assert outputs["tags"] == {"team": "web"}
    live = distribution.read(id, inputs)
    assert live is not None and drifted(inputs, live) == ()

    changed = _distribution_inputs(priceClass="PriceClass_100", aliases=["www.example.dev"])
    distribution.update(id, inputs, changed)
    config = cloudfront.get_distribution_config(Id=id)["DistributionConfig"]
    assert config["PriceClass"] == "PriceClass_100" and config["Aliases"]["Items"] == [DOMAIN]
    assert config["CallerReference"] == outputs["callerReference"]  # made once, kept

    cloud.calls.made.clear()
    distribution.delete(id, changed)
    updates = cloud.calls.named("UpdateDistribution")
    assert [u["DistributionConfig"]["Enabled"] for u in updates] == [False]
    assert [name for name, _ in cloud.calls.made].index("UpdateDistribution") < [
        name for name, _ in cloud.calls.made
    ].index("DeleteDistribution")
    assert distribution.read(id, changed) is None
    distribution.delete(id, changed)  # already gone


ACCESS_KEY_PROGRAM = """\
import pulumi
import pulumi_aws as aws

config = pulumi.Config()
user = aws.iam.User("user", name="deployer")
key = aws.iam.AccessKey("key", user=user.name, status=config.require("status"))
pulumi.export("secret", key.secret)
"""


def test_an_access_key_secret_is_secret_and_survives_a_status_update(
    cloud: Cloud, tmp_path: Path
) -> None:
    program = tmp_path / "program"
    program.mkdir()
    (program / "Pulumi.yaml").write_text("name: keys\nruntime: python\n")
    (program / "__main__.py").write_text(ACCESS_KEY_PROGRAM)
    engine = EmbeddedEngine(LocalStore(tmp_path / "store"), cloud.clients, "keys")
    urn = "urn:pulumi:dev::keys::aws:iam/accessKey:AccessKey::key"

    def up(status: str) -> dict[str, Any]:
        engine.up(program, "dev", StackConfig(values={"keys:status": status}))
        deployment = engine._previous("dev")
        assert deployment is not None
        return deployment.managed()[urn].outputs

    first = up("Active")
    assert is_secret(first["secret"]) and is_secret(first["sesSmtpPasswordV4"])
    smtp = base64.b64decode(reveal(first["sesSmtpPasswordV4"]))
    assert smtp[0] == 4 and len(smtp) == 33  # version byte, then an HMAC-SHA256
    (key,) = cloud.clients("iam").list_access_keys(UserName="deployer")["AccessKeyMetadata"]
    assert key["Status"] == "Active" and first["id"] == key["AccessKeyId"]

    second = up("Inactive")

    (key,) = cloud.clients("iam").list_access_keys(UserName="deployer")["AccessKeyMetadata"]
    assert key["Status"] == "Inactive" and second["id"] == first["id"]  # in place
    assert reveal(second["secret"]) == reveal(first["secret"])  # AWS shows it only once
    assert is_secret(second["secret"])


def test_an_explicit_provider_assumes_its_roles_in_turn_on_first_use(cloud: Cloud) -> None:
    first = "arn:aws:iam::123456789012:role/first"
    second = "arn:aws:iam::123456789012:role/second"
    roles = [
        {"roleArn": first, "sessionName": "one"},
        # Either spelling reaches the provider (the bridge maps keys to Terraform's names).
        {"role_arn": second, "session_name": "two", "externalId": "ext", "duration": "30m"},
    ]
    clients = provider_clients(
        cloud.clients, "urn:p", {"region": "us-west-2", "assumeRoles": json.dumps(roles)}
    )
    assert cloud.calls.named("AssumeRole") == []  # nothing asked before the first use

    identity = clients("sts").get_caller_identity()

    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/second/two"
    assert cloud.calls.named("AssumeRole") == [
        {"RoleArn": first, "RoleSessionName": "one"},
        {"RoleArn": second, "RoleSessionName": "two", "ExternalId": "ext", "DurationSeconds": 1800},
    ]
    assert clients("s3").meta.region_name == "us-west-2"
    clients("s3").list_buckets()
    assert len(cloud.calls.named("AssumeRole")) == 2  # kept until they are about to expire


def test_an_explicit_provider_signs_with_its_own_keys_and_assumes_roles_with_them(
    cloud: Cloud,
) -> None:
    signed: list[str] = []
    cloud.session.events.register(
        "before-send.*.*",
        lambda request, **_: signed.append(str(request.headers["Authorization"])),
    )
    keys = {"accessKey": "AKIAPROVIDEROWNKEY01", "secretKey": "provider-secret", "token": "t"}

    provider_clients(cloud.clients, "urn:p", keys)("s3").list_buckets()
    assumed = provider_clients(
        cloud.clients,
        "urn:p",
        {**keys, "assumeRoles": json.dumps([{"roleArn": "arn:aws:iam::123456789012:role/r"}])},
    )
    assumed("s3").list_buckets()

    # ListBuckets with the provider's key; AssumeRole with it too; then ListBuckets as the role.
    assert "Credential=AKIAPROVIDEROWNKEY01/" in signed[0]
    assert "Credential=AKIAPROVIDEROWNKEY01/" in signed[1]
    assert "Credential=AKIAPROVIDEROWNKEY01/" not in signed[2]


@pytest.mark.parametrize(
    ("inputs", "refusal"),
    [
        ({"accessKey": "AKIAONLYHALF"}, "only one of accessKey and secretKey"),
        ({"profile": "no-such-profile-here"}, "no credentials on this machine"),
        ({"assumeRoleWithWebIdentity": json.dumps({"roleArn": "r"})}, "web identity"),
        ({"assumeRoles": json.dumps([{"roleArn": "r", "duration": "soon"}])}, "not a duration"),
    ],
)
def test_roles_the_engine_cannot_assume_are_refused_in_one_sentence(
    cloud: Cloud, inputs: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(EngineError, match=refusal) as caught:
        provider_clients(cloud.clients, "urn:p", inputs)
    assert caught.value.message.count(". ") <= 1
    assert cloud.calls.named("AssumeRole") == []
