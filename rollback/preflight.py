"""Preflight: everything a plan's steps will need, checked before the first change.

`preflight(bench, plan)` runs before the run's journal exists (and before
the stack lock is taken, unless the plan was read under it), so a failing
precondition changes nothing anywhere: not the cloud, not the store, not the
IaC repository. Each check runs only when a
planned step needs it:

- stack step: the target release's checkpoint and config are intact and
  well-formed, the live state of the embedded engine is well-formed, the
  passphrase decrypts the recorded secrets, an engine can run (the Pulumi
  CLI on PATH, or the embedded cloud answering), the release's commit is in
  its repository with its tag, and a git worktree can be made there;
- traffic/dns before the stack step: the receiving colours have routable targets;
- db-snapshot / db-restore: the instance exists, the snapshot to restore is available;
- migrate / integrity: the database URL variable is set and answers `SELECT 1`;
- artifact: the artifact blob re-hashes to its name.

The checks are independent reads, so they run at once (threads: they wait on
git, HTTP, AWS and PBKDF2, which all release the GIL); the error raised is the
first failing one in a fixed order (store, stack step, artifact, cloud,
database), one sentence: ConfigError / UsageError / NotFound (exit 2) or
IntegrityError (exit 4).

Nothing here builds an engine, imports pulumi or parses a checkpoint into the
engine's model: a traffic-first rollback pays only for reads (DESIGN.md,
"Preflight means everything"; issue 9, item 7).

`check_record` is the same idea for `release record`, before its snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.daemon import in_daemon_thread
from rollback.errors import (
    ConfigError,
    IntegrityError,
    NotFound,
    RollbackError,
    UsageError,
)
from rollback.models import Evidence, Topology
from rollback.steps import evidence

if TYPE_CHECKING:
    from rollback.orchestrate import Workbench
    from rollback.plan import Plan, PlannedStep
    from rollback.releases import Registry, Release
    from rollback.store import Store

PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
DB_CONNECT_TIMEOUT_S = 5
GIT_TIMEOUT_S = 30
# Who signs a release tag when git knows no identity (README, "Releases and git identity").
FALLBACK_EMAIL_DOMAIN = "rollback.invalid"
NOTHING_CHANGED = "nothing was changed"
# How old (seconds, from the plan's creation) the planner's read of routable targets may be
# for preflight to take it instead of reading again.
PLANNED_READ_FRESH_S = 5.0

Check = Callable[[], list[Evidence]]


@dataclass(frozen=True)
class _Named:
    name: str
    run: Check


def preflight(
    bench: Workbench,
    plan: Plan,
    steps: Sequence[PlannedStep] | None = None,
    *,
    unlocks: Unlocks | None = None,
    planned_now: bool = True,
) -> list[Evidence]:
    """Check every precondition of `steps` (default: all of `plan`'s); return the evidence.

    Reads only. `unlocks` holds passphrase checks `begin` started while the
    plan was made. `planned_now`: the planner has just read the database
    instance the db-snapshot step works on (so it is not read again before
    a traffic-first shift) and, while the plan is under
    PLANNED_READ_FRESH_S old, the receiving colours' routable targets;
    False on resume. Raises the first failing
    precondition (in a fixed order) as one sentence: ConfigError/UsageError/
    NotFound (exit 2) or IntegrityError (exit 4).
    """
    todo = list(plan.steps if steps is None else steps)
    checks = _checks(bench, plan, todo, unlocks or Unlocks(), planned_now)
    return run_checks(checks)


class Unlocks:
    """The slow parts of preflight, started before the plan is made: passphrase checks, each
    run once in a thread of its own, and the stack step's checks of one run.

    The passphrase check is a PBKDF2 of a million rounds (a quarter to a
    whole second), which releases the GIL: started by `begin` before the plan
    is made, it is done by the time preflight asks. An agent keeps one
    Unlocks across runs: a passphrase's answer for a salt does not change.
    The stack step's checks (`start_stack_check`) wait on git and the
    passphrase; the CLI starts them before it plans, so they overlap the
    plan's reads (an agent's are warm already). Their result is taken once,
    by the preflight of the run that started them.
    """

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], Future[bool]] = {}
        self._stack_checks: dict[tuple[str, str], Future[list[Evidence]]] = {}
        self._lock = threading.Lock()

    def start_stack_check(self, bench: Workbench, target: str) -> None:
        """Start `check_stack_step` of the release `target` names, when it has a checkpoint.

        Speculative and silent, as `begin`: what it cannot resolve, preflight
        checks itself.
        """
        try:
            found = _target_release(bench.registry, target)
        except RollbackError:
            return
        if found is None or found[0].checkpoint is None:
            return
        release, manifest_sha256 = found
        with self._lock:
            self._stack_checks[(release.version, manifest_sha256)] = in_daemon_thread(
                lambda: check_stack_step(bench, release, manifest_sha256, self),
                "preflight-stack",
            )

    def take_stack_check(self, version: str, manifest_sha256: str) -> Check | None:
        """The started stack step check of this release (once), or None."""
        with self._lock:
            found = self._stack_checks.pop((version, manifest_sha256), None)
        return None if found is None else found.result

    def start(self, phrase: str, state: str) -> Future[bool]:
        with self._lock:
            key = (phrase, state)
            if key not in self._found:
                self._found[key] = in_daemon_thread(
                    lambda: _opens(phrase, state), "preflight-unlock"
                )
            return self._found[key]

    def opens(self, phrase: str, state: str) -> bool:
        """True when `phrase` decrypts the check value of `state`; raises ConfigError if malformed."""
        return self.start(phrase, state).result()


def _opens(phrase: str, state: str) -> bool:
    from rollback.engine.embedded.secrets import SecretsKeyring

    try:
        SecretsKeyring().crypter(state, phrase)
    except ConfigError as exc:
        if "incorrect passphrase" in exc.message:
            return False
        raise
    return True


def begin(
    registry: Registry, target: str, environ: Mapping[str, str], *, into: Unlocks | None = None
) -> Unlocks:
    """Start the slow part of preflight now: the passphrase check of `target`'s recorded secrets.

    Call it as early as possible (the CLI does, before boto3 is even
    imported). It works on a thread of its own: it reads the store and asks
    git for the target's and the current release's tags (the registry keeps
    the answers, so the plan does not ask again), and those waits overlap
    the caller's imports. Speculative and silent: whatever it cannot read,
    preflight reads again and reports. `into`: the Unlocks to start it in
    (an agent keeps one across runs); default a new one.
    """
    unlocks = Unlocks() if into is None else into
    in_daemon_thread(lambda: _begin(registry, target, environ, unlocks), "preflight-begin")
    return unlocks


def _begin(registry: Registry, target: str, environ: Mapping[str, str], unlocks: Unlocks) -> None:
    try:
        found = _target_release(registry, target)
        release = found[0] if found else None
        if release is not None and release.config is not None:
            config = json.loads(registry.store.get_blob(release.config.sha256))
            salt, phrase = config.get("encryption_salt"), passphrase(environ)
            if config.get("secrets") and salt and phrase is not None:
                unlocks.start(phrase, str(salt))
        current = registry.current()
        if current is not None and (release is None or current != release.version):
            registry.load(current)
    except (RollbackError, ValueError, KeyError, TypeError):
        pass


def _target_release(registry: Registry, target: str) -> tuple[Release, str] | None:
    """The release a rollback to `target` means and its manifest's sha256 (None: no such
    release as `last-stable`); raises what `Registry.load` raises."""
    version = registry.rollback_target(target)
    return registry.load(version) if version else None


def run_checks(checks: Sequence[_Named]) -> list[Evidence]:
    """Run the checks at once; raise the first failure in their order, else return all evidence."""
    if not checks:
        return []
    outcomes: list[list[Evidence] | BaseException] = []
    # The calling thread runs the first check itself: a thread started costs a wait for the
    # scheduler (milliseconds on a busy machine), and one check needs none.
    with ThreadPoolExecutor(
        max_workers=min(8, max(1, len(checks) - 1)), thread_name_prefix="preflight"
    ) as pool:
        futures = [pool.submit(c.run) for c in checks[1:]]
        for run in [checks[0].run, *(f.result for f in futures)]:
            try:
                outcomes.append(run())
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: not a check's finding
                raise
            except BaseException as exc:  # noqa: BLE001 - re-raised below, in check order
                outcomes.append(exc)
    found: list[Evidence] = []
    for check, outcome in zip(checks, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if isinstance(outcome, RollbackError):
                raise outcome
            raise ConfigError(
                f"preflight could not check {check.name} ({type(outcome).__name__}: {outcome}); {NOTHING_CHANGED}.",
                check=check.name,
            ) from outcome
        found += outcome
    return found


def _checks(
    bench: Workbench, plan: Plan, steps: list[PlannedStep], unlocks: Unlocks, planned_now: bool
) -> list[_Named]:
    kinds = [s.kind for s in steps]
    registry = bench.registry
    target, manifest_sha256 = registry.load(plan.to_version)
    checks: list[_Named] = [_Named("the store", lambda: check_store_writable(bench.store))]
    if "stack" in kinds:
        started = unlocks.take_stack_check(target.version, manifest_sha256)
        checks.append(
            _Named(
                "the stack step",
                started or (lambda: check_stack_step(bench, target, manifest_sha256, unlocks)),
            )
        )
    if "artifact" in kinds and target.artifact is not None:
        checks.append(
            _Named("the artifact", lambda: check_blobs(bench.store, target, ("artifact",)))
        )
    # Traffic that moves before the stack step lands on what runs now.
    before_stack = kinds[: kinds.index("stack")] if "stack" in kinds else kinds
    receiving: dict[str, Any] = {}
    for step in steps:
        if step.kind in ("traffic", "dns") and step.kind in before_stack:
            receiving.update(step.params)
    database = ("db-restore",) if planned_now else ("db-snapshot", "db-restore")
    aws = [s for s in steps if s.kind in database]
    # The planner's read of routable targets stands for ours only while it is seconds old
    # (a confirmation prompt can sit between plan and preflight).
    fresh = planned_now and _age_s(plan.created_at) <= PLANNED_READ_FRESH_S
    if receiving or aws:
        checks.append(
            _Named("the cloud", lambda: check_cloud(bench, receiving, aws, planned_now=fresh))
        )
    variables = {
        str(s.params.get("database_url_env") or "ROLLBACK_DATABASE_URL")
        for s in steps
        if s.kind in ("migrate", "integrity")
    }
    checks += [_database_check(v, bench.environ) for v in sorted(variables)]
    return checks


def _age_s(created_at: str) -> float:
    """Seconds since a journal timestamp (infinite when unreadable)."""
    from rollback.journal import iso, seconds_between, utc_now

    try:
        age = seconds_between(created_at, iso(utc_now()))
    except (TypeError, ValueError):  # unparsable, or without a time zone
        return float("inf")
    return float("inf") if age is None else age


def _database_check(variable: str, environ: Mapping[str, str]) -> _Named:
    return _Named(f"the database in {variable}", lambda: check_database(variable, environ))


# -- the store -------------------------------------------------------------------


def check_store_writable(store: Store) -> list[Evidence]:
    """A local store's directory (or the nearest existing parent) must be writable."""
    root = getattr(store, "root", None)
    if root is None:  # S3: the lock's conditional write is the first write and says why
        return [evidence("store", {"url": store.url}, True, "not a local directory: not probed")]
    path = Path(root)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the store {store.url} is not writable ({probe} refuses writes), so the run could not journal; fix its permissions; {NOTHING_CHANGED}.",
            store=store.url,
        )
    return [evidence("store", {"url": store.url, "writable": True}, True)]


