"""The resource monitor the embedded engine gives the Pulumi SDK in place of the engine's.

It subclasses the SDK's `MockMonitor` so the SDK's own runtime (serialization,
secrets, dependency tracking) runs unchanged, and overrides what a mock gets
wrong for a real deployment: URNs in Pulumi's form, the whole registration
request kept, component and stack outputs captured, and each custom resource
handed to a callback that makes it real (or, in a preview, pretends to).

Imports pulumi at module level: import this module only when a program runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _sync_await

from rollback.engine.embedded.assets import plain_archive, plain_asset
from rollback.engine.embedded.program import (
    STACK_TYPE,
    Declaration,
    InvokeHandler,
    RegisteredResource,
    Registration,
    ResourceHandler,
    pulumi_urn,
    refuse_read,
    secret_outputs,
)
from rollback.errors import EngineError

logger = logging.getLogger(__name__)

# Resource references are turned off so the SDK sends a resource passed as an
# input as its id (custom) or URN (component): plain values for the appliers.
_UNSUPPORTED_FEATURES = {"outputValues", "resourceReferences", "aliasSpecs"}


STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"


class StackReferenceReader(Protocol):
    """Resolves a StackReference: (urn, logical name, stack name, parent) -> its outputs."""

    def __call__(self, urn: str, name: str, stack_name: str, parent: str) -> dict[str, Any]: ...


class RefusingMocks(Mocks):
    """Invokes (data sources) and reads of existing resources are not supported by the embedded engine."""

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise EngineError(
            f"the program calls the function {args.token}, which the embedded engine does not "
            "support; use --engine pulumi.",
            function=args.token,
        )

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        raise refuse_read(args.typ, args.name)


class AnsweringMocks(RefusingMocks):
    """Answers the invokes `invoke` supports (rollback.engine.embedded.invokes); refuses the rest."""

    def __init__(self, invoke: InvokeHandler, deferring: Callable[[], bool] | None = None) -> None:
        self._invoke = invoke
        self._deferring = deferring

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        from pulumi.runtime.settings import is_dry_run

        if not self._invoke.supports(args.token):
            # A preview, or an up whose changes have not started: answer empty and
            # name the function with every other refusal once the program's code ran.
            if is_dry_run() or (self._deferring is not None and self._deferring()):
                return self._invoke.unanswered(args.token), []
            return super().call(args)
        return self._invoke(args.token, dict(args.args)), []


class LoopPool:
    """Event loops lent to the RPC threads while the SDK (de)serializes values in them.

    The SDK's serialization needs a current event loop in the calling thread.
    A registration waits for the gate in its RPC thread (gate.py), so there
    may be a thread per resource: the loops (each holds file descriptors) are
    lent for the moment they are used, not owned by every thread, and closed
    by the runner when the run ends (left to the garbage collector, a loop can
    fail to close with "Invalid file descriptor: -1" on stderr).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[asyncio.AbstractEventLoop] = []
        self._made: list[asyncio.AbstractEventLoop] = []

    @contextlib.contextmanager
    def lent(self) -> Iterator[None]:
        with self._lock:
            loop = self._free.pop() if self._free else None
        if loop is None:
            loop = asyncio.new_event_loop()
            with self._lock:
                self._made.append(loop)
        asyncio.set_event_loop(loop)
        try:
            yield
        finally:
            asyncio.set_event_loop(None)
            with self._lock:
                self._free.append(loop)

    def close(self) -> None:
        with self._lock:
            made, self._made, self._free = self._made, [], []
        for loop in made:
            loop.close()


