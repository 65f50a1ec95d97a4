"""The `embedded` stack engine: a Pulumi program applied in-process with boto3.

`up` runs the program once, as a Pulumi update does. Registrations that
arrive while the program's own code runs are decided at once and held
(rollback/engine/embedded/gate.py); when that code has returned, every
resource it constructed is known, and a type without an applier (or a
function nobody answers, a `.get`, a protected resource the program dropped)
is refused before anything changes. Then the held steps, and those that
arrive later, run in parallel, each waiting only on what it depends on: each
custom resource is compared with the same URN in the previous checkpoint and
created, left alone (no mutating call), updated in place or replaced; what
the program no longer declares is deleted afterwards, dependents first; the
checkpoint is written to the store at `stacks/<project>/<stack>/checkpoint.json`.
Should an AWS call fail half way, the checkpoint still records what was done
(and the failed create as a pending operation) before the error is raised.
`preview` runs the program alone, with made-up outputs, and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.engine import Change, StackConfig
from rollback.engine.embedded import options, paths, randoms
from rollback.engine.embedded.checking import checked_inputs
from rollback.engine.embedded.checkpoint import (
    Deployment,
    ResourceState,
    build_checkpoint,
    default_provider_state,
    dependency_order,
    now_iso,
    provider_reference,
    read_deployment,
)
from rollback.engine.embedded.claims import Listings, ensure_free
from rollback.engine.embedded.gate import ProgramGate, default_parallelism
from rollback.engine.embedded.program import (
    STACK_TYPE,
    Declaration,
    InvokeHandler,
    ProgramRun,
    Registration,
    refuse_read,
    secret_outputs,
)
from rollback.engine.embedded.providers import (
    BUILTIN,
    PROVIDER_PREFIX,
    default_provider_urn,
    endpoints_of,
    package_provider_state,
    package_version,
    provider_clients,
)
from rollback.engine.embedded.providers import (
    PACKAGES as _PACKAGES,
)
from rollback.engine.embedded.secrets import (
    SecretsKeyring,
    SymmetricCrypter,
    contains_secrets,
    mask,
    reveal,
)
from rollback.engine.embedded.stack_config import config_string
from rollback.errors import ConfigError, EngineError, NotFound, UsageError
from rollback.models import Checkpoint

if TYPE_CHECKING:
    from rollback.aws.session import Clients
    from rollback.engine.embedded.resources import ResourceType
    from rollback.engine.embedded.runner import AfterCode
    from rollback.store import Store

logger = logging.getLogger(__name__)

# Inputs that fix a resource's physical name: a replacement must delete the
# old resource first, or the new one would collide with it.
_NAME_INPUTS = ("name", "bucket", "identifier")
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the SDK's wire sentinel for unknown values
STACK_REFERENCE = "pulumi:pulumi:StackReference"


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
    # Old URN -> the new URN that took its state through an alias.
    claimed: dict[str, str] = field(default_factory=dict)
    # Operations that failed half-way: written as the checkpoint's pending_operations.
    pending: list[dict[str, Any]] = field(default_factory=list)
    # Provider resources by URN: explicit ones as registered (else as before), and the
    # default providers of packages other than aws, made when first used.
    providers: dict[str, ResourceState] = field(default_factory=dict)
    stack: str = ""
    # Resources read, not managed (StackReferences), by URN.
    reads: list[str] = field(default_factory=list)
    # URNs whose create the last run left pending: an existing resource of that name is theirs.
    unfinished: set[str] = field(default_factory=set)
    # Holds the cloud calls until the program's code has run and been checked; then bounds them.
    gate: ProgramGate = field(default_factory=lambda: ProgramGate(default_parallelism()))
    # Names taken in the cloud, listed once for the checks made before the gate opens.
    listings: Listings = field(default_factory=Listings)
    # URN -> the order its constructor ran in: the checkpoint's order, whatever finished first.
    declared_order: dict[str, int] = field(default_factory=dict)
    # Steps run on several threads: every field above changes under this lock only.
    lock: threading.RLock = field(default_factory=threading.RLock)


@dataclass(frozen=True)
class _Step:
    """One registration, decided: what `_execute` does in the cloud once the gate is open."""

    reg: Registration  # with the provider-checked inputs
    program: Registration  # as the program sent it (a replacement starts from these)
    applier: ResourceType
    old: ResourceState | None
    op: str  # create, same, update, replace, import
    diff: tuple[str, ...]
    declared: dict[str, Any]  # the inputs to record
    timeouts: dict[str, float]
    # Read before the gate opened: the old resource's live outputs (None: gone), for
    # same/update; for a create, that its name was found free.
    live: dict[str, Any] | None = None
    read: bool = False


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
        # Steps run in parallel (gate.py); the provider caches below are shared by them.
        # boto3 clients are thread-safe, and Clients builds them under its own lock.
        self._providers_lock = threading.RLock()
        self.last_changes: list[Change] = []
        self._provider_appliers: dict[str, dict[str, ResourceType]] = {}
        self._providers_seen: dict[str, ResourceState] = {}

    # -- StackEngine -------------------------------------------------------

    def up(self, program_dir: Path, stack: str, config: StackConfig) -> Checkpoint:
        """Apply the program; return the new checkpoint, also stored as the stack's state.

        Raises EngineError naming unsupported resource types (nothing changed),
        a failing program, or a failing AWS call (checkpoint records progress).
        """
        from rollback.engine.embedded.runner import collector_for_a_run

        # Over the checkpoint's write too: the program run's garbage would make its
        # first collection a full one over everything unfrozen at the run's end.
        with collector_for_a_run():
            return self._up(program_dir, stack, config)

    def _up(self, program_dir: Path, stack: str, config: StackConfig) -> Checkpoint:
        previous = self._previous(stack)
        unfinished: set[str] = set()
        if previous is not None:
            for op in self.export(stack).deployment.get("pending_operations") or []:
                if op.get("type") == "creating":
                    unfinished.add(str((op.get("resource") or {}).get("urn")))
                logger.warning(
                    "the last up left a pending %s of %s: it may exist in the cloud without "
                    "being in the state; check it before this up creates it again",
                    op.get("type"),
                    (op.get("resource") or {}).get("urn"),
                )
        if config.encryption_salt is None and (previous is None or previous.secrets_state is None):
            # A new stack: its secrets state's key is derived beside the run, not after it.
            self._keyring.prepare_new_state()
        values, secret_keys = self._program_config(config)
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
            providers=previous.providers() if previous else {},
            stack=stack,
            unfinished=unfinished,
        )
        self._providers_seen.update(work.providers)
        invokes = self.invokes()

        def after_code(declared: tuple[Declaration, ...], error: BaseException | None) -> None:
            try:
                self._check_declared(work, declared, invokes, error)
            except BaseException as refusal:
                work.gate.refuse(refusal)
                raise
            if error is not None:
                work.gate.refuse(error)
            else:
                work.gate.open()

        try:
            run = self._run(
                program_dir,
                stack,
                values,
                secret_keys,
                False,
                lambda reg: self._apply(work, reg),
                work,
                invokes=invokes,
                after_code=after_code,
            )
        except BaseException:
            if not work.gate.opened:
                raise  # refused before any change: the state stays as it was
            # Record what was applied before the failure; the exports stay the previous ones.
            exports = previous.exports() if previous else {}
            self._write(
                stack, config, previous, provider, exports, self._recorded(work), work.pending
            )
            raise
        declared = {**run.by_urn(), **{old: None for old in work.claimed}}
        # Refused before the first delete, as `pulumi up` refuses them (step.go, deleteProtectedError).
        refusal = _removal_refusal(prior, declared, self.appliers())
        if refusal is not None:
            # The steps ran (the program's aliases were known only at its end); nothing is
            # deleted, and the exports stay the previous ones, as after any failure.
            exports = previous.exports() if previous else {}
            self._write(
                stack, config, previous, provider, exports, self._recorded(work), work.pending
            )
            raise refusal
        final: list[ResourceState] = []
        for registered in run.resources:
            reg = registered.registration
            if reg.custom:
                final.append(work.state[reg.urn])
            else:
                final.append(self._component_state(reg, run, components.get(reg.urn), work.now))
        final.extend(work.state[urn] for urn in work.reads)
        # Default providers of other packages (random) that this run used.
        final.extend(p for urn, p in work.providers.items() if urn in work.state and p not in final)
        final = self._in_declared_order(work, final)
        doomed = {urn: old for urn, old in prior.items() if urn not in declared}
        doomed.update(work.replaced)
        try:
            for old in reversed(dependency_order(list(prior.values()))):
                if old.urn in doomed:
                    self._delete_one(doomed[old.urn])
                    if old.urn not in declared:
                        work.changes.append(Change(old.urn, old.type, "delete"))
                        work.state.pop(old.urn, None)
        except BaseException:
            self._write(stack, config, previous, provider, run.exports, self._recorded(work))
            raise
        self.last_changes = list(work.changes)
        return self._write(stack, config, previous, provider, run.exports, final)

    def destroy(self, stack: str) -> Checkpoint:
        """Delete every resource of the stack, dependents first; keep the stack with no resources.

        As `pulumi destroy`: a protected resource refuses the whole destroy before
        anything changes (pkg/resource/deploy/step.go); a `retainOnDelete` one is
        forgotten and stays in the cloud. Returns the emptied checkpoint.
        """
        previous = self._previous(stack)
        if previous is None:
            raise NotFound(
                f"stack {self.project}/{stack} has no state in {self.store.url}; nothing to destroy.",
                stack=f"{self.project}/{stack}",
            )
        prior = previous.managed()
        unknown = sorted({r.type for r in prior.values()} - set(self.appliers()))
        if unknown:
            raise EngineError(
                f"the embedded engine cannot delete resource type(s) {', '.join(unknown)}; "
                "nothing was changed. Use --engine pulumi.",
                types=unknown,
            )
        protected = sorted(urn for urn, r in prior.items() if r.protect)
        if protected:
            raise options.refuse_protected_delete(protected)
        self._providers_seen.update(previous.providers())
        config = StackConfig(values={}, encryption_salt=previous.secrets_state)
        provider = previous.default_provider() or default_provider_state(
            self.project, stack, self._region(config), None, now_iso()
        )
        remaining = [r for r in previous.resources if r.type != STACK_TYPE and r is not provider]
        changes: list[Change] = []
        try:
            for old in reversed(dependency_order(list(prior.values()))):
                self._delete_one(old)
                changes.append(Change(old.urn, old.type, "delete"))
                remaining = [r for r in remaining if r.urn != old.urn]
        except BaseException:
            self._write(stack, config, previous, provider, previous.exports(), remaining)
            raise
        self.last_changes = changes
        return self._write(stack, config, previous, provider, {}, [])

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
        from rollback.releases import check_live_seal

        check_live_seal(data, f"the live state of stack {self.project}/{stack} ({key})")
        return Checkpoint.from_dict(data)

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's exports; secrets are shown as "[secret]"."""
        masked: dict[str, Any] = mask(self.export(stack).outputs())
        return masked

    # -- drift -------------------------------------------------------------

    def read_live(self, checkpoint: Checkpoint) -> dict[str, dict[str, Any] | None]:
        """URN -> live outputs read from the cloud (None when the resource is gone). Reads only."""
        deployment = read_deployment(checkpoint, self._keyring.crypter)
        providers = deployment.providers()
        live: dict[str, dict[str, Any] | None] = {}
        for urn, res in deployment.managed().items():
            applier = self._appliers_for(res.provider, providers).get(res.type)
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

            self._appliers = {**resource_types(self.clients), **randoms.appliers()}
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

        claimed: dict[str, str] = {}

        def pretend(reg: Registration) -> tuple[str, dict[str, Any]]:
            if reg.type.startswith(PROVIDER_PREFIX):
                if reg.type == PROVIDER_PREFIX + "aws":
                    endpoints_of(reg.urn, reg.inputs)  # outside the embedded cloud: refused now
                known = previous.providers().get(reg.urn) if previous else None
                with lock:
                    changes.append(Change(reg.urn, reg.type, "same" if known else "create"))
                return (known.id if known else str(uuid.uuid4())), dict(reg.inputs)
            applier = appliers.get(reg.type)
            replace_on = applier.replace_on if applier is not None else frozenset()
            with lock:
                old = _claim_old(prior, claimed, reg)
            options.timeouts_seconds(reg.custom_timeouts)  # malformed: refused before any change
            reg = _checked(reg, old, applier)
            decision = _decide(reg, old, replace_on)
            op = "import" if old is None and reg.import_id else decision.op
            if op == "replace" and old is not None:
                _check_replace(reg, old)
            with lock:
                changes.append(Change(reg.urn, reg.type, op, decision.diff))
            if op == "same" and old is not None:
                return old.id, old.outputs
            # Inputs echoed; computed outputs stay unknown, as in a Pulumi preview.
            return (old.id if op == "update" and old is not None else ""), dict(decision.inputs)

        invokes = self.invokes()
        try:
            run = self._run(program_dir, stack, values, secret_keys, True, pretend, invokes=invokes)
        except EngineError as exc:
            # An unanswered function's empty result may well break the program:
            # the function is the cause to name.
            refused = sorted(getattr(invokes, "refused", ()))
            if refused:
                raise _refusal([], refused) from exc
            raise
        declared = {**run.by_urn(), **{old: None for old in claimed}}
        providers = {PROVIDER_PREFIX + p for p in _PACKAGES}
        unsupported = sorted(
            {r.registration.type for r in run.resources if r.registration.custom}
            - set(appliers)
            - providers
        )
        refused = sorted(getattr(invokes, "refused", ()))
        refusal = _removal_refusal(prior, declared, appliers, unsupported, refused)
        if refusal is not None:
            raise refusal
        for old in reversed(dependency_order(list(prior.values()))):
            if old.urn not in declared:
                changes.append(Change(old.urn, old.type, "delete"))
        return changes

    def _check_declared(
        self,
        work: _Apply,
        declared: tuple[Declaration, ...],
        invokes: InvokeHandler,
        error: BaseException | None,
    ) -> None:
        """Refuse, before any change, what the program's code declared and this engine cannot do.

        Called once the code has returned (`error` is what it raised, if it did):
        every type it constructed without an applier and every function left
        unanswered are named in one sentence; then `.get` reads, and protected or
        undeletable resources the program no longer declares (when its aliases
        are all known by now; else that check waits for the end of the run).
        """
        with work.lock:
            for index, declaration in enumerate(declared):
                work.declared_order.setdefault(declaration.urn, index)
        appliers = self.appliers()
        providers = {PROVIDER_PREFIX + p for p in _PACKAGES}
        unsupported = sorted(
            {d.type for d in declared if d.custom and not d.read} - set(appliers) - providers
        )
        refused = sorted(getattr(invokes, "refused", ()))
        if error is not None:
            if unsupported or refused:
                # An unanswered function's empty result may well have broken the program:
                # then the function is the cause to name.
                raise _refusal(unsupported, refused) from error
            return
        if all(d.aliases_known for d in declared):
            names = {d.urn for d in declared} | {a for d in declared for a in d.aliases}
            refusal = _removal_refusal(work.previous, names, appliers, unsupported, refused)
        else:  # what the program drops is known only at its end: checked before any delete
            refusal = _refusal(unsupported, refused) if unsupported or refused else None
        if refusal is not None:
            raise refusal
        for declaration in declared:
            if declaration.read and declaration.type != STACK_REFERENCE:
                raise refuse_read(declaration.type, declaration.name)

    def _apply(self, work: _Apply, reg: Registration) -> tuple[str, dict[str, Any]]:
        """Make one registered resource real; the monitor calls this from several threads at once.

        The step is decided on arrival (so a refusal while the program's code runs
        comes before any change), waits for the gate, then makes its cloud calls
        beside up to `parallel` others: the SDK registers a resource only once
        everything it depends on is done, so dependencies come first.
        """
        if reg.type.startswith(PROVIDER_PREFIX):
            with work.lock:
                return self._provider(work, reg)  # state only: nothing in the cloud
        step = self._decide_step(work, reg)
        if step is not None:
            with work.gate.step():
                step = self._read_ahead(work, step)
        work.gate.wait()
        if step is None:
            raise EngineError(
                f"the embedded engine cannot apply resource type {reg.type} ({reg.urn}), which "
                "the program declared only after other resources were applied; the checkpoint "
                "records what was done. Use --engine pulumi.",
                types=[reg.type],
            )
        with work.gate.step():
            return self._execute(work, step)

    def _decide_step(self, work: _Apply, reg: Registration) -> _Step | None:
        """What the step will do: old state claimed, inputs checked, diffed; Pulumi's refusals.

        None for a type without an applier: the gate names it with the others.
        """
        with work.lock:
            if not reg.provider:
                reg = dataclasses.replace(reg, provider=self._default_provider_ref(work, reg.type))
            applier = self._appliers_for(reg.provider, work.providers).get(reg.type)
            if applier is None:
                return None
            old = _claim_old(work.previous, work.claimed, reg)
        # A type change only ever comes through an alias (the type is in the URN):
        # the program says it is the same resource, so it is diffed, not replaced.
        timeouts = options.timeouts_seconds(reg.custom_timeouts)
        if old is None and reg.import_id:
            return _Step(reg, reg, applier, None, "import", (), dict(reg.inputs), timeouts)
        program = reg
        reg = _checked(reg, old, applier)
        decision = _decide(reg, old, applier.replace_on)
        op = "create" if old is None else decision.op
        if op == "replace" and old is not None:
            _check_replace(reg, old)
        return _Step(reg, program, applier, old, op, decision.diff, decision.inputs, timeouts)

    def _read_ahead(self, work: _Apply, step: _Step) -> _Step:
        """The step's reads, made while the program may still be running (they change nothing).

        A no-change `up` then reads every resource while the SDK still sends
        registrations, and a create whose name is taken is refused before any change.
        """
        if step.op == "create" and step.reg.urn not in work.unfinished:
            # While the gate is closed it cannot open before this check returns (the
            # runner waits for every registration in flight): nothing has changed yet,
            # so one listing serves every name checked meanwhile.
            listings = work.listings if work.gate.closed else None
            ensure_free(step.reg.type, step.reg.urn, reveal(step.declared), step.applier, listings)
            return dataclasses.replace(step, read=True)
        if step.op in ("same", "update") and step.old is not None:
            live = step.applier.read(step.old.id, reveal(step.old.inputs))
            return dataclasses.replace(step, live=live, read=True)
        return step

    def _execute(self, work: _Apply, step: _Step) -> tuple[str, dict[str, Any]]:
        """The step's cloud calls, then its state recorded (under the lock)."""
        if step.op == "import":
            return self._import(work, step.reg, step.applier, step.timeouts)
        reg, applier, old, op, diff = step.reg, step.applier, step.old, step.op, step.diff
        declared = step.declared
        inputs = reveal(declared)
        created = work.now
        if old is None:
            resource_id, outputs = self._create(work, reg, applier, inputs, free=step.read)
        elif op in ("same", "update"):
            live = step.live if step.read else applier.read(old.id, reveal(old.inputs))
            if live is None:
                logger.warning("%s was deleted outside the stack; creating it again", reg.urn)
                op = "create"
                resource_id, outputs = self._create(work, reg, applier, inputs)
            else:
                # Ignored paths follow the cloud, as `pulumi up --refresh` would: the
                # engine never moves what the program gave away (live traffic weights).
                as_live, _ = paths.reset(live, inputs, list(reg.ignore_changes))
                drift = drifted(declared, live, reg.ignore_changes)
                if op == "same" and drift:
                    # Changed behind the stack's back: put the declared values back,
                    # so a re-apply converges on the program (a rollback must).
                    logger.warning("%s drifted (%s); updating it back", reg.urn, ", ".join(drift))
                    op, diff = "update", drift
                if op == "update":
                    as_found = {**reveal(old.inputs), **{k: live[k] for k in drift}}
                    outputs = {
                        **_create_only(applier, old.outputs),
                        **applier.update(old.id, as_found, as_live),
                    }
                else:
                    outputs = old.outputs
                resource_id, created = old.id, old.created or work.now
        else:
            # A replacement starts from the program's inputs, not the ignored ones
            # (step_generator.go re-checks goal.Properties before replacing).
            reg = _checked(step.program, None, applier)
            declared = dict(reg.inputs)
            inputs = reveal(declared)
            dbr = (
                reg.delete_before_replace
                if reg.delete_before_replace_defined
                else _has_fixed_name(step.program)
            )
            if dbr:
                self._delete_one(old)
                with work.lock:
                    work.state.pop(old.urn, None)
            else:
                with work.lock:
                    work.replaced[old.urn] = old
            resource_id, outputs = self._create(work, reg, applier, inputs)
        # Bridged providers report the id among the outputs, as Pulumi records it.
        outputs = secret_outputs(reg, {**outputs, "id": resource_id})
        with work.lock:
            work.state[reg.urn] = self._state(
                reg,
                resource_id,
                declared,
                outputs,
                work,
                created=created,
                modified=work.now if op != "same" else (old.modified if old else work.now),
                alias=old.urn if old is not None and old.urn != reg.urn else "",
                timeouts=step.timeouts,
                import_id=old.import_id if old is not None and op != "replace" else "",
            )
            if old is not None and old.urn != reg.urn:
                work.state.pop(old.urn, None)
            work.changes.append(Change(reg.urn, reg.type, op, diff))
        # Progress for people: what changed, not the unchanged majority.
        logger.log(logging.DEBUG if op == "same" else logging.INFO, "%s %s", op, reg.urn)
        return resource_id, outputs

    @staticmethod
    def _recorded(work: _Apply) -> list[ResourceState]:
        """What the state holds now (for a checkpoint written after a failure)."""
        with work.lock:
            return list(work.state.values())

    @staticmethod
    def _in_declared_order(work: _Apply, resources: list[ResourceState]) -> list[ResourceState]:
        """Resources in the order the program constructed them, not the order steps finished
        (the checkpoint writer then puts dependencies first): the same program writes the same
        checkpoint."""
        last = len(work.declared_order)
        ranked = sorted(
            enumerate(resources),
            key=lambda item: (work.declared_order.get(item[1].urn, last), item[0]),
        )
        return [res for _, res in ranked]

    def _provider(self, work: _Apply, reg: Registration) -> tuple[str, dict[str, Any]]:
        """An explicit provider resource (`aws.Provider(...)`): state only, nothing in the cloud.

        Its id is a UUID kept while the provider lives, as Pulumi's provider
        registry does (pkg/resource/deploy/providers/registry.go); resources that
        name it are applied with clients for its region and endpoints.
        """
        package = reg.type[len(PROVIDER_PREFIX) :]
        if package not in _PACKAGES:
            raise EngineError(
                f"the embedded engine has no {package} provider ({reg.urn}); nothing was changed. "
                "Use --engine pulumi.",
                type=reg.type,
            )
        old = work.providers.get(reg.urn)
        inputs = dict(reg.inputs)
        op = "create" if old is None else ("same" if old.inputs == inputs else "update")
        if package == "aws":
            self._provider_clients(reg.urn, inputs)  # refuses endpoints outside the embedded cloud
        state = ResourceState(
            urn=reg.urn,
            type=reg.type,
            custom=True,
            id=old.id if old is not None else str(uuid.uuid4()),
            inputs=inputs,
            outputs=dict(inputs),
            parent=reg.parent,
            dependencies=reg.dependencies,
            property_dependencies=dict(reg.property_dependencies),
            created=old.created if old is not None and old.created else work.now,
            modified=work.now if op != "same" else (old.modified if old else work.now),
            protect=reg.protect,
        )
        work.providers[reg.urn] = state
        work.state[reg.urn] = state
        work.changes.append(Change(reg.urn, reg.type, op))
        return state.id, dict(inputs)

    def _default_provider_ref(self, work: _Apply, token: str) -> str:
        """The reference `<urn>::<id>` of the default provider of the token's package."""
        package = token.split(":", 1)[0]
        if package == "aws":
            return work.provider_ref
        urn = default_provider_urn(self.project, work.stack, package)
        state = work.providers.get(urn)
        if state is None:
            version = "" if package == BUILTIN else package_version(package)
            state = package_provider_state(urn, version, None, work.now)
            work.providers[urn] = state
        work.state[urn] = state
        return provider_reference(state)

    @property
    def _known_providers(self) -> dict[str, ResourceState]:
        return self._providers_seen

    def _appliers_for(
        self, reference: str, providers: dict[str, ResourceState]
    ) -> dict[str, ResourceType]:
        """The appliers that act through the provider `reference` (an explicit aws provider's
        region and endpoints), else the engine's own."""
        urn = reference.rsplit("::", 1)[0] if reference else ""
        if (
            not urn
            or urn.split("::")[-1].startswith("default")
            or "pulumi:providers:aws" not in urn
        ):
            return self.appliers()
        with self._providers_lock:
            return self._explicit_appliers(urn, providers)

    def _explicit_appliers(
        self, urn: str, providers: dict[str, ResourceState]
    ) -> dict[str, ResourceType]:
        state = providers.get(urn) or self._providers_seen.get(urn)
        if state is None:
            raise EngineError(
                f"the provider {urn} is not in the stack's state; nothing was changed.", urn=urn
            )
        self._providers_seen[urn] = state
        key = f"{urn}::{json.dumps(state.inputs, sort_keys=True, default=str)}"
        if key not in self._provider_appliers:
            from rollback.engine.embedded.resources import resource_types

            clients = self._provider_clients(urn, state.inputs)
            self._provider_appliers[key] = {**resource_types(clients), **randoms.appliers()}
        return self._provider_appliers[key]

    def _provider_clients(self, urn: str, inputs: dict[str, Any]) -> Clients:
        """Clients for an explicit aws provider: its region, and its endpoints when loopback ones."""
        return provider_clients(self.clients, urn, inputs)

    def _create(
        self,
        work: _Apply,
        reg: Registration,
        applier: ResourceType,
        inputs: dict[str, Any],
        *,
        free: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """Create; a failed create is left in the checkpoint as a pending `creating` operation.

        Pulumi records an operation before it starts and clears it when it ends
        (pkg/backend/snapshot.go); the embedded engine keeps the failed ones, so
        the state says that a resource may exist in the cloud without being in it.
        `free`: the name was already found free (`_read_ahead`).
        """
        if not free and reg.urn not in work.unfinished:
            ensure_free(reg.type, reg.urn, inputs, applier)
        try:
            return applier.create(reg.name, inputs)
        except BaseException:
            with work.lock:
                pending = self._state(
                    reg, "", dict(reg.inputs), {}, work, created=work.now, modified=work.now
                )
                work.pending.append({"resource": pending, "type": "creating"})
            raise

    def _import(
        self, work: _Apply, reg: Registration, applier: ResourceType, timeouts: dict[str, float]
    ) -> tuple[str, dict[str, Any]]:
        """Adopt an existing resource (the `import` option): read it, never create or change it.

        As Pulumi's import step (pkg/resource/deploy/step.go, ImportStep): the
        resource must exist and the program's inputs must match what it has.
        """
        live = applier.read(reg.import_id, reveal(reg.inputs))
        if live is None:
            raise EngineError(
                f"{reg.urn} imports {reg.import_id!r}, which does not exist in the cloud; "
                "nothing was imported.",
                urn=reg.urn,
            )
        differ = drifted(reg.inputs, live, reg.ignore_changes)
        if differ:
            raise EngineError(
                f"inputs to import {reg.urn} do not match the existing resource "
                f"({', '.join(differ)}); change the program to match it, or remove the "
                "`import` option.",
                urn=reg.urn,
            )
        outputs = secret_outputs(
            reg,
            {**live, **{k: v for k, v in reg.inputs.items() if k not in live}, "id": reg.import_id},
        )
        with work.lock:
            work.state[reg.urn] = self._state(
                reg,
                reg.import_id,
                dict(reg.inputs),
                outputs,
                work,
                created=work.now,
                modified=work.now,
                timeouts=timeouts,
                import_id=reg.import_id,
            )
            work.changes.append(Change(reg.urn, reg.type, "import"))
        logger.info("import %s (%s)", reg.urn, reg.import_id)
        return reg.import_id, outputs

    def _state(
        self,
        reg: Registration,
        resource_id: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any],
        work: _Apply,
        *,
        created: str,
        modified: str,
        alias: str = "",
        timeouts: dict[str, float] | None = None,
        import_id: str = "",
    ) -> ResourceState:
        return ResourceState(
            urn=reg.urn,
            type=reg.type,
            custom=True,
            id=resource_id,
            inputs=dict(inputs),
            outputs=dict(outputs),
            parent=reg.parent,
            dependencies=reg.dependencies,
            property_dependencies=dict(reg.property_dependencies),
            provider=reg.provider or self._default_provider_ref(work, reg.type),
            created=created,
            modified=modified,
            protect=reg.protect,
            retain_on_delete=reg.retain_on_delete,
            import_id=import_id,
            aliases=(alias,) if alias else (),
            custom_timeouts=dict(timeouts or {}),
            ignore_changes=reg.ignore_changes,
            replace_on_changes=reg.replace_on_changes,
        )

    def _delete_one(self, old: ResourceState) -> None:
        """Delete from the cloud, unless the state says to retain it (retainOnDelete, step.go)."""
        if old.retain_on_delete:
            logger.info("forget %s (retainOnDelete: the cloud keeps it)", old.urn)
            return
        logger.info("delete %s", old.urn)
        self._appliers_for(old.provider, self._known_providers)[old.type].delete(
            old.id, reveal(old.inputs)
        )

    def _run(
        self,
        program_dir: Path,
        stack: str,
        values: dict[str, str],
        secret_keys: list[str],
        preview: bool,
        handler: Any,
        work: _Apply | None = None,
        invokes: InvokeHandler | None = None,
        after_code: AfterCode | None = None,
    ) -> ProgramRun:
        from rollback.engine.embedded.runner import RPC_THREADS, run_program

        def read_stack(urn: str, name: str, stack_name: str, parent: str) -> dict[str, Any]:
            outputs = self._stack_reference(stack_name)
            if work is not None:
                with work.lock:
                    work.state[urn] = ResourceState(
                        urn=urn,
                        type="pulumi:pulumi:StackReference",
                        custom=True,
                        external=True,
                        id=stack_name,
                        inputs={"name": stack_name},
                        outputs=outputs,
                        parent=parent,
                        provider=self._default_provider_ref(work, "pulumi:pulumi:StackReference"),
                        created=work.now,
                        modified=work.now,
                    )
                    work.reads.append(urn)
            return outputs

        return run_program(
            program_dir,
            project=self.project,
            stack=stack,
            config=values,
            secret_keys=secret_keys,
            preview=preview,
            handler=handler,
            reader=read_stack,
            invoke=invokes if invokes is not None else self.invokes(),
            after_code=after_code,
            deferring=(lambda: work.gate.closed) if work is not None else None,
            held=work.gate.waiting if work is not None else None,
            max_workers=RPC_THREADS,
        )

    def _stack_reference(self, name: str) -> dict[str, Any]:
        """A StackReference's outputs, from the referenced stack's checkpoint in this store.

        `name` is `org/project/stack`, `project/stack` or `stack` (this project),
        as Pulumi accepts them; secret exports stay secret (`secretOutputNames`).
        """
        parts = name.split("/")
        if len(parts) == 3:
            project, stack = parts[1], parts[2]
        elif len(parts) == 2:
            project, stack = parts
        elif len(parts) == 1 and parts[0]:
            project, stack = self.project, parts[0]
        else:
            raise UsageError(f"the stack reference {name!r} is not `org/project/stack`.")
        key = checkpoint_key(project, stack)
        if not self.store.has_doc(key):
            raise NotFound(
                f"the stack reference {name!r} names {project}/{stack}, which has no state in "
                f"{self.store.url}; bring it up first.",
                stack=f"{project}/{stack}",
            )
        checkpoint = Checkpoint.from_dict(json.loads(self.store.get_doc(key)))
        exports = read_deployment(checkpoint, self._keyring.crypter).exports()
        secret_names = sorted(k for k, v in exports.items() if contains_secrets(v))
        return {"name": name, "outputs": exports, "secretOutputNames": secret_names}

    # -- state -------------------------------------------------------------

    def _previous(self, stack: str) -> Deployment | None:
        if not self.store.has_doc(checkpoint_key(self.project, stack)):
            return None
        return read_deployment(self.export(stack), self._keyring.crypter)

    def _program_config(self, config: StackConfig) -> tuple[dict[str, str], list[str]]:
        """Config as the SDK takes it: `project:key` -> string, secrets decrypted, and the secret keys."""
        from rollback.engine.stack_file import (
            PASSPHRASE,
            decrypt_nested,
            imports_environment,
            provider_kind,
            secret_keys,
        )

        kind = provider_kind(config)
        if kind != PASSPHRASE:
            # Refused before anything runs: only Pulumi's CLI holds the other providers' clients.
            raise ConfigError(
                f"the stack's secrets provider is {kind}; the embedded engine supports only "
                "passphrase, so nothing was changed. Use --engine pulumi for this stack."
            )
        if imports_environment(config):
            logger.warning(
                "the stack file imports ESC environments (`environment:`), which only Pulumi "
                "resolves; the embedded engine runs the program without their values"
            )
        keys = secret_keys(config)
        values = {key: config_string(value) for key, value in config.values.items()}
        if keys:
            if not config.encryption_salt:
                raise ConfigError("the stack config has secure values but no encryptionsalt.")
            crypter = self._keyring.crypter(config.encryption_salt)
            for key, ciphertext in config.secrets.items():
                values[key] = crypter.decrypt(ciphertext)
            for key in keys:
                if key not in config.secrets:  # a structure holding `secure:` leaves
                    values[key] = config_string(decrypt_nested(config.values[key], crypter.decrypt))
        return values, keys

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
            protect=reg.protect,
        )

    def _write(
        self,
        stack: str,
        config: StackConfig,
        previous: Deployment | None,
        provider: ResourceState,
        exports: dict[str, Any],
        resources: list[ResourceState],
        pending: list[dict[str, Any]] | None = None,
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
            pending=pending or [],
        )
        from rollback.releases import seal_live_state

        body = seal_live_state(checkpoint.to_dict())  # an edit outside the toolkit is exit 4
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