def check_blobs(store: Store, release: Release, names: Iterable[str]) -> list[Evidence]:
    """Re-hash the release's named blobs; IntegrityError (exit 4) on a mismatch."""
    found = []
    for name in names:
        ref = getattr(release, name)
        if ref is None:
            continue
        try:
            store.verify_blob(ref.sha256)
        except NotFound as exc:
            raise IntegrityError(
                f"the {name} of release {release.version} (blob {ref.sha256[:12]}) is missing from the store; restore it from a backup; {NOTHING_CHANGED}.",
                version=release.version,
                sha256=ref.sha256,
            ) from exc
        except IntegrityError as exc:
            raise IntegrityError(
                f"the {name} of release {release.version} is corrupt in the store ({exc.message.rstrip('.')}); {NOTHING_CHANGED}.",
                version=release.version,
                sha256=ref.sha256,
            ) from exc
        found.append(evidence("store.verify_blob", {"what": name, "sha256": ref.sha256}, True))
    return found


def checkpoint_problem(data: bytes) -> str | None:
    """Why `data` is not a well-formed Pulumi deployment (version 3), or None when it is.

    A plain-JSON structural check: no engine, no pulumi.
    """
    try:
        doc = json.loads(data)
    except ValueError as exc:
        return f"it is not JSON ({exc})"
    if not isinstance(doc, dict) or doc.get("version") != 3:
        return "it is not a Pulumi deployment of version 3"
    deployment = doc.get("deployment")
    if not isinstance(deployment, dict):
        return "it has no `deployment` object"
    resources = deployment.get("resources")
    if resources is None:
        resources = []
    if not isinstance(resources, list):
        return "its `resources` is not a list"
    for i, res in enumerate(resources):
        if not isinstance(res, dict) or not all(
            isinstance(res.get(k), str) and res.get(k) for k in ("urn", "type")
        ):
            return f"resource #{i} has no `urn` and `type`"
        for k in ("inputs", "outputs"):
            if k in res and not isinstance(res[k], dict):
                return f"resource {res['urn']} has a `{k}` that is not an object"
    providers = deployment.get("secrets_providers")
    if providers is not None and not isinstance(providers, dict):
        return "its `secrets_providers` is not an object"
    return None


