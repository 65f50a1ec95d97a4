"""Pulumi's deployment format, version 3 (what `pulumi stack export` prints), for the embedded engine.

A deployment lists the stack resource (its outputs are the exports), the
default AWS provider `pulumi:providers:aws::default_<version>` the way the
Pulumi engine registers it, then every resource with its inputs, outputs,
parent, dependencies and a provider reference `<provider urn>::<provider id>`.
Dependencies come before their dependents, as Pulumi requires. Secrets are
written as Pulumi's envelope, `{sig: secret, "ciphertext": "v1:..."}`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rollback.engine.embedded.program import STACK_TYPE
from rollback.engine.embedded.secrets import SymmetricCrypter, contains_secrets, seal, unseal
from rollback.errors import ConfigError, IntegrityError
from rollback.models import Checkpoint

PROVIDER_PACKAGE = "aws"
PROVIDER_TYPE = f"pulumi:providers:{PROVIDER_PACKAGE}"


@dataclass(frozen=True)
class ResourceState:
    """One resource of a deployment; values are plain JSON with secrets wrapped (not encrypted)."""

    urn: str
    type: str
    custom: bool
    id: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    provider: str = ""
    created: str = ""
    modified: str = ""
    # Resource options Pulumi keeps in state (sdk/go/common/apitype/core.go, ResourceV3).
    protect: bool = False
    retain_on_delete: bool = False
    import_id: str = ""
    aliases: tuple[str, ...] = ()
    custom_timeouts: dict[str, float] = field(default_factory=dict)
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    external: bool = False  # read, not managed (a StackReference): never changed or deleted

    def to_dict(self, crypter: SymmetricCrypter | None) -> dict[str, Any]:
        data: dict[str, Any] = {"urn": self.urn, "custom": self.custom, "type": self.type}
        if self.custom:
            data["id"] = self.id
        if self.inputs:
            data["inputs"] = _sealed(json_values(self.inputs), crypter)
        if self.outputs:
            data["outputs"] = _sealed(json_values(self.outputs), crypter)
        if self.parent:
            data["parent"] = self.parent
        if self.dependencies:
            data["dependencies"] = list(self.dependencies)
        if self.property_dependencies:
            data["propertyDependencies"] = {
                k: list(v) for k, v in self.property_dependencies.items()
            }
        if self.provider:
            data["provider"] = self.provider
        if self.protect:
            data["protect"] = True
        if self.external:
            data["external"] = True
        if self.aliases:
            data["aliases"] = list(self.aliases)
        if self.custom_timeouts:
            data["customTimeouts"] = dict(self.custom_timeouts)
        if self.import_id:
            data["importID"] = self.import_id
        if self.retain_on_delete:
            data["retainOnDelete"] = True
        if self.created:
            data["created"] = self.created
        if self.modified:
            data["modified"] = self.modified
        if self.ignore_changes:
            data["ignoreChanges"] = list(self.ignore_changes)
        if self.replace_on_changes:
            data["replaceOnChanges"] = list(self.replace_on_changes)
        return data

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], crypter: Callable[[], SymmetricCrypter]
    ) -> ResourceState:
        """Read one resource; `crypter` is called only when the resource holds secrets."""
        try:
            inputs = dict(data.get("inputs") or {})
            outputs = dict(data.get("outputs") or {})
            if contains_secrets(inputs) or contains_secrets(outputs):
                key = crypter()
                inputs, outputs = unseal(inputs, key), unseal(outputs, key)
            return cls(
                urn=str(data["urn"]),
                type=str(data["type"]),
                custom=bool(data.get("custom", False)),
                id=str(data.get("id") or ""),
                inputs=inputs,
                outputs=outputs,
                parent=str(data.get("parent") or ""),
                dependencies=tuple(data.get("dependencies") or ()),
                property_dependencies={
                    k: tuple(v) for k, v in (data.get("propertyDependencies") or {}).items()
                },
                provider=str(data.get("provider") or ""),
                created=str(data.get("created") or ""),
                modified=str(data.get("modified") or ""),
                protect=bool(data.get("protect", False)),
                retain_on_delete=bool(data.get("retainOnDelete", False)),
                import_id=str(data.get("importID") or ""),
                aliases=tuple(data.get("aliases") or ()),
                custom_timeouts={
                    k: float(v) for k, v in (data.get("customTimeouts") or {}).items()
                },
                ignore_changes=tuple(data.get("ignoreChanges") or ()),
                replace_on_changes=tuple(data.get("replaceOnChanges") or ()),
                external=bool(data.get("external", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"a checkpoint resource is malformed ({exc}); check the store."
            ) from exc


@dataclass(frozen=True)
class Deployment:
    """A deployment read back: its resources (secrets decrypted, wrapped) and secrets state."""

    resources: tuple[ResourceState, ...]
    secrets_state: str | None

    def managed(self) -> dict[str, ResourceState]:
        """The custom resources an applier manages (not the stack, components or providers), by URN."""
        return {
            r.urn: r
            for r in self.resources
            if r.custom and not r.external and not r.type.startswith("pulumi:providers:")
        }

    def exports(self) -> dict[str, Any]:
        """The stack resource's outputs (secrets wrapped)."""
        for res in self.resources:
            if res.type == STACK_TYPE:
                return dict(res.outputs)
        return {}

    def providers(self) -> dict[str, ResourceState]:
        """Every provider resource (default and explicit), by URN."""
        return {r.urn: r for r in self.resources if r.type.startswith("pulumi:providers:")}

    def default_provider(self) -> ResourceState | None:
        for res in self.resources:
            if res.type == PROVIDER_TYPE and res.urn.split("::")[-1].startswith("default"):
                return res
        return None


