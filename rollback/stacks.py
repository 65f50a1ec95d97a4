"""Stack operations over an engine: up, verify (drift), reapply a release, and
the stack state a release records.

A Pulumi project is a directory with `Pulumi.yaml` (its `main` names the
program directory) and `Pulumi.<stack>.yaml` beside it. Re-applying a release
checks its tagged commit out into a temporary git worktree, applies it with
the release's recorded config, and proves the result against the release's
checkpoint; the worktree is removed afterwards, also on failure.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.engine import Change, StackConfig
from rollback.errors import CheckFailed, ConfigError, IntegrityError, NotFound
from rollback.models import TRAFFIC_OWNED, Checkpoint, Evidence, Topology
from rollback.worktrees import WORKTREE_PREFIX as _WORKTREE_PREFIX
from rollback.worktrees import prune_stale_worktrees

if TYPE_CHECKING:
    from rollback.aws.rds import Rds
    from rollback.engine import StackEngine
    from rollback.engine.embedded.secrets import SecretsKeyring
    from rollback.releases import Registry, Release
    from rollback.store import Store

TOPOLOGY_OUTPUT = "rollback"
logger = logging.getLogger(__name__)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Project:
    """A Pulumi project on disk."""

    root: Path
    name: str
    program_dir: Path

    def config(self, stack: str) -> StackConfig:
        """The stack's config from `Pulumi.<stack>.yaml` (secrets stay encrypted)."""
        from rollback.engine.embedded.stack_config import load_stack_config

        return load_stack_config(self.root, stack, self.name)


def load_project(root: Path) -> Project:
    """Read `Pulumi.yaml` at `root`; raises NotFound or ConfigError."""
    import yaml

    path = root / "Pulumi.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise NotFound(
            f"{root} holds no Pulumi.yaml; pass the project directory with --program."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}.") from exc
    if not isinstance(doc, dict) or not doc.get("name"):
        raise ConfigError(f"{path} has no project `name`.")
    return Project(root=root, name=str(doc["name"]), program_dir=root / str(doc.get("main") or "."))


def config_to_bytes(config: StackConfig) -> bytes:
    """The config as a release stores it: JSON, secret values still ciphertext.

    `stack_file` is the stack file's text as it was, written back byte for byte
    when the release is re-applied with the pulumi engine.
    """
    doc = {
        "values": config.values,
        "secrets": config.secrets,
        "encryption_salt": config.encryption_salt,
        "secrets_provider": config.secrets_provider,
        "encrypted_key": config.encrypted_key,
        "stack_file": config.source,
    }
    return json.dumps(doc, sort_keys=True, indent=2).encode()


def config_from_bytes(data: bytes) -> StackConfig:
    doc = json.loads(data)
    return StackConfig(
        values=dict(doc.get("values") or {}),
        secrets=dict(doc.get("secrets") or {}),
        encryption_salt=doc.get("encryption_salt"),
        secrets_provider=doc.get("secrets_provider"),
        encrypted_key=doc.get("encrypted_key"),
        source=doc.get("stack_file"),
    )


# Shorter plaintexts ("1", "true") occur in any checkpoint; only a whole string equal to them counts.
_SUBSTRING_MIN = 6


def config_secret_plaintexts(
    config: StackConfig, keyring: SecretsKeyring | None = None
) -> list[str] | None:
    """The plaintext of every config secret (top-level and nested), or None when the toolkit cannot know them.

    Only the passphrase provider can be decrypted here; for any other provider,
    or without the passphrase, the reason is logged and None returned.
    """
    from rollback.engine.embedded.secrets import SecretsKeyring
    from rollback.engine.stack_file import PASSPHRASE, nested_secrets, provider_kind

    ciphertexts = [*config.secrets.values()]
    ciphertexts += [ct for value in config.values.values() for ct in nested_secrets(value)]
    if not ciphertexts:
        return []
    kind = provider_kind(config)
    if kind != PASSPHRASE or not config.encryption_salt:
        logger.warning(
            "the plaintext check of the stored checkpoint is skipped: the stack's secrets "
            "provider is %s, which only the Pulumi CLI decrypts",
            kind,
        )
        return None
    try:
        crypter = (keyring or SecretsKeyring()).crypter(config.encryption_salt)
        return [crypter.decrypt(ct) for ct in ciphertexts]
    except ConfigError as exc:
        logger.warning("the plaintext check of the stored checkpoint is skipped: %s", exc)
        return None