def _secrets_state_of(data: bytes) -> str | None:
    doc = json.loads(data)
    providers = doc["deployment"].get("secrets_providers") or {}
    state = providers.get("state") if isinstance(providers, dict) else None
    if providers.get("type") == "passphrase" and isinstance(state, dict):
        salt = state.get("salt")
        return str(salt) if salt else None
    return None


# -- the stack step ----------------------------------------------------------------


def check_stack_step(
    bench: Workbench,
    release: Release,
    manifest_sha256: str | None = None,
    unlocks: Unlocks | None = None,
) -> list[Evidence]:
    """Everything the stack step needs: intact state, secrets, an engine, the repository.

    Its own parts run at once too: the passphrase's key derivation takes most
    of a second by design, and the rest is git and HTTP.
    """
    store = bench.store
    if release.checkpoint is None or release.config is None:
        raise NotFound(
            f"release {release.version} carries no {'checkpoint' if release.checkpoint is None else 'stack config'}, so the stack step cannot re-apply it; {NOTHING_CHANGED}.",
            version=release.version,
        )
    found = check_blobs(store, release, ("checkpoint", "config", "topology"))
    problem = checkpoint_problem(store.get_blob(release.checkpoint.sha256))
    if problem:
        raise IntegrityError(
            f"the checkpoint of release {release.version} is malformed: {problem}; {NOTHING_CHANGED}.",
            version=release.version,
        )
    config = json.loads(store.get_blob(release.config.sha256))
    engine = engine_kind(bench)
    found.append(evidence("engine", {"engine": engine}, True))
    states = []
    live = _live_checkpoint(bench, engine)
    if live is not None:
        key, data = live
        problem = checkpoint_problem(data)
        if problem:
            raise IntegrityError(
                f"the stack's state {key} in the store is malformed: {problem}; restore it from a backup or `rollback stack up`; {NOTHING_CHANGED}.",
                key=key,
            )
        found.append(evidence("store.get_doc", {"key": key, "well_formed": True}, True))
        state = _secrets_state_of(data)
        if state and state != config.get("encryption_salt"):
            states.append(("the stack's current state", state))
    subchecks = [
        _Named(
            "the secrets",
            lambda: check_secrets(
                release, config, engine, bench.environ, extra_states=states, unlocks=unlocks
            ),
        ),
        _Named("the engine", lambda: check_engine(bench, engine)),
        _Named("the repository", lambda: check_repository(release, manifest_sha256)),
    ]
    return found + run_checks(subchecks)