normalised = options.normalised


def _create_only(applier: ResourceType, outputs: dict[str, Any]) -> dict[str, Any]:
    """The old outputs that AWS answers only at create (an access key's secret), which an update
    keeps, as the provider keeps them in its state; an applier lists them in
    `create_only_outputs`."""
    keys: frozenset[str] = getattr(applier, "create_only_outputs", frozenset())
    return {k: v for k, v in outputs.items() if k in keys}


def drifted(
    declared: dict[str, Any], live: dict[str, Any], ignore_changes: Iterable[str] = ()
) -> tuple[str, ...]:
    """Declared input names whose live value differs. Secrets are skipped: AWS never returns them.

    Paths under `ignore_changes` are not compared: the program gave them away.
    """
    ignored = list(ignore_changes)
    if ignored:
        live, _ = paths.reset(declared, live, ignored)
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


def _claim_old(
    prior: dict[str, ResourceState], claimed: dict[str, str], reg: Registration
) -> ResourceState | None:
    """The previous state of a registration: by its URN, else by its first alias not yet taken.

    As Pulumi's getOldResource (pkg/resource/deploy/step_generator.go): the URN
    first, then the aliases; a state taken through an alias is not deleted.
    """
    if reg.urn in prior:
        return prior[reg.urn]
    for alias in reg.aliases:
        if alias in prior and alias not in claimed:
            claimed[alias] = reg.urn
            return prior[alias]
    return None