def refuse_plaintext(document: Any, plaintexts: list[str], what: str) -> None:
    """Raise IntegrityError when `document` holds any of `plaintexts` in the clear; never names the value."""
    wanted = [p for p in plaintexts if p]
    if not wanted:
        return
    for text in _strings(document):
        for plain in wanted:
            if text == plain or (len(plain) >= _SUBSTRING_MIN and plain in text):
                raise IntegrityError(
                    f"{what} holds the plaintext of a config secret; it was not stored. "
                    "Export state without --show-secrets so secrets stay ciphertext."
                )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def topology_of(checkpoint: Checkpoint) -> Topology | None:
    """The stack's `rollback` output, or None when the program exports none."""
    raw = checkpoint.outputs().get(TOPOLOGY_OUTPUT)
    return Topology.from_dict(raw) if isinstance(raw, dict) else None


# After an apply: keep users where the toolkit put them (rollback/ownership.py,
# `TrafficOwner.hold`); gets the new topology and checkpoint, returns what it did.
HoldTraffic = Callable[[Topology, Checkpoint], dict[str, Any]]


@dataclass(frozen=True)
class UpResult:
    stack: str
    engine: str
    changes: tuple[Change, ...]
    resources: int
    topology: Topology | None
    summary: dict[str, int] | None = None  # the engine's own counts, when it reports them
    traffic: dict[str, Any] | None = None  # what holding the traffic found and did
    warnings: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        if self.summary is not None:
            return dict(self.summary)
        found: dict[str, int] = {}
        for change in self.changes:
            found[change.op] = found.get(change.op, 0) + 1
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "engine": self.engine,
            "resources": self.resources,
            "counts": self.counts(),
            "changes": [vars(c) | {"diff": list(c.diff)} for c in self.changes if c.op != "same"],
            "topology": self.topology.to_dict() if self.topology else None,
            "traffic": self.traffic,
            "warnings": list(self.warnings),
        }


def up(
    engine: StackEngine,
    project: Project,
    stack: str,
    config: StackConfig | None = None,
    hold: HoldTraffic | None = None,
) -> UpResult:
    """Apply the project's program to `stack`; the engine keeps the checkpoint.

    With `hold`, users are kept where the toolkit put them: an apply never moves them.
    """
    checkpoint = engine.up(project.program_dir, stack, config or project.config(stack))
    changes = tuple(getattr(engine, "last_changes", ()))
    summary = getattr(engine, "last_counts", None)
    custom = [
        r
        for r in checkpoint.resources
        if r.get("custom") and not str(r.get("type")).startswith("pulumi:providers:")
    ]
    topology = topology_of(checkpoint)
    held = hold(topology, checkpoint) if hold is not None and topology is not None else None
    return UpResult(
        stack,
        engine.name,
        changes,
        len(custom),
        topology,
        dict(summary) if summary is not None else None,
        traffic=held,
        warnings=tuple((held or {}).get("warnings") or ()),
    )


@dataclass(frozen=True)
class Drift:
    """One property of one resource that differs from what was recorded."""

    urn: str
    property: str
    expected: Any
    actual: Any


@dataclass(frozen=True)
class VerifyReport:
    stack: str
    version: str | None
    checked: int
    drift: tuple[Drift, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.drift

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "version": self.version,
            "checked": self.checked,
            "ok": self.ok,
            "drift": [vars(d) for d in self.drift],
        }


def verify(
    engine: StackEngine,
    stack: str,
    checkpoint: Checkpoint,
    version: str | None = None,
    traffic: Callable[[Topology], Evidence] | None = None,
) -> VerifyReport:
    """Read every resource of `checkpoint` back from the cloud, property by property.

    Compares each recorded input the cloud reports; secrets are skipped (AWS
    does not return them) and never shown. Traffic weights are the toolkit's,
    not the stack's: with `traffic` (rollback/ownership.py, `TrafficOwner.check`)
    they are compared with the stack's desired traffic instead of the state.
    Raises ConfigError when the engine cannot read the cloud.
    """
    from rollback.engine.embedded.engine import drifted, normalised

    read_live = getattr(engine, "read_live", None)
    if read_live is None:
        raise ConfigError(
            f"the {engine.name} engine cannot read resources back; use --engine embedded, or `pulumi refresh --preview-only` with Pulumi."
        )
    live: dict[str, dict[str, Any] | None] = read_live(checkpoint)
    drift: list[Drift] = []
    for res in checkpoint.resources:
        urn = str(res.get("urn"))
        if urn not in live:
            continue
        now = live[urn]
        if now is None:
            drift.append(Drift(urn, "(resource)", "exists", "missing"))
            continue
        inputs = res.get("inputs") or {}
        owned = TRAFFIC_OWNED.get(str(res.get("type")))  # the toolkit's, checked by the outcome
        now = without_toolkit_tags(now)
        drift += [
            Drift(urn, k, normalised(inputs[k]), normalised(now[k]))
            # Paths under ignoreChanges belong to someone else (the toolkit's traffic).
            for k in drifted(inputs, now, res.get("ignoreChanges") or ())
            if k != owned
        ]
    topology = topology_of(checkpoint) if traffic is not None else None
    if traffic is not None and topology is not None:
        found = traffic(topology)
        if not found.ok:
            urn = next(
                (
                    str(r.get("urn"))
                    for r in checkpoint.resources
                    if (r.get("outputs") or {}).get("arn") == topology.listener_arn
                ),
                topology.listener_arn,
            )
            desired = (found.observed.get("desired") or {}).get("weights")
            actual = (found.observed.get("found") or {}).get("listener")
            drift.append(Drift(urn, "defaultActions", desired, actual))
    return VerifyReport(stack, version, len(live), tuple(drift))


