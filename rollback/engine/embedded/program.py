"""What a Pulumi program declared, as the embedded engine records it (no pulumi import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rollback.engine.embedded.secrets import is_secret, wrap_secret
from rollback.errors import EngineError

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Registration:
    """One RegisterResource request, whole.

    `inputs` are as the SDK sent them: camelCase keys, numbers as floats,
    secrets wrapped (`secrets.is_secret`); in a preview, unknown values are
    the SDK's unknown sentinel string.
    """

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, tuple[str, ...]]
    provider: str
    inputs: dict[str, Any]
    additional_secret_outputs: tuple[str, ...] = ()
    delete_before_replace: bool = False
    # True when the program set delete_before_replace (either way); else the provider decides.
    delete_before_replace_defined: bool = False
    protect: bool = False
    # Resource options, as the SDK sent them (property paths in Pulumi's syntax, camelCase).
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    retain_on_delete: bool = False
    aliases: tuple[str, ...] = ()  # full URNs the resource may have had before
    import_id: str = ""
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # create/update/delete -> "5m"


@dataclass(frozen=True)
class Declaration:
    """A resource as its constructor declared it, before any of its inputs resolved.

    `urn` is computed from the parent chain as Pulumi names it; `aliases` are
    full URNs, and `aliases_known` is False when one could not be worked out
    without running the program further (an alias naming an Output).
    """

    urn: str
    type: str
    name: str
    custom: bool
    read: bool  # `.get` or a StackReference: read from the cloud, never applied
    aliases: tuple[str, ...] = ()
    aliases_known: bool = True


@dataclass(frozen=True)
class RegisteredResource:
    """A registration and what the handler answered: physical id and outputs (secrets wrapped)."""

    registration: Registration
    id: str
    outputs: dict[str, Any]


@dataclass(frozen=True)
class ProgramRun:
    """Everything one run of a program registered, in registration order, and its exports."""

    project: str
    stack: str
    stack_urn: str
    resources: tuple[RegisteredResource, ...]
    exports: dict[str, Any] = field(default_factory=dict)
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def by_urn(self) -> dict[str, RegisteredResource]:
        return {r.registration.urn: r for r in self.resources}


class ResourceHandler(Protocol):
    """Makes one custom resource real (or pretends to, in a preview): returns (id, outputs).

    Called once per registered custom resource, possibly from several threads.
    """

    def __call__(self, registration: Registration) -> tuple[str, dict[str, Any]]: ...


def pulumi_urn(stack: str, project: str, parent_urn: str, type_: str, name: str) -> str:
    """The URN Pulumi gives a resource: the parent's type chain, minus the root stack, then the type.

    `urn:pulumi:dev::webapp::aws:s3/bucket:Bucket::artifacts` for a top-level
    bucket; `...::my:web:Site$aws:s3/bucket:Bucket::site` under a component.
    """
    qualified = type_
    if parent_urn:
        parent_type = parent_urn.split("::")[2]
        if parent_type != STACK_TYPE:
            qualified = f"{parent_type}${type_}"
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def urn_type(urn: str) -> str:
    """The resource's own type token (last element of the URN's type chain)."""
    return urn.split("::")[2].split("$")[-1]


def secret_outputs(registration: Registration, outputs: dict[str, Any]) -> dict[str, Any]:
    """Keep secret what was secret: outputs of secret inputs and `additionalSecretOutputs`."""
    secret_keys = set(registration.additional_secret_outputs)
    secret_keys.update(k for k, v in registration.inputs.items() if is_secret(v))
    return {k: wrap_secret(v) if k in secret_keys else v for k, v in outputs.items()}


def refuse_read(type_: str, name: str) -> EngineError:
    """The refusal of a `.get` (a read of an existing resource), which the embedded engine cannot do."""
    return EngineError(
        f"the program reads the existing resource {type_} {name!r} (a `.get`), which "
        "the embedded engine does not support; use --engine pulumi.",
        type=type_,
    )


class InvokeHandler(Protocol):
    """Answers a program's invokes (data sources): `supports(token)`, then `(token, args) -> result`.

    In a preview, a function it does not support goes to `unanswered`, which
    records it and answers empty, so the preview can name every unsupported
    function and type at once.
    """

    def supports(self, token: str) -> bool: ...

    def __call__(self, token: str, args: dict[str, Any]) -> dict[str, Any]: ...

    def unanswered(self, token: str) -> dict[str, Any]: ...