def _live_checkpoint(bench: Workbench, engine: str) -> tuple[str, bytes] | None:
    """The embedded engine's current state document, when there is one (pulumi keeps its own)."""
    if engine != "embedded":
        return None
    project, stack = bench.registry.stack.split("/", 1)
    key = f"stacks/{project}/{stack}/checkpoint.json"
    try:
        return key, bench.store.get_doc(key)
    except NotFound:
        return None


def engine_kind(bench: Workbench) -> str:
    """The name of the engine the stack step will use, without building it (when the bench can say)."""
    choose = getattr(bench, "engine_kind", None)
    if choose is not None:
        return str(choose())
    return str(getattr(bench.engine(), "name", "unknown"))


def check_engine(bench: Workbench, engine: str) -> list[Evidence]:
    """The chosen engine can run: the Pulumi CLI on PATH, or the embedded cloud answering."""
    if engine == "pulumi":
        path = shutil.which("pulumi")
        if path is None:
            from rollback.engine.pulumi_cli import CLI_MISSING

            raise ConfigError(CLI_MISSING.rstrip(".") + f"; {NOTHING_CHANGED}.")
        return [evidence("engine.pulumi", {"cli": path}, True)]
    if engine == "embedded":
        from rollback.aws.endpoint import is_embedded_endpoint, is_loopback_url

        url = bench.clients.endpoint_url
        if url and is_embedded_endpoint(url):
            return [evidence("engine.embedded", {"endpoint_url": url, "answers": True}, True)]
        if url is None or not is_loopback_url(url):
            # Chosen explicitly against real AWS: select_engine warns; nothing to probe.
            return [
                evidence("engine.embedded", {"endpoint_url": url}, True, "not the embedded cloud")
            ]
        raise ConfigError(
            f"the embedded engine needs the embedded cloud, and nothing answers at {url}; run `rollback cloud start` (same --store) or fix AWS_ENDPOINT_URL; {NOTHING_CHANGED}.",
            endpoint_url=url,
        )
    return [evidence("engine", {"engine": engine}, True, "no precondition known")]