TOOLKIT_TAG_PREFIX = "rollback:"  # tags the toolkit puts on what it restores (db-restore)


def without_toolkit_tags(properties: dict[str, Any]) -> dict[str, Any]:
    """`properties` without the toolkit's own tags: a restored database carries
    `rollback:restored-from` and the like, which say where it came from and are no
    drift from the stack (the stack never declares them)."""
    found = dict(properties)
    for name in ("tags", "tagsAll"):
        if isinstance(found.get(name), dict):
            found[name] = {
                k: v for k, v in found[name].items() if not str(k).startswith(TOOLKIT_TAG_PREFIX)
            }
    return found


def compare_checkpoints(expected: Checkpoint, actual: Checkpoint) -> list[Drift]:
    """Differences in resource set (by URN) and inputs between two checkpoints."""
    from rollback.engine.embedded.engine import normalised
    from rollback.engine.embedded.secrets import contains_secrets

    want = {
        r["urn"]: r
        for r in expected.resources
        if r.get("custom") and not r["type"].startswith("pulumi:providers:")
    }
    have = {
        r["urn"]: r
        for r in actual.resources
        if r.get("custom") and not r["type"].startswith("pulumi:providers:")
    }
    was = {value: where for where, value in _identities(expected).items()}
    now = _identities(actual)
    found = [Drift(urn, "(resource)", "exists", "missing") for urn in sorted(set(want) - set(have))]
    found += [Drift(urn, "(resource)", "absent", "exists") for urn in sorted(set(have) - set(want))]
    for urn in sorted(set(want) & set(have)):
        old, new = want[urn].get("inputs") or {}, have[urn].get("inputs") or {}
        owned = TRAFFIC_OWNED.get(str(have[urn].get("type")))
        for key in sorted(set(old) | set(new)):
            if key == owned:
                continue  # live traffic is the toolkit's (rollback/ownership.py), not the release's
            if contains_secrets(old.get(key)) or contains_secrets(new.get(key)):
                continue  # ciphertexts differ by nonce; the secret's effect is read back by verify
            before, after = normalised(old.get(key)), normalised(new.get(key))
            if before != after and not same_references(before, after, was, now):
                found.append(Drift(urn, key, before, after))
    return found


_IDENTITIES = ("id", "arn")  # outputs a replacement changes (a new ECS task definition revision)


def _identities(checkpoint: Checkpoint) -> dict[tuple[str, str], str]:
    """(URN, "id" | "arn") -> the value, for every resource of `checkpoint`."""
    found: dict[tuple[str, str], str] = {}
    for res in checkpoint.resources:
        outputs = res.get("outputs") or {}
        for name in _IDENTITIES:
            if isinstance(outputs.get(name), str):
                found[(str(res.get("urn")), name)] = outputs[name]
    return found


def same_references(
    before: Any, after: Any, was: dict[str, tuple[str, str]], now: dict[tuple[str, str], str]
) -> bool:
    """True when `after` differs from `before` only where `before` named a resource's id or
    ARN and `after` names the same resource's id or ARN now.

    A re-apply replaces what cannot change in place (an immutable ECS task
    definition gets a new revision ARN), and Pulumi passes the new output to
    every input that references it; the release's input is then the old ARN of
    the same resource, which is no difference. `was` maps the release's
    identities to (URN, output), `now` the re-applied ones.
    """
    if isinstance(before, str) and isinstance(after, str):
        return before == after or (before in was and now.get(was[before]) == after)
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return all(same_references(b, a, was, now) for b, a in zip(before, after, strict=True))
    if isinstance(before, dict) and isinstance(after, dict) and before.keys() == after.keys():
        return all(same_references(before[k], after[k], was, now) for k in before)
    return bool(before == after)