def _decide(
    reg: Registration, old: ResourceState | None, replace_on: frozenset[str]
) -> options.Decision:
    return options.decide(
        reg.urn,
        reg.inputs,
        old.inputs if old is not None else None,
        ignore_changes=reg.ignore_changes,
        replace_on=replace_on,
        replace_on_changes=reg.replace_on_changes,
    )


def _checked(reg: Registration, old: ResourceState | None, applier: Any) -> Registration:
    """The registration with the inputs the provider's Check returns (auto-name, `__defaults`)."""
    if applier is None:
        return reg
    inputs = checked_inputs(
        reg.type,
        reg.name,
        reg.inputs,
        old.inputs if old is not None else None,
        applier,
        old.outputs if old is not None else None,
    )
    return dataclasses.replace(reg, inputs=inputs)


def _check_replace(reg: Registration, old: ResourceState) -> None:
    """Refuse what Pulumi refuses before a replacement (step_generator.go)."""
    if reg.protect and old.protect:
        raise options.refuse_protected_replace(reg.urn)
    if reg.import_id:
        raise EngineError(
            f"{reg.urn} was imported and still declares the import id {reg.import_id!r}; "
            "previously-imported resources that still specify an ID may not be replaced. "
            "Remove the `import` option first.",
            urn=reg.urn,
        )


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


def _removal_refusal(
    prior: Mapping[str, ResourceState],
    declared: Iterable[str],
    appliers: Mapping[str, Any],
    unsupported: Iterable[str] = (),
    functions: Iterable[str] = (),
) -> EngineError | None:
    """The refusal of a run, or None: every type the engine cannot apply (`unsupported`) or
    delete (no longer declared) and every unanswered function in one sentence; else the
    protected resources the program no longer declares (step.go, deleteProtectedError)."""
    kept = set(declared)
    removed = [r for urn, r in prior.items() if urn not in kept]
    types = sorted(set(unsupported) | ({r.type for r in removed} - set(appliers)))
    if types or functions:
        return _refusal(types, sorted(functions))
    protected = sorted(r.urn for r in removed if r.protect)
    if protected:
        return options.refuse_protected_delete(protected)
    return None


def _has_fixed_name(reg: Registration) -> bool:
    return any(
        isinstance(reg.inputs.get(key), str) and reg.inputs.get(key) != _UNKNOWN
        for key in _NAME_INPUTS
    )