class EmbeddedMonitor(MockMonitor):
    """Sees each RegisterResource request whole and applies it through `handler`."""

    def __init__(
        self,
        handler: ResourceHandler,
        reader: StackReferenceReader | None = None,
        invoke: InvokeHandler | None = None,
        deferring: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(
            AnsweringMocks(invoke, deferring) if invoke is not None else RefusingMocks()
        )
        self._handler = handler
        self._reader = reader
        self._lock = threading.Lock()
        self.registered: list[RegisteredResource] = []
        self.component_outputs: dict[str, dict[str, Any]] = {}
        self.stack_urn = ""
        self.exports: dict[str, Any] = {}
        self.failure: BaseException | None = None
        self.loops = LoopPool()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        from pulumi.runtime.settings import get_project, get_stack

        return pulumi_urn(get_stack(), get_project(), parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK_TYPE:
            with self._lock:
                self.stack_urn = urn
            return resource_pb2.RegisterResourceResponse(urn=urn)
        with self.loops.lent():
            inputs = rpc.deserialize_properties(request.object, keep_internal=False)
        registration = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent,
            dependencies=tuple(request.dependencies),
            property_dependencies={
                key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
            },
            provider=request.provider,
            inputs=_plain_unknowns(inputs),
            additional_secret_outputs=tuple(request.additionalSecretOutputs),
            delete_before_replace=bool(request.deleteBeforeReplace),
            delete_before_replace_defined=bool(request.deleteBeforeReplaceDefined),
            protect=bool(request.protect),
            ignore_changes=tuple(request.ignoreChanges),
            replace_on_changes=tuple(request.replaceOnChanges),
            retain_on_delete=bool(request.retainOnDelete),
            aliases=tuple(request.aliasURNs) + tuple(a.urn for a in request.aliases if a.urn),
            import_id=request.importId,
            custom_timeouts={
                op: getattr(request.customTimeouts, op)
                for op in ("create", "update", "delete")
                if request.HasField("customTimeouts") and getattr(request.customTimeouts, op)
            },
        )
        resource_id, outputs = "", dict[str, Any]()
        if registration.custom:
            try:
                resource_id, outputs = self._handler(registration)
            except BaseException as exc:
                self._fail(exc)
                raise
            outputs = secret_outputs(registration, outputs)
        with self._lock:
            self.registered.append(RegisteredResource(registration, resource_id, outputs))
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=resource_id, object=self._serialized(outputs)
        )

    def _serialized(self, outputs: dict[str, Any]) -> struct_pb2.Struct:
        """The outputs on the wire, as the SDK's serialize_properties sends them.

        Appliers answer plain JSON (secrets already in their wire form), for
        which serializing awaits nothing: the Struct is then built directly
        (a sixth of the RPC thread's own work, and an event loop less).
        """
        plain = plain_struct(outputs)
        if plain is not None:
            return plain
        with self.loops.lent():
            proto: struct_pb2.Struct = _sync_await(rpc.serialize_properties(outputs, {}))
        return proto

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        with self.loops.lent():
            outputs = _plain_unknowns(
                rpc.deserialize_properties(request.outputs, keep_internal=False)
            )
        with self._lock:
            if request.urn == self.stack_urn:
                self.exports = dict(outputs)
            else:
                self.component_outputs[request.urn] = dict(outputs)
        return empty_pb2.Empty()

    def ReadResource(self, request: Any) -> Any:  # noqa: N802
        if request.type == STACK_REFERENCE_TYPE and self._reader is not None:
            urn = self.make_urn(request.parent, request.type, request.name)
            try:
                outputs = self._reader(
                    urn, request.name, request.id or request.name, request.parent
                )
            except BaseException as exc:
                self._fail(exc)
                raise
            return resource_pb2.ReadResourceResponse(urn=urn, properties=self._serialized(outputs))
        try:
            return self.mocks.new_resource(
                MockResourceArgs(
                    typ=request.type, name=request.name, inputs={}, resource_id=request.id
                )
            )
        except EngineError as exc:
            self._fail(exc)
            raise

    def Invoke(self, request: Any) -> Any:  # noqa: N802
        try:
            with self.loops.lent():
                return super().Invoke(request)  # type: ignore[no-untyped-call]
        except EngineError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: BaseException) -> None:
        """Remember the first failure: the SDK reports it only as a failed registration."""
        with self._lock:
            if self.failure is None:
                self.failure = exc

    def SupportsFeature(self, request: Any) -> Any:  # noqa: N802
        has_support = request.id not in _UNSUPPORTED_FEATURES
        return type("SupportsFeatureResponse", (object,), {"hasSupport": has_support})

    def GetDeploymentInfo(self, request: Any) -> Any:  # noqa: N802
        info = super().GetDeploymentInfo(request)  # type: ignore[no-untyped-call]
        # Without alias specs the SDK sends every alias as a full URN, its parents'
        # aliases multiplied in (sdk/python/lib/pulumi/runtime/resource.py, all_aliases).
        refused = {
            resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES,
            resource_pb2.RESOURCE_MONITOR_FEATURE_ALIAS_SPECS,
        }
        features = [f for f in info.supportedFeatures if f not in refused]
        return resource_pb2.DeploymentInfo(supportedFeatures=features)