@contextmanager
def worktree(repo_dir: Path, commit: str) -> Iterator[Path]:
    """A temporary detached git worktree at `commit`, removed afterwards (also on failure).

    Its folder's name carries our pid (`rollback-reapply-<pid>-...`), so a
    process killed inside leaves a worktree that `prune_stale_worktrees` can
    tell from one in use; the next reapply (and every run, once its steps
    are done) removes it and its registration in the repository.
    """
    from rollback.releases import open_repo

    repo = open_repo(repo_dir)
    prune_stale_worktrees(git_dirs=[Path(repo.common_dir).resolve()])
    with tempfile.TemporaryDirectory(prefix=f"{_WORKTREE_PREFIX}{os.getpid()}-") as tmp:
        path = Path(tmp) / "src"
        repo.git.worktree("add", "--detach", str(path), commit)
        try:
            yield path
        finally:
            repo.git.worktree("remove", "--force", str(path))
            repo.git.worktree("prune")


@dataclass(frozen=True)
class ReapplyResult:
    stack: str
    version: str
    up: UpResult
    differences: tuple[Drift, ...]
    verify: VerifyReport | None
    refreshed: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences and (self.verify is None or self.verify.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "version": self.version,
            "ok": self.ok,
            "up": self.up.to_dict(),
            "differences": [vars(d) for d in self.differences],
            "verify": self.verify.to_dict() if self.verify else None,
            "refreshed": self.refreshed,
        }


def release_checkpoint(store: Store, release: Release) -> Checkpoint:
    if release.checkpoint is None:
        raise NotFound(
            f"release {release.version} carries no checkpoint; it was recorded before `rollback stack up`."
        )
    return Checkpoint.from_dict(json.loads(store.get_blob(release.checkpoint.sha256)))


def set_refresh(engine: StackEngine, refresh: bool | None) -> bool:
    """Ask the engine to refresh before it applies (the pulumi engine's `up --refresh`).

    None keeps the engine's setting (`--no-refresh` sets it off). Returns whether
    the engine refreshes: engines without the switch (embedded) read every
    resource from the cloud as they apply, which is their refresh.
    """
    if not hasattr(engine, "refresh"):
        return True
    if refresh is not None:
        engine.refresh = refresh
    return bool(engine.refresh)


def live_drift(
    engine: StackEngine, program_dir: Path, stack: str, config: StackConfig
) -> list[Drift]:
    """What the engine's live proof found (`preview --refresh --expect-no-changes`), one Drift per property.

    Empty for an engine without such a proof (the embedded engine proves with read_live).
    """
    prove = getattr(engine, "prove", None)
    if prove is None:
        return []
    found: list[Drift] = []
    for change in prove(program_dir, stack, config):
        owned = TRAFFIC_OWNED.get(change.type)
        for prop in change.diff or ("(resource)",):
            if owned and prop.split(".", 1)[0].split("[", 1)[0] == owned:
                continue  # traffic is the toolkit's (rollback/ownership.py); the outcome checks it
            found.append(Drift(change.urn, prop, "as the release declares", change.op))
    return found


def prove_release(
    engine: StackEngine, store: Store, release: Release, stack: str
) -> VerifyReport | None:
    """The engine's live proof of `release` in its own worktree; None when the engine has none."""
    if not hasattr(engine, "prove") or release.config is None:
        return None
    config = config_from_bytes(store.get_blob(release.config.sha256))
    with worktree(Path(release.repo), release.commit) as src:
        project = load_project(src)
        drift = live_drift(engine, project.program_dir, stack, config)
    checked = len([r for r in release_checkpoint(store, release).resources if r.get("custom")])
    return VerifyReport(stack, release.version, checked, tuple(drift))


def verify_by_preview(
    engine: StackEngine, store: Store, registry: Registry, stack: str, version: str | None
) -> VerifyReport:
    """`stack verify` with an engine whose cloud read is its live proof (pulumi).

    With VERSION, the release's program and stack file in their worktree; without,
    the project in the working directory with its stack file.
    """
    if version:
        release = registry.show(version).release
        report = prove_release(engine, store, release, stack)
        if report is None:
            raise NotFound(f"release {version} carries no stack config; it cannot be proven.")
        return report
    project = load_project(Path.cwd())
    drift = live_drift(engine, project.program_dir, stack, project.config(stack))
    checked = len([r for r in engine.export(stack).resources if r.get("custom")])
    return VerifyReport(stack, None, checked, tuple(drift))