# -- secrets ---------------------------------------------------------------------


def passphrase(environ: Mapping[str, str]) -> str | None:
    """PULUMI_CONFIG_PASSPHRASE, or the contents of PULUMI_CONFIG_PASSPHRASE_FILE; None when neither is set."""
    phrase = environ.get("PULUMI_CONFIG_PASSPHRASE")
    if phrase is not None:
        return phrase
    path = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"PULUMI_CONFIG_PASSPHRASE_FILE names {path}, which cannot be read ({exc.strerror}); {NOTHING_CHANGED}.",
        ) from exc


def check_secrets(
    release: Release,
    config: Mapping[str, Any],
    engine: str,
    environ: Mapping[str, str],
    *,
    extra_states: Sequence[tuple[str, str]] = (),
    unlocks: Unlocks | None = None,
) -> list[Evidence]:
    """The passphrase decrypts the check value of the release's recorded secrets (and the live state's).

    Pulumi's passphrase provider (pkg/secrets/passphrase/manager.go): the
    `encryptionsalt` holds "pulumi" encrypted with the key, so a wrong
    passphrase is known before anything is decrypted. Other providers: the
    pulumi engine's CLI decrypts them itself; the embedded engine cannot.
    """
    secrets = config.get("secrets") or {}
    salt = config.get("encryption_salt")
    if not secrets and not extra_states:
        return [evidence("secrets", {"secrets": 0}, True)]
    whose = f"release {release.version}'s stack config"
    if secrets and not salt:
        provider = str(config.get("secrets_provider") or "a non-passphrase secrets provider")
        if engine == "pulumi":
            return [evidence("secrets", {"provider": provider}, True, "the Pulumi CLI decrypts")]
        raise ConfigError(
            f"{whose} holds secrets of {provider}, which the {engine} engine cannot decrypt (it knows only the passphrase provider); use --engine pulumi; {NOTHING_CHANGED}.",
            provider=provider,
        )
    phrase = passphrase(environ)
    if phrase is None:
        raise ConfigError(
            f"{whose} holds {len(secrets)} secret(s) and PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not set; set it to the stack's passphrase; {NOTHING_CHANGED}.",
            variable="PULUMI_CONFIG_PASSPHRASE",
        )
    states = ([(whose, str(salt))] if salt else []) + list(extra_states)
    found = []
    unlocks = unlocks or Unlocks()
    for what, state in states:
        _unlock(phrase, state, what, unlocks)
        found.append(evidence("secrets.passphrase", {"of": what, "unlocks": True}, True))
    return found


def _unlock(phrase: str, state: str, what: str, unlocks: Unlocks | None = None) -> None:
    try:
        opens = (unlocks or Unlocks()).opens(phrase, state)
    except ConfigError as exc:  # a malformed salt
        raise ConfigError(f"{what}: {exc.message.rstrip('.')}; {NOTHING_CHANGED}.") from exc
    if not opens:
        raise ConfigError(
            f"the passphrase in PULUMI_CONFIG_PASSPHRASE does not decrypt the secrets of {what}; set the stack's passphrase; {NOTHING_CHANGED}.",
            variable="PULUMI_CONFIG_PASSPHRASE",
        )


