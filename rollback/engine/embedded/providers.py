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
cloud): the embedded engine never reaches another cloud.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollback.aws.endpoint import is_loopback_url
from rollback.aws.session import Clients
from rollback.engine.embedded.checkpoint import ResourceState
from rollback.errors import EngineError

if TYPE_CHECKING:
    import boto3

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
    """Clients with an endpoint per service (an explicit provider's `endpoints`)."""

    endpoints: dict[str, str] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": self.max_attempts})
            self._cache[service] = self.session.client(
                service, endpoint_url=self.endpoints.get(service, self.endpoint_url), config=config
            )
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
    """Clients for an explicit aws provider: same credentials, its region and loopback endpoints."""
    endpoints = endpoints_of(urn, inputs)
    region = str(_json(inputs.get("region")) or base.session.region_name or "us-east-1")
    return EndpointClients(
        session=_session_like(base.session, region),
        endpoint_url=base.endpoint_url,
        max_attempts=base.max_attempts,
        endpoints=endpoints,
    )


def _session_like(session: boto3.Session, region: str) -> boto3.Session:
    import boto3

    credentials = session.get_credentials()
    if credentials is None:
        return boto3.Session(region_name=region)
    frozen = credentials.get_frozen_credentials()
    return boto3.Session(
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
        region_name=region,
    )