def reapply(
    engine: StackEngine,
    store: Store,
    release: Release,
    stack: str,
    *,
    prove: bool = True,
    hold: HoldTraffic | None = None,
    refresh: bool | None = None,
) -> ReapplyResult:
    """Apply the release's tagged program with its recorded config and prove the result.

    The engine refreshes first unless `refresh` (default: the engine's setting) is False. The proof compares
    checkpoints and reads the cloud: `read_live` (embedded) or the engine's
    `preview --refresh --expect-no-changes` (pulumi), whose findings are drift.
    Raises NotFound when the release holds no checkpoint or config,
    IntegrityError when a blob was tampered with or a checkpoint (the
    release's or the live state) is corrupt, before anything is applied; CheckFailed when the cloud
    does not match the release after the apply (unless `prove` is False: the
    rollback's stack step applies here and proves in its own verify, so that a
    failed proof still leaves a recorded, compensable apply).
    """
    from rollback.releases import check_checkpoints

    check_checkpoints(store, release, release.stack)  # exit 4 before the engine touches anything
    expected = release_checkpoint(store, release)
    if release.config is None:
        raise NotFound(
            f"release {release.version} carries no stack config; it cannot be re-applied."
        )
    config = config_from_bytes(store.get_blob(release.config.sha256))
    refreshed = set_refresh(engine, refresh)
    report: VerifyReport | None = None
    with worktree(Path(release.repo), release.commit) as src:
        project = load_project(src)
        result = up(engine, project, stack, config, hold)
        if prove and hasattr(engine, "prove"):
            drift = live_drift(engine, project.program_dir, stack, config)
            report = VerifyReport(stack, release.version, result.resources, tuple(drift))
    actual = engine.export(stack)
    differences = tuple(compare_checkpoints(expected, actual))
    if hasattr(engine, "read_live"):
        report = verify(engine, stack, actual, release.version)
    outcome = ReapplyResult(stack, release.version, result, differences, report, refreshed)
    if prove and not outcome.ok:
        shown = "; ".join(
            f"{d.urn.rsplit('::', 1)[-1]} {d.property}"
            for d in (*differences, *(report.drift if report else ()))
        )
        raise CheckFailed(
            f"after re-applying {release.version} the stack still differs from the release: {shown}.",
            result=outcome.to_dict(),
        )
    return outcome


def release_state(
    engine: StackEngine,
    project: Project,
    stack: str,
    version: str,
    rds: Rds | None,
) -> dict[str, Any] | None:
    """What a release records of the stack as it runs now: checkpoint, config,
    topology, live colour, and a fresh snapshot of the database it names.

    None when the stack has no state yet (a release without infrastructure).
    Raises IntegrityError when the program exports no topology.
    """
    try:
        checkpoint = engine.export(stack)
    except NotFound:
        return None
    topology = topology_of(checkpoint)
    if topology is None:
        raise IntegrityError(
            f"stack {project.name}/{stack} exports no `{TOPOLOGY_OUTPUT}` output; see docs/topology.md."
        )
    config = project.config(stack)
    # The embedded engine has derived this stack's key already; reuse it (a second costs ~1 s).
    plaintexts = config_secret_plaintexts(config, getattr(engine, "_keyring", None))
    if plaintexts:
        refuse_plaintext(
            checkpoint.to_dict(), plaintexts, f"the checkpoint of {project.name}/{stack}"
        )
    state: dict[str, Any] = {
        "checkpoint": json.dumps(checkpoint.to_dict(), sort_keys=True).encode(),
        "config": config_to_bytes(config),
        "topology": json.dumps(topology.to_dict(), sort_keys=True).encode(),
        "color": topology.live_color,
    }
    if rds is not None and topology.db_instance_id:
        state.update(_release_snapshot(rds, topology, version))
    return state


def _release_snapshot(rds: Rds, topology: Topology, version: str) -> dict[str, Any]:
    """Snapshot the database the topology names for `version` (a DB snapshot, or a DB
    cluster snapshot for an Aurora cluster), once; {} when that database does not exist."""
    from rollback.aws.databases import databases
    from rollback.aws.rds import SNAPSHOT_ID_MAX, rds_identifier

    db = databases(rds, topology.db_kind)
    if db.find(topology.db_instance_id) is None:
        return {}
    snapshot_id = rds_identifier(topology.db_instance_id, "release", version, limit=SNAPSHOT_ID_MAX)
    if db.find_snapshot(snapshot_id) is None:
        db.create_snapshot(snapshot_id, topology.db_instance_id, {"rollback:release": version})
    snap = db.wait_snapshot_available(snapshot_id, timeout_s=3600)
    taken = snap.created_at or datetime.now(UTC)
    return {"db_snapshot_id": snapshot_id, "db_snapshot_at": taken.isoformat(timespec="seconds")}