# -- git -------------------------------------------------------------------------


def _git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise ConfigError(
            f"git is not on PATH, and the stack step checks out the release's commit with it; {NOTHING_CHANGED}."
        )
    return subprocess.run(
        [git, "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )


def check_repository(release: Release, manifest_sha256: str | None = None) -> list[Evidence]:
    """The release's commit and tag are in its repository, and a worktree can be made there.

    One `git cat-file --batch` answers for the commit, its Pulumi.yaml and the
    tag, which must point at the commit and (annotated, as `release record`
    writes it) hold the manifest's sha256. Raises IntegrityError when the tag
    moved, NotFound when the commit is gone, ConfigError otherwise.
    """
    repo = Path(release.repo)
    if not repo.is_dir():
        raise ConfigError(
            f"release {release.version} was recorded from {repo}, which does not exist here; the stack step checks its commit out from there; {NOTHING_CHANGED}.",
            repo=str(repo),
        )
    common = _common_dir(repo)
    if common is None:
        raise ConfigError(
            f"{repo}, where release {release.version} was recorded, is not a git repository; {NOTHING_CHANGED}.",
            repo=str(repo),
        )
    objects = _cat_file(
        repo,
        [
            f"{release.commit}^{{commit}}",
            f"{release.commit}:Pulumi.yaml",
            f"refs/tags/{release.tag}",
        ],
    )
    commit, project, tag = objects
    if commit is not None and commit[0] != release.commit:
        commit = None  # an abbreviated or symbolic name resolved elsewhere: not the recorded commit
    if commit is None:
        raise NotFound(
            f"commit {release.commit[:12]} of release {release.version} is not in {repo} (was history rewritten?); fetch it; {NOTHING_CHANGED}.",
            commit=release.commit,
        )
    if project is None:
        raise ConfigError(
            f"commit {release.commit[:12]} of release {release.version} holds no Pulumi.yaml at the root of {repo}; {NOTHING_CHANGED}.",
        )
    found = [
        evidence(
            "git.cat-file", {"repo": str(repo), "commit": release.commit, "pulumi_yaml": True}, True
        )
    ]
    if tag is not None:
        found.append(_tag_evidence(release, tag, manifest_sha256))
    for directory, why in (
        (common, "the worktree's bookkeeping"),
        (Path(tempfile.gettempdir()), "the worktree"),
    ):
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigError(
                f"{directory} is not writable, and the stack step writes {why} there to check out {release.tag}; {NOTHING_CHANGED}.",
            )
    found.append(evidence("git.worktree", {"git_dir": str(common), "writable": True}, True))
    return found


def _common_dir(repo: Path) -> Path | None:
    """The repository's git directory shared by its worktrees (None: not a repository).

    A plain clone's `.git` directory is read without running git; a worktree
    or submodule (`.git` is a file) asks `git rev-parse`.
    """
    dot_git = repo / ".git"
    if dot_git.is_dir() and (dot_git / "HEAD").is_file():
        return dot_git.resolve()
    where = _git(repo, "rev-parse", "--git-common-dir")
    return (repo / where.stdout.strip()).resolve() if where.returncode == 0 else None


def _cat_file(repo: Path, names: list[str]) -> list[tuple[str, str, str] | None]:
    """(sha, type, contents) of each named object (None when missing), from one `git cat-file --batch`."""
    done = _git(repo, "cat-file", "--batch", stdin="".join(f"{n}\n" for n in names))
    if done.returncode != 0:
        raise ConfigError(
            f"git cat-file failed in {repo}: {done.stderr.strip()[:200]}; {NOTHING_CHANGED}."
        )
    out = done.stdout
    found: list[tuple[str, str, str] | None] = []
    for _ in names:
        header, _, out = out.partition("\n")
        parts = header.split()
        if len(parts) != 3 or parts[1] == "missing":
            found.append(None)
            continue
        size = int(parts[2])
        # Text mode: sizes are bytes; the objects read here are ASCII headers and YAML.
        body, out = out[:size], out[size + 1 :]
        found.append((parts[0], parts[1], body))
    return found


def _tag_evidence(
    release: Release, tag: tuple[str, str, str], manifest_sha256: str | None
) -> Evidence:
    sha, kind, body = tag
    headers, _, message = body.partition("\n\n")
    fields = dict(line.split(" ", 1) for line in headers.splitlines() if " " in line)
    points_at = fields.get("object", "") if kind == "tag" else sha
    if points_at != release.commit:
        raise IntegrityError(
            f"tag {release.tag} points at {points_at[:12] or '?'}, not at release {release.version}'s commit {release.commit[:12]}: the tag moved; {NOTHING_CHANGED}.",
            tag=release.tag,
        )
    recorded = kind == "tag" and manifest_sha256 and "manifest-sha256:" in message
    if recorded and f"manifest-sha256: {manifest_sha256}" not in message:
        raise IntegrityError(
            f"the manifest of release {release.version} does not match the sha256 its tag {release.tag} holds: it was edited; {NOTHING_CHANGED}.",
            tag=release.tag,
        )
    return evidence("git.tag", {"tag": release.tag, "commit": release.commit}, True)


def tagger_environment(repo: Path) -> dict[str, str]:
    """Environment for `git tag`: empty when git knows an identity, else the fallback identity.

    The fallback (README, "Releases and git identity") is the OS user at
    `rollback.invalid`, a domain that never receives mail (RFC 2606): the tag
    still says who recorded the release, and recording never fails for want
    of `git config user.email`.
    """
    if _git(repo, "var", "GIT_COMMITTER_IDENT").returncode == 0:
        return {}
    from rollback.store.lock import current_user

    user = current_user() or "rollback"
    name = user.split("@", 1)[0] or "rollback"
    email = f"{name}@{FALLBACK_EMAIL_DOMAIN}"
    return {
        "GIT_COMMITTER_NAME": f"{name} (via rollback)",
        "GIT_COMMITTER_EMAIL": email,
        "GIT_AUTHOR_NAME": f"{name} (via rollback)",
        "GIT_AUTHOR_EMAIL": email,
    }


# -- the cloud -------------------------------------------------------------------


def check_cloud(
    bench: Workbench,
    receiving: Mapping[str, Any],
    db_steps: Sequence[PlannedStep],
    *,
    planned_now: bool = False,
) -> list[Evidence]:
    """Receiving colours have routable targets; the database and the snapshot to restore exist.

    `planned_now`: the routable targets the planner has just read for this
    plan (the traffic step's `routable`) are the answer; the traffic step
    checks them once more right before its write (on the plan's own read
    when that was made under the run's lock).
    """
    found: list[Evidence] = []
    if receiving:
        from rollback.aws.elbv2 import LoadBalancing

        topology = Topology.from_dict(receiving["topology"])
        elbv2 = LoadBalancing(bench.clients("elbv2"))
        planned = dict(receiving.get("routable") or {}) if planned_now else {}
        for colour, weight in sorted(receiving["weights"].items()):
            if int(weight) <= 0:
                continue
            arn = topology.target_groups.get(colour)
            if colour in planned:
                registered, routable = None, int(planned[colour])
                said = "read by the planner for this plan"
            else:
                targets = elbv2.target_health(arn) if arn else []
                registered, routable = len(targets), sum(1 for t in targets if t.routable)
                said = ""
            if not routable:
                counted = f" ({registered} registered)" if registered is not None else ""
                raise UsageError(
                    f"colour {colour} would receive traffic first but has no routable target{counted}; bring it up or roll back without traffic first; {NOTHING_CHANGED}.",
                    color=colour,
                )
            found.append(
                evidence(
                    "elbv2.describe_target_health",
                    {"color": colour, "routable": routable},
                    True,
                    said,
                )
            )
    if db_steps:
        from rollback.aws.databases import databases
        from rollback.aws.rds import Rds

        rds = Rds(bench.clients("rds"))
        for step in db_steps:
            db = databases(rds, str(step.params.get("db_kind", "instance")))
            instance_id = str(step.params["instance_id"])
            instance = db.find(instance_id)
            if instance is None:
                raise NotFound(
                    f"{db.noun} {instance_id} does not exist, and the {step.name} step works on it; {NOTHING_CHANGED}.",
                    instance_id=instance_id,
                )
            found.append(
                evidence(
                    db.describe_api,
                    {"instance_id": instance_id, "status": instance.status},
                    True,
                )
            )
            snapshot_id = step.params.get("snapshot_id") if step.kind == "db-restore" else None
            if snapshot_id:
                snap = db.find_snapshot(str(snapshot_id))
                status = snap.status if snap else None
                if status != "available":
                    raise NotFound(
                        f"snapshot {snapshot_id}, which the {step.name} step restores, is {status or 'missing'}, not available; {NOTHING_CHANGED}.",
                        snapshot_id=snapshot_id,
                    )
                found.append(
                    evidence(
                        db.snapshot_api,
                        {"snapshot_id": snapshot_id, "status": status},
                        True,
                    )
                )
    return found


# -- the database ------------------------------------------------------------------


def check_database(variable: str, environ: Mapping[str, str]) -> list[Evidence]:
    """The variable holds a database URL that answers `SELECT 1` within a few seconds.

    The URL is a credential: it never appears in the evidence or the error.
    """
    from rollback.steps.migrate import database_label, mask_secrets, url_secrets

    url = environ.get(variable, "")
    if not url:
        raise ConfigError(
            f"{variable} is not set, and the migrate/integrity steps reach the database through it; set it to the database URL; {NOTHING_CHANGED}.",
            variable=variable,
        )
    label = database_label(url)
    try:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        backend = sa.engine.make_url(url).get_backend_name()
        args: dict[str, Any] = (
            {"connect_timeout": DB_CONNECT_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}
        )
        engine = sa.create_engine(url, connect_args=args, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding
        reason = mask_secrets(
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, url_secrets(url)
        )
        raise ConfigError(
            f"the database in {variable} ({label}) does not answer SELECT 1: {reason[:200]}; {NOTHING_CHANGED}.",
            variable=variable,
        ) from None
    return [evidence("database.select_1", {"variable": variable, "database": label}, True)]


# -- release record ------------------------------------------------------------------


def check_record(
    store: Store, repo_dir: Path, stack: str, environ: Mapping[str, str] | None = None
) -> list[Evidence]:
    """What `release record` needs before it snapshots anything: a writable store, a
    repository git can tag (with an identity or the fallback), and a passphrase that
    unlocks the stack config's secrets.

    Raises ConfigError (exit 2) with one sentence.
    """
    env = os.environ if environ is None else environ

    def tagging() -> list[Evidence]:
        common = _common_dir(repo_dir)
        if common is None:
            raise ConfigError(f"{repo_dir} is not a git repository; {NOTHING_CHANGED}.")
        if not os.access(common, os.W_OK | os.X_OK):
            raise ConfigError(
                f"{common} is not writable, so the release tag cannot be written; fix its permissions; {NOTHING_CHANGED}."
            )
        fallback = tagger_environment(repo_dir)
        ident = fallback.get("GIT_COMMITTER_EMAIL", "git's configured identity")
        return [evidence("git.var", {"tagger": ident, "fallback": bool(fallback)}, True)]

    def secrets() -> list[Evidence]:
        name = stack.split("/", 1)[1]
        path = repo_dir / f"Pulumi.{name}.yaml"
        if not path.exists():
            return [evidence("secrets", {"config": str(path), "exists": False}, True)]
        import yaml

        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}; {NOTHING_CHANGED}.") from exc
        raw = doc.get("config") if isinstance(doc, dict) else None
        secure = [k for k, v in (raw or {}).items() if isinstance(v, dict) and "secure" in v]
        if not secure:
            return [evidence("secrets", {"config": str(path), "secrets": 0}, True)]
        salt = doc.get("encryptionsalt")
        if not salt:
            return [
                evidence(
                    "secrets",
                    {"provider": doc.get("secretsprovider")},
                    True,
                    "not the passphrase provider",
                )
            ]
        phrase = passphrase(env)
        if phrase is None:
            raise ConfigError(
                f"{path} holds {len(secure)} secret(s) and PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not set; a release whose secrets cannot be unlocked cannot be rolled back to; {NOTHING_CHANGED}.",
                variable="PULUMI_CONFIG_PASSPHRASE",
            )
        _unlock(phrase, str(salt), str(path))
        return [evidence("secrets.passphrase", {"of": str(path), "unlocks": True}, True)]

    return run_checks(
        [
            _Named("the store", lambda: check_store_writable(store)),
            _Named("git", tagging),
            _Named("the secrets", secrets),
        ]
    )
