"""Provider resources as Pulumi names and records them, and clients for explicit aws providers.

A provider is a resource of type `pulumi:providers:<package>`. The engine
registers one default provider per package a program uses, named
`default_<version with underscores>` (pkg/resource/deploy/providers/registry.go,
`GetDefaultProviderName`... `default_` plus the version); a program may also
declare explicit ones (`aws.Provider("west", region=...)`), named by their
logical name. A resource refers to its provider as `<provider urn>::<provider
id>` (sdk/go/common/resource/providers/reference.go), the id being a UUID.

An explicit aws provider's region applies to the resources that name it; its
`endpoints` are honoured only when they are loopback URLs (the embedded
cloud): the embedded engine never reaches another cloud. Its `assumeRoles`
are assumed in order, each with the credentials of the one before (the first
with the engine's own), as pulumi-aws does through terraform-provider-aws's
aws-sdk-go-base (`assume_role` blocks: role chaining); resources that name the
provider are then applied with the last role's credentials. STS is asked on
first use and again before the credentials expire (botocore's refreshable
credentials), as the AWS SDKs do. Web identity roles are refused. A provider's own
`accessKey`/`secretKey`/`token` or `profile` sign its resources' calls and its first
assumed role, before the engine's credentials.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from rollback.aws.endpoint import is_loopback_url
from rollback.aws.session import Clients
from rollback.engine.embedded.checkpoint import ResourceState
from rollback.engine.embedded.options import duration_seconds
from rollback.errors import EngineError, UsageError

PROVIDER_PREFIX = "pulumi:providers:"
PACKAGES = frozenset({"aws", "random"})
_DISTRIBUTIONS = {"aws": "pulumi_aws", "random": "pulumi_random"}


def package_version(package: str) -> str:
    from importlib.metadata import version

    return version(_DISTRIBUTIONS.get(package, f"pulumi_{package}"))


BUILTIN = "pulumi"  # the engine's own provider: StackReference reads go through it


def default_provider_urn(project: str, stack: str, package: str) -> str:
    if package == BUILTIN:
        return f"urn:pulumi:{stack}::{project}::{PROVIDER_PREFIX}{BUILTIN}::default"
    version = package_version(package).replace(".", "_")
    return f"urn:pulumi:{stack}::{project}::{PROVIDER_PREFIX}{package}::default_{version}"


def package_provider_state(
    urn: str, version: str, previous: ResourceState | None, now: str
) -> ResourceState:
    """A default provider of a package without configuration (random): inputs are its version."""
    import uuid

    inputs = {"version": version} if version else {}
    if previous is not None and previous.inputs == inputs:
        return previous
    return ResourceState(
        urn=urn,
        type=PROVIDER_PREFIX + urn.split(PROVIDER_PREFIX, 1)[1].split("::", 1)[0],
        custom=True,
        id=previous.id if previous is not None else str(uuid.uuid4()),
        inputs=inputs,
        outputs=dict(inputs),
        created=previous.created if previous is not None and previous.created else now,
        modified=now,
    )


@dataclass
class EndpointClients(Clients):
    """The clients of an explicit provider: made by the engine's own session, in the provider's
    region, with an endpoint per service (`endpoints`) and, when it assumes roles, the roles'
    credentials.

    The engine's session makes them, so whatever is registered on it (a caller's audit of AWS
    calls) sees the provider's calls too. Assumed credentials are refreshed before they expire
    and a client is made again when its keys changed.
    """

    endpoints: dict[str, str] = field(default_factory=dict)
    region: str = ""
    credentials: Any = None  # botocore refreshable credentials of the assumed roles, or None
    _keys: dict[str, str | None] = field(default_factory=dict, repr=False)

    def _client(self, service: str) -> Any:
        keys: dict[str, Any] = {}
        if self.credentials is not None:
            frozen = self.credentials.get_frozen_credentials()  # refreshes when close to expiry
            keys = {
                "aws_access_key_id": frozen.access_key,
                "aws_secret_access_key": frozen.secret_key,
                "aws_session_token": frozen.token,
            }
        if service not in self._cache or self._keys.get(service) != keys.get("aws_access_key_id"):
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": self.max_attempts})
            self._cache[service] = self.session.client(
                service,
                region_name=self.region or None,
                endpoint_url=self.endpoints.get(service, self.endpoint_url),
                config=config,
                **keys,
            )
            self._keys[service] = keys.get("aws_access_key_id")
        return self._cache[service]


def _json(value: Any) -> Any:
    """Provider inputs arrive JSON-encoded when they are not strings (the SDK's provider rule)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def endpoints_of(urn: str, inputs: dict[str, Any]) -> dict[str, str]:
    """service -> URL from the provider's `endpoints`; refuses any that leaves the embedded cloud."""
    found: dict[str, str] = {}
    blocks = _json(inputs.get("endpoints")) or []
    for block in blocks if isinstance(blocks, list) else [blocks]:
        for service, url in (block or {}).items():
            if url:
                found[str(service)] = str(url)
    outside = sorted(f"{s}={u}" for s, u in found.items() if not is_loopback_url(u))
    if outside:
        raise EngineError(
            f"the provider {urn} sends {', '.join(outside)} outside the embedded cloud; the "
            "embedded engine applies only to a loopback endpoint. Use --engine pulumi.",
            urn=urn,
        )
    return found


def provider_clients(base: Clients, urn: str, inputs: dict[str, Any]) -> Clients:
    """Clients for an explicit aws provider: its region, loopback endpoints and assumed roles.

    Without `assumeRoles` the clients use the provider's own keys or profile, else the
    engine's credentials.
    Raises EngineError for endpoints outside the embedded cloud and for roles
    the engine cannot assume; no STS call is made here.
    """
    endpoints = endpoints_of(urn, inputs)
    region = str(_json(inputs.get("region")) or base.session.region_name or "us-east-1")
    roles = assume_role_requests(urn, inputs)
    own = own_credentials(urn, inputs)
    return EndpointClients(
        session=base.session,
        endpoint_url=base.endpoint_url,
        max_attempts=base.max_attempts,
        _lock=base._lock,  # one session: clients are made one at a time
        endpoints=endpoints,
        region=region,
        credentials=_assumed(base, region, endpoints.get("sts"), roles, own) if roles else own,
    )


def own_credentials(urn: str, inputs: dict[str, Any]) -> Any:
    """The provider's own credentials: its `accessKey`/`secretKey`/`token`, else its `profile`,
    else None (the engine's). They sign its resources' calls and are the source of its first
    assumed role, as in aws-sdk-go-base (static keys before a profile before the environment).

    Raises EngineError for half a key pair and for a profile with no credentials here.
    """
    from botocore.credentials import Credentials

    access, secret = _json(inputs.get("accessKey")), _json(inputs.get("secretKey"))
    if access or secret:
        if not (access and secret):
            raise EngineError(
                f"the provider {urn} sets only one of accessKey and secretKey; set both or "
                "neither. Nothing was changed.",
                urn=urn,
            )
        return Credentials(str(access), str(secret), str(_json(inputs.get("token")) or "") or None)
    profile = _json(inputs.get("profile"))
    if not profile:
        return None
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    try:
        found = botocore.session.Session(profile=str(profile)).get_credentials()
    except ProfileNotFound:
        found = None
    if found is None:
        raise EngineError(
            f"the provider {urn} names the AWS profile {profile!r}, which has no credentials on "
            "this machine; add it to ~/.aws or drop `profile`. Nothing was changed.",
            urn=urn,
        )
    return found


# `assumeRoles` entry key, in Terraform's spelling -> STS AssumeRole parameter.
_ASSUME_ROLE_KEYS = {
    "role_arn": "RoleArn",
    "session_name": "RoleSessionName",
    "external_id": "ExternalId",
    "policy": "Policy",
    "source_identity": "SourceIdentity",
    "transitive_tag_keys": "TransitiveTagKeys",
}


def _terraform_key(key: str) -> str:
    """`roleArn` -> `role_arn`; `role_arn` stays. The bridge maps a provider input's keys to
    Terraform's this way (pulumi-terraform-bridge `PulumiToTerraformName`), so a program may
    write either: aws-py-assume-role passes a plain dict with `role_arn` and `externalId`."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def assume_role_requests(urn: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The STS AssumeRole parameters of the provider's `assumeRoles`, in chaining order.

    An entry without a role ARN assumes nothing, as in aws-sdk-go-base. Raises
    EngineError for `assumeRoleWithWebIdentity` (the embedded cloud issues no
    identity tokens) and for a `duration` that is not a Go duration.
    """
    if _json(inputs.get("assumeRoleWithWebIdentity")):
        raise EngineError(
            f"the provider {urn} assumes a role with a web identity, which the embedded engine "
            "cannot do; nothing was changed. Use --engine pulumi.",
            urn=urn,
        )
    declared = _json(inputs.get("assumeRoles")) or []
    requests = []
    for raw in declared if isinstance(declared, list) else [declared]:
        entry = {_terraform_key(str(k)): v for k, v in (raw or {}).items()}
        if not entry.get("role_arn"):
            continue
        request = {
            parameter: entry[key]
            for key, parameter in _ASSUME_ROLE_KEYS.items()
            if entry.get(key) not in (None, "", [])
        }
        request.setdefault("RoleSessionName", f"rollback-embedded-{uuid.uuid4().hex[:12]}")
        if entry.get("duration"):
            try:
                request["DurationSeconds"] = int(duration_seconds(str(entry["duration"])))
            except UsageError as exc:
                raise EngineError(
                    f"the provider {urn} has an assumeRoles duration {entry['duration']!r} "
                    "that is not a duration such as 1h or 15m; nothing was changed.",
                    urn=urn,
                ) from exc
        if entry.get("policy_arns"):
            request["PolicyArns"] = [{"arn": str(arn)} for arn in entry["policy_arns"]]
        if entry.get("tags"):
            request["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in entry["tags"].items()]
        requests.append(request)
    return requests


def _assumed(
    base: Clients,
    region: str,
    sts_endpoint: str | None,
    requests: list[dict[str, Any]],
    source: Any = None,
) -> Any:
    """Credentials from assuming `requests` in turn, each with the one before (the first with
    `source`, else the engine's own); STS is asked on first use and again before they expire
    (botocore's assume-role fetcher)."""
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    def sts_client(service: str, **credentials: Any) -> Any:
        # Through the engine's own session: its endpoint, retries and event hooks.
        return base.session.client(
            service,
            region_name=region,
            endpoint_url=sts_endpoint or base.endpoint_url,
            **credentials,
        )

    credentials = source or base.session.get_credentials()
    for request in requests:
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts_client,
            source_credentials=credentials,
            role_arn=request["RoleArn"],
            extra_args={k: v for k, v in request.items() if k != "RoleArn"},
        )
        credentials = DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
    return credentials
