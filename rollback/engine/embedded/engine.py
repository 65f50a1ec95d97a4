"""The `embedded` stack engine: a Pulumi program applied in-process with boto3.

`up` runs the program twice. First as a preview, with made-up outputs, to
learn every resource type: a type without an applier is refused before
anything changes. Then for real: each custom resource is compared with the
same URN in the previous checkpoint and created, left alone (no mutating
call), updated in place or replaced; what the program no longer declares is
deleted afterwards, dependents first; the checkpoint is written to the store
at `stacks/<project>/<stack>/checkpoint.json`. Should an AWS call fail half
way, the checkpoint still records what was done before the error is raised.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.engine import Change, StackConfig
from rollback.engine.embedded.checkpoint import (
    Deployment,
    ResourceState,
    build_checkpoint,
    default_provider_state,
    dependency_order,
    json_values,
    now_iso,
    provider_reference,
    read_deployment,
)
from rollback.engine.embedded.program import (
    InvokeHandler,
    ProgramRun,
    Registration,
    secret_outputs,
)
from rollback.engine.embedded.secrets import (
    SecretsKeyring,
    SymmetricCrypter,
    contains_secrets,
    mask,
    reveal,
)
from rollback.engine.embedded.stack_config import config_string
from rollback.errors import ConfigError, EngineError, NotFound
from rollback.models import Checkpoint

if TYPE_CHECKING:
    from rollback.aws.session import Clients
    from rollback.engine.embedded.resources import ResourceType
    from rollback.store import Store

logger = logging.getLogger(__name__)

# Inputs that fix a resource's physical name: a replacement must delete the
# old resource first, or the new one would collide with it.
_NAME_INPUTS = ("name", "bucket", "identifier")
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the SDK's wire sentinel for unknown values


def checkpoint_key(project: str, stack: str) -> str:
    return f"stacks/{project}/{stack}/checkpoint.json"


@dataclass
class _Apply:
    """The state of one apply pass: starts as the previous checkpoint, changes as resources are applied."""

    previous: dict[str, ResourceState]
    provider_ref: str
    now: str
    state: dict[str, ResourceState] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    # Old resources replaced create-before-delete: deleted after the program ran.
    replaced: dict[str, ResourceState] = field(default_factory=dict)


class EmbeddedEngine:
    """StackEngine that runs the program in-process and applies resources with boto3."""

    name = "embedded"

    def __init__(
        self,
        store: Store,
        clients: Clients,
        project: str,
        *,
        appliers: Mapping[str, ResourceType] | None = None,
    ) -> None:
        self.store = store
        self.clients = clients
        self.project = project
        self._appliers = dict(appliers) if appliers is not None else None
        self._keyring = SecretsKeyring()
        # Resources are applied one at a time: a boto3 session is not thread-safe
        # and a deterministic order makes failures reproducible.
        self._apply_lock = threading.Lock()
        self.last_changes: list[Change] = []

    # -- StackEngine -------------------------------------------------------

    def up(self, program_dir: Path, stack: str, config: StackConfig) -> Checkpoint:
        """Apply the program; return the new checkpoint, also stored as the stack's state.

        Raises EngineError naming unsupported resource types (nothing changed),
        a failing program, or a failing AWS call (checkpoint records progress).
        """
        previous = self._previous(stack)
        values, secret_keys = self._program_config(config)
        self._preview(program_dir, stack, values, secret_keys, previous)
        prior = previous.managed() if previous else {}
        components = {r.urn: r for r in (previous.resources if previous else ()) if not r.custom}
        provider = default_provider_state(
            self.project,
            stack,
            self._region(config),
            previous.default_provider() if previous else None,
            now_iso(),
        )
        work = _Apply(
            previous=prior,
            provider_ref=provider_reference(provider),
            now=now_iso(),
            state={**components, **prior},
        )
        try:
            run = self._run(
                program_dir, stack, values, secret_keys, False, lambda reg: self._apply(work, reg)
            )
        except BaseException:
            # Record what was applied before the failure; the exports stay the previous ones.
            exports = previous.exports() if previous else {}
            self._write(stack, config, previous, provider, exports, list(work.state.values()))
            raise
        declared = run.by_urn()
        final: list[ResourceState] = []
        for registered in run.resources:
            reg = registered.registration
            if reg.custom:
                final.append(work.state[reg.urn])
            else:
                final.append(self._component_state(reg, run, components.get(reg.urn), work.now))
        doomed = {urn: old for urn, old in prior.items() if urn not in declared}
        doomed.update(work.replaced)
        try:
            for old in reversed(dependency_order(list(prior.values()))):
                if old.urn in doomed:
                    self._delete(doomed[old.urn])
                    if old.urn not in declared:
                        work.changes.append(Change(old.urn, old.type, "delete"))
                        work.state.pop(old.urn, None)
        except BaseException:
            self._write(stack, config, previous, provider, run.exports, list(work.state.values()))
            raise
        self.last_changes = list(work.changes)
        return self._write(stack, config, previous, provider, run.exports, final)

    def preview(self, program_dir: Path, stack: str, config: StackConfig) -> list[Change]:
        """The changes `up` would make, from a run with made-up outputs; changes nothing.

        Raises EngineError naming the resource types the embedded engine cannot apply.
        """
        values, secret_keys = self._program_config(config)
        return self._preview(program_dir, stack, values, secret_keys, self._previous(stack))

    def export(self, stack: str) -> Checkpoint:
        """The stack's current checkpoint; raises NotFound when the stack was never brought up."""
        key = checkpoint_key(self.project, stack)
        try:
            raw = self.store.get_doc(key)
        except NotFound as exc:
            raise NotFound(
                f"stack {self.project}/{stack} has no state in {self.store.url}; run `rollback stack up` first.",
                stack=f"{self.project}/{stack}",
            ) from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise EngineError(f"the checkpoint {key} is not JSON; check the store.") from exc
        return Checkpoint.from_dict(data)

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's exports; secrets are shown as "[secret]"."""
        masked: dict[str, Any] = mask(self.export(stack).outputs())
        return masked

    # -- drift -------------------------------------------------------------

    def read_live(self, checkpoint: Checkpoint) -> dict[str, dict[str, Any] | None]:
        """URN -> live outputs read from the cloud (None when the resource is gone). Reads only."""
        deployment = read_deployment(checkpoint, self._keyring.crypter)
        appliers = self.appliers()
        live: dict[str, dict[str, Any] | None] = {}
        for urn, res in deployment.managed().items():
            applier = appliers.get(res.type)
            if applier is None:
                raise EngineError(
                    f"the checkpoint holds a {res.type}, which the embedded engine cannot read; "
                    "use --engine pulumi.",
                    type=res.type,
                )
            live[urn] = applier.read(res.id, reveal(res.inputs))
        return live

    def appliers(self) -> dict[str, ResourceType]:
        if self._appliers is None:
            from rollback.engine.embedded.resources import resource_types

            self._appliers = resource_types(self.clients)
        return self._appliers

    def invokes(self) -> InvokeHandler:
        """What answers the program's data sources (reads of the same cloud)."""
        from rollback.engine.embedded.invokes import Invokes

        return Invokes(self.clients)

    # -- passes ------------------------------------------------------------

    def _preview(
        self,
        program_dir: Path,
        stack: str,
        values: dict[str, str],
        secret_keys: list[str],
        previous: Deployment | None,
    ) -> list[Change]:
        prior = previous.managed() if previous else {}
        appliers = self.appliers()
        changes: list[Change] = []
        lock = threading.Lock()

        def pretend(reg: Registration) -> tuple[str, dict[str, Any]]:
            old = prior.get(reg.urn)
            applier = appliers.get(reg.type)
            replace_on = applier.replace_on if applier is not None else frozenset()
            op, diff = _operation(reg, old, replace_on)
            with lock:
                changes.append(Change(reg.urn, reg.type, op, diff))
            if op == "same" and old is not None:
                return old.id, old.outputs
            # Inputs echoed; computed outputs stay unknown, as in a Pulumi preview.
            return (old.id if op == "update" and old is not None else ""), dict(reg.inputs)

        invokes = self.invokes()
        try:
            run = self._run(program_dir, stack, values, secret_keys, True, pretend, invokes)
        except EngineError as exc:
            # An unanswered function's empty result may well break the program:
            # the function is the cause to name.
            refused = sorted(getattr(invokes, "refused", ()))
            if refused:
                raise _refusal([], refused) from exc
            raise
        declared = run.by_urn()
        unsupported = sorted(
            {r.registration.type for r in run.resources if r.registration.custom} - set(appliers)
        )
        undeletable = sorted(
            {r.type for urn, r in prior.items() if urn not in declared} - set(appliers)
        )
        refused = sorted(getattr(invokes, "refused", ()))
        if unsupported or undeletable or refused:
            raise _refusal(unsupported + undeletable, refused)
        for old in reversed(dependency_order(list(prior.values()))):
            if old.urn not in declared:
                changes.append(Change(old.urn, old.type, "delete"))
        return changes

    def _apply(self, work: _Apply, reg: Registration) -> tuple[str, dict[str, Any]]:
        """Make one registered resource real; the monitor calls this from its worker threads."""
        with self._apply_lock:
            applier = self.appliers()[reg.type]
            old = work.previous.get(reg.urn)
            if old is not None and old.type != reg.type:
                work.replaced[old.urn] = old
                old = None
            op, diff = _operation(reg, old, applier.replace_on)
            inputs = reveal(reg.inputs)
            created = work.now
            if old is None:
                resource_id, outputs = applier.create(reg.name, inputs)
            elif op == "same":
                live = applier.read(old.id, reveal(old.inputs))
                drift = drifted(old.inputs, live) if live is not None else ()
                if live is None:
                    logger.warning("%s was deleted outside the stack; creating it again", reg.urn)
                    op = "create"
                    resource_id, outputs = applier.create(reg.name, inputs)
                elif drift:
                    # Changed behind the stack's back: put the declared values back,
                    # so a re-apply converges on the program (a rollback must).
                    logger.warning("%s drifted (%s); updating it back", reg.urn, ", ".join(drift))
                    op, diff = "update", drift
                    as_found = {**reveal(old.inputs), **{k: live[k] for k in drift}}
                    outputs = applier.update(old.id, as_found, inputs)
                    resource_id, created = old.id, old.created or work.now
                else:
                    resource_id, outputs, created = old.id, old.outputs, old.created or work.now
            elif op == "update":
                outputs = applier.update(old.id, reveal(old.inputs), inputs)
                resource_id, created = old.id, old.created or work.now
            else:
                if reg.delete_before_replace or _has_fixed_name(reg):
                    applier.delete(old.id, reveal(old.inputs))
                    work.state.pop(old.urn, None)
                else:
                    work.replaced[old.urn] = old
                resource_id, outputs = applier.create(reg.name, inputs)
            outputs = secret_outputs(reg, outputs)
            work.state[reg.urn] = ResourceState(
                urn=reg.urn,
                type=reg.type,
                custom=True,
                id=resource_id,
                inputs=dict(reg.inputs),
                outputs=dict(outputs),
                parent=reg.parent,
                dependencies=reg.dependencies,
                property_dependencies=dict(reg.property_dependencies),
                provider=reg.provider or work.provider_ref,
                created=created,
                modified=work.now if op != "same" else (old.modified if old else work.now),
            )
            work.changes.append(Change(reg.urn, reg.type, op, diff))
            # Progress for people: what changed, not the unchanged majority.
            logger.log(logging.DEBUG if op == "same" else logging.INFO, "%s %s", op, reg.urn)
            return resource_id, outputs

    def _delete(self, old: ResourceState) -> None:
        with self._apply_lock:
            logger.info("delete %s", old.urn)
            self.appliers()[old.type].delete(old.id, reveal(old.inputs))

    def _run(
        self,
        program_dir: Path,
        stack: str,
        values: dict[str, str],
        secret_keys: list[str],
        preview: bool,
        handler: Any,
        invokes: InvokeHandler | None = None,
    ) -> ProgramRun:
        from rollback.engine.embedded.runner import run_program

        return run_program(
            program_dir,
            project=self.project,
            stack=stack,
            config=values,
            secret_keys=secret_keys,
            preview=preview,
            handler=handler,
            invoke=invokes if invokes is not None else self.invokes(),
        )

    # -- state -------------------------------------------------------------

    def _previous(self, stack: str) -> Deployment | None:
        if not self.store.has_doc(checkpoint_key(self.project, stack)):
            return None
        return read_deployment(self.export(stack), self._keyring.crypter)

    def _program_config(self, config: StackConfig) -> tuple[dict[str, str], list[str]]:
        """Config as the SDK takes it: `project:key` -> string, secrets decrypted, and the secret keys."""
        values = {key: config_string(value) for key, value in config.values.items()}
        if config.secrets:
            if not config.encryption_salt:
                raise ConfigError("the stack config has secure values but no encryptionsalt.")
            crypter = self._keyring.crypter(config.encryption_salt)
            for key, ciphertext in config.secrets.items():
                values[key] = crypter.decrypt(ciphertext)
        return values, sorted(config.secrets)

    def _region(self, config: StackConfig) -> str:
        region = config.values.get("aws:region") or self.clients.session.region_name
        return str(region or "us-east-1")

    def _component_state(
        self, reg: Registration, run: ProgramRun, old: ResourceState | None, now: str
    ) -> ResourceState:
        return ResourceState(
            urn=reg.urn,
            type=reg.type,
            custom=False,
            inputs=dict(reg.inputs),
            outputs=dict(run.component_outputs.get(reg.urn, {})),
            parent=reg.parent,
            dependencies=reg.dependencies,
            property_dependencies=dict(reg.property_dependencies),
            created=old.created if old is not None and old.created else now,
            modified=now,
        )

    def _write(
        self,
        stack: str,
        config: StackConfig,
        previous: Deployment | None,
        provider: ResourceState,
        exports: dict[str, Any],
        resources: list[ResourceState],
    ) -> Checkpoint:
        has_secrets = contains_secrets(exports) or any(
            contains_secrets(r.inputs) or contains_secrets(r.outputs) for r in resources
        )
        state, crypter = self._secrets_for_write(config, previous, has_secrets)
        checkpoint = build_checkpoint(
            project=self.project,
            stack=stack,
            exports=exports,
            provider=provider,
            resources=resources,
            secrets_state=state,
            crypter=crypter,
            now=now_iso(),
        )
        body = json.dumps(checkpoint.to_dict(), indent=2, default=str).encode("utf-8")
        self.store.put_doc(checkpoint_key(self.project, stack), body)
        return checkpoint

    def _secrets_for_write(
        self, config: StackConfig, previous: Deployment | None, needs_crypter: bool
    ) -> tuple[str | None, SymmetricCrypter | None]:
        """The secrets state to record (the stack's encryptionsalt, else the previous one, else new)."""
        state = config.encryption_salt or (previous.secrets_state if previous else None)
        if state is None:
            try:
                return self._keyring.new_state()
            except ConfigError:
                if needs_crypter:
                    raise
                return None, None
        return state, self._keyring.crypter(state) if needs_crypter else None