def secrets_state_of(checkpoint: Checkpoint) -> str | None:
    provider = checkpoint.deployment.get("secrets_providers") or {}
    if provider.get("type") != "passphrase":
        return None
    salt = (provider.get("state") or {}).get("salt")
    return str(salt) if salt else None


def read_deployment(
    checkpoint: Checkpoint, crypter: Callable[[str], SymmetricCrypter]
) -> Deployment:
    """Parse a checkpoint; `crypter(secrets_state)` is called only if a resource holds secrets."""
    state = secrets_state_of(checkpoint)

    def key() -> SymmetricCrypter:
        if state is None:
            raise ConfigError(
                "the checkpoint holds secrets but no passphrase secrets provider; "
                "it was not written by a passphrase stack."
            )
        return crypter(state)

    resources = tuple(ResourceState.from_dict(r, key) for r in checkpoint.resources)
    return Deployment(resources=resources, secrets_state=state)


def default_provider_state(
    project: str, stack: str, region: str, previous: ResourceState | None, now: str
) -> ResourceState:
    """The default AWS provider resource, `default_<pulumi-aws version with underscores>`."""
    version = provider_version()
    urn = f"urn:pulumi:{stack}::{project}::{PROVIDER_TYPE}::default_{version.replace('.', '_')}"
    inputs = {
        "region": region,
        "skipCredentialsValidation": "false",
        "skipRegionValidation": "true",
        "version": version,
    }
    if previous is not None and previous.urn == urn and previous.inputs == inputs:
        return previous
    return ResourceState(
        urn=urn,
        type=PROVIDER_TYPE,
        custom=True,
        id=previous.id if previous is not None and previous.urn == urn else str(uuid.uuid4()),
        inputs=inputs,
        outputs=dict(inputs),
        created=previous.created if previous is not None and previous.created else now,
        modified=now,
    )


def provider_reference(provider: ResourceState) -> str:
    return f"{provider.urn}::{provider.id}"


def build_checkpoint(
    *,
    project: str,
    stack: str,
    exports: dict[str, Any],
    provider: ResourceState,
    resources: Iterable[ResourceState],
    secrets_state: str | None,
    crypter: SymmetricCrypter | None,
    now: str,
    pending: Iterable[dict[str, Any]] = (),
) -> Checkpoint:
    """Assemble the deployment; raises ConfigError when a value is secret and there is no crypter."""
    stack_state = ResourceState(
        urn=f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}",
        type=STACK_TYPE,
        custom=False,
        outputs=dict(exports),
        created=now,
        modified=now,
    )
    ordered = dependency_order([stack_state, provider, *resources])
    version = sdk_version()
    deployment: dict[str, Any] = {
        "manifest": {
            "time": now,
            # Pulumi's magic is the hex sha256 of the version string.
            "magic": hashlib.sha256(version.encode()).hexdigest(),
            "version": version,
        },
    }
    if secrets_state:
        deployment["secrets_providers"] = {"type": "passphrase", "state": {"salt": secrets_state}}
    deployment["resources"] = [r.to_dict(crypter) for r in ordered]
    operations = [
        {"resource": op["resource"].to_dict(crypter), "type": op["type"]} for op in pending
    ]
    if operations:
        deployment["pending_operations"] = operations
    return Checkpoint(deployment=deployment)


def dependency_order(resources: list[ResourceState]) -> list[ResourceState]:
    """Stable topological order: parents, providers and dependencies before dependents."""
    by_urn = {r.urn: r for r in resources}
    placed: set[str] = set()
    ordered: list[ResourceState] = []

    def visit(res: ResourceState, trail: frozenset[str]) -> None:
        if res.urn in placed or res.urn in trail:
            return
        for dep in _prerequisites(res):
            if dep in by_urn:
                visit(by_urn[dep], trail | {res.urn})
        placed.add(res.urn)
        ordered.append(res)

    for res in resources:
        visit(res, frozenset())
    return ordered


def _prerequisites(res: ResourceState) -> list[str]:
    deps = [res.parent] if res.parent else []
    if res.provider:
        deps.append(res.provider.rsplit("::", 1)[0])
    deps.extend(res.dependencies)
    for urns in res.property_dependencies.values():
        deps.extend(urns)
    return deps


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_values(value: Any) -> Any:
    """Integral floats as ints, as Pulumi writes numbers; the SDK sends every number as a float."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: json_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_values(v) for v in value]
    return value


def provider_version() -> str:
    from importlib.metadata import version

    return version("pulumi_aws")


def sdk_version() -> str:
    from importlib.metadata import version

    return f"v{version('pulumi')}"


def _sealed(value: dict[str, Any], crypter: SymmetricCrypter | None) -> dict[str, Any]:
    if not contains_secrets(value):
        return value
    if crypter is None:
        raise ConfigError(
            "the stack has secret values: set PULUMI_CONFIG_PASSPHRASE to encrypt them."
        )
    sealed: dict[str, Any] = seal(value, crypter)
    return sealed