class DeclarationRecorder:
    """A stack transformation that records each resource as its constructor runs (changes nothing).

    The SDK runs a stack's transformations synchronously in `Resource.__init__`
    (sdk/python/lib/pulumi/resource.py), before any input resolves: once the
    program's code has returned, every resource it constructed is known, also
    those whose registration still waits on another resource's outputs.
    """

    def __init__(self, project: str, stack: str) -> None:
        self._project = project
        self._stack = stack
        self._lock = threading.Lock()
        self._urns: dict[int, str] = {}  # id(resource) -> URN
        self._aliases: dict[int, tuple[str, ...] | None] = {}  # None: not known yet
        self.declarations: list[Declaration] = []

    def __call__(self, args: Any) -> None:
        from pulumi.resource import CustomResource

        opts = args.opts
        parent = opts.parent if opts is not None else None
        parent_urn = self._urns.get(id(parent), "") if parent is not None else ""
        urn = pulumi_urn(self._stack, self._project, parent_urn, args.type_, args.name)
        parent_aliases = self._aliases.get(id(parent), ()) if parent is not None else ()
        aliases = self._resolve_aliases(args, parent_urn, parent_aliases)
        custom = isinstance(args.resource, CustomResource)
        read = custom and opts is not None and (opts.id is not None or opts.urn is not None)
        with self._lock:
            self._urns[id(args.resource)] = urn
            self._aliases[id(args.resource)] = aliases
            self.declarations.append(
                Declaration(
                    urn=urn,
                    type=args.type_,
                    name=args.name,
                    custom=custom,
                    read=read or args.type_ == STACK_REFERENCE_TYPE,
                    aliases=aliases or (),
                    aliases_known=aliases is not None,
                )
            )

    def _resolve_aliases(
        self, args: Any, parent_urn: str, parent_aliases: tuple[str, ...] | None
    ) -> tuple[str, ...] | None:
        """Full URNs of the resource's aliases and of its parent's (as the SDK's all_aliases
        multiplies them in); None when one names a value not known yet."""
        if parent_aliases is None:
            return None
        found = [
            pulumi_urn(self._stack, self._project, alias, args.type_, args.name)
            for alias in parent_aliases
        ]
        for alias in (args.opts.aliases if args.opts is not None else None) or ():
            if isinstance(alias, str):
                found.append(alias)
                continue
            fields = {
                "name": args.name if alias.name is ... else alias.name,
                "type": args.type_ if alias.type_ is ... else alias.type_,
                "stack": self._stack if alias.stack is ... else alias.stack,
                "project": self._project if alias.project is ... else alias.project,
            }
            if alias.parent is ...:
                parent = parent_urn
            elif alias.parent is None:
                parent = ""
            elif isinstance(alias.parent, str):
                parent = alias.parent
            else:
                parent = self._urns.get(id(alias.parent), "\0")
            if parent == "\0" or not all(isinstance(v, str) for v in fields.values()):
                return None
            found.append(
                pulumi_urn(
                    fields["stack"], fields["project"], parent, fields["type"], fields["name"]
                )
            )
        return tuple(found)


def plain_struct(values: dict[str, Any]) -> struct_pb2.Struct | None:
    """`values` as a Struct when every value is plain JSON (str keys, str, number, bool, None,
    lists, dicts), else None. Top-level Nones are left out, as serialize_properties does."""
    if not all(isinstance(key, str) and _is_plain(value) for key, value in values.items()):
        return None
    struct = struct_pb2.Struct()
    struct.update({key: value for key, value in values.items() if value is not None})
    return struct


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return False


def _plain_unknowns(value: Any) -> Any:
    """Replace the SDK's Unknown objects (previews only) by the wire sentinel and assets by
    their wire objects, so values stay JSON."""
    from pulumi.output import Unknown

    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    asset = plain_asset(value) or plain_archive(value)
    if asset is not None:
        return asset
    if isinstance(value, dict):
        return {k: _plain_unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_unknowns(v) for v in value]
    return value