def normalised(value: Any) -> Any:
    """A value as compared between runs: secrets unwrapped, integral floats as ints, no null keys."""
    plain = json_values(reveal(value))
    return _drop_nulls(plain)


def drifted(declared: dict[str, Any], live: dict[str, Any]) -> tuple[str, ...]:
    """Declared input names whose live value differs. Secrets are skipped: AWS never returns them."""
    return tuple(
        sorted(
            key
            for key, value in declared.items()
            if key in live
            and not key.startswith("__")
            and not contains_secrets(value)
            and normalised(value) != normalised(live[key])
        )
    )


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _operation(
    reg: Registration, old: ResourceState | None, replace_on: frozenset[str]
) -> tuple[str, tuple[str, ...]]:
    """create | same | update | replace, and the input names that differ."""
    if old is None:
        return "create", ()
    news, olds = normalised(reg.inputs), normalised(old.inputs)
    diff = tuple(sorted(k for k in set(news) | set(olds) if news.get(k) != olds.get(k)))
    if not diff:
        return "same", ()
    if any(k in replace_on for k in diff):
        return "replace", diff
    return "update", diff


def _refusal(types: list[str], functions: list[str]) -> EngineError:
    """One sentence naming every resource type and function the embedded engine cannot handle."""
    parts = []
    if types:
        parts.append(f"cannot apply resource type(s) {', '.join(types)}")
    if functions:
        parts.append(f"cannot answer function(s) {', '.join(functions)}")
    return EngineError(
        f"the embedded engine {' and '.join(parts)}; nothing was changed. "
        "Use --engine pulumi (the Pulumi CLI) for this program.",
        types=types,
        functions=functions,
    )


def _has_fixed_name(reg: Registration) -> bool:
    return any(
        isinstance(reg.inputs.get(key), str) and reg.inputs.get(key) != _UNKNOWN
        for key in _NAME_INPUTS
    )
