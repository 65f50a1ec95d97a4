"""The release registry: record, list, show, mark (verify, changelog, prune: release_upkeep).

A release is an immutable manifest in the store (its sha256 is written into
an annotated git tag `vX.Y.Z` on the IaC commit) plus an append-only status
history. Blobs (artifact, checkpoint, config, topology) are referenced by hash.

Trust model of a manifest: every read (`load`, hence show, list, plan, to,
resume, verify, ...) checks it against two anchors, and any mismatch is an
IntegrityError (exit 4) before anything uses it.

1. The digest record `releases/<stack>/<version>/manifest.sha256`, written
   create-only before the manifest at record time. It catches any edit of
   the manifest alone: a hand-edited `commit`, a script gone wrong, bit rot.
2. The annotated tag, whenever its repository is reachable (the registry's
   `repo_dir` from --repo, else the path the manifest recorded, else the
   working directory): the tag's message must hold the manifest's sha256 and
   the tag must point at the manifest's commit. The tag lives outside the
   store, so it catches an edit of both store documents too.

A store writer who also rewrites the tag in the repository is beyond what
hashes without a key can catch; protect the repository's tags (protected
refs, signed tags) if that is the threat. A repository that is reachable but
lacks the tag (a clone without tags) leaves anchor 1 alone in charge; a
release recorded before the digest record existed needs its tag (anchor 2)
and is refused when no repository holding it is reachable.

Checkpoints get the same care (`check_checkpoints`): the release's checkpoint
blob must hash to its reference; the embedded engine's live state must match
the sha256 sealed into it when the engine wrote it (`seal_live_state`); both
must have the shape of a Pulumi deployment v3 whose references resolve.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rollback.errors import (
    AlreadyExists,
    ConfigError,
    IntegrityError,
    NotFound,
    RollbackError,
    UsageError,
)
from rollback.store import BlobRef
from rollback.store.hashing import sha256_of

if TYPE_CHECKING:
    import git

    from rollback.models import Topology
    from rollback.store import Store

STATUSES = ("candidate", "stable", "bad")
LAST_STABLE = "last-stable"
RELEASE_SCHEMA = 1

# semver.org's grammar, with an optional leading "v".
_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,  # \d would otherwise accept "1.1٢.0" (Arabic-Indic digits)
)


# A version names a store directory and a git tag (each a file name, at most 255 bytes);
# semver sets no bound, so set one well inside both.
MAX_VERSION = 128


def parse_version(text: str) -> str:
    """Normalise `v1.4.0` or `1.4.0` to `1.4.0`; raises UsageError if not semantic."""
    if len(text.strip()) > MAX_VERSION:
        raise UsageError(
            f"version {text[:40]!r}... is {len(text.strip())} characters long; "
            f"use a semantic version of at most {MAX_VERSION} characters, such as 1.4.0.",
            version=text[:MAX_VERSION],
        )
    if not _SEMVER.match(text.strip()):
        raise UsageError(
            f"version {text!r} is not a semantic version; use MAJOR.MINOR.PATCH such as 1.4.0 or v1.4.0-rc.1.",
            version=text,
        )
    return text.strip().removeprefix("v")


def version_key(version: str) -> tuple[Any, ...]:
    """A sort key with semver precedence: a prerelease sorts before its release."""
    m = _SEMVER.match(version)
    if not m:
        return (-1,)
    core = (int(m["major"]), int(m["minor"]), int(m["patch"]))
    if not m["pre"]:
        return (*core, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m["pre"].split("."))
    return (*core, 0, ids)


def tag_name(version: str) -> str:
    return f"v{version}"


@dataclass(frozen=True)
class StatusChange:
    """One entry of a release's status history (never rewritten, only appended)."""

    status: str  # candidate | stable | bad
    reason: str
    at: str  # ISO 8601, UTC
    by: str

    FIELDS: ClassVar[tuple[str, ...]] = ("status", "reason", "at", "by")


@dataclass(frozen=True)
class Release:
    """A recorded deploy: version, IaC commit, stored blobs and database snapshot.

    The manifest is immutable once written (its sha256 is in the git tag);
    status lives in a separate append-only history.
    """

    version: str  # normalised, without the leading "v"
    stack: str  # PROJECT/STACK
    commit: str
    tag: str
    repo: str
    created_at: str
    created_by: str
    artifact: BlobRef
    artifact_name: str
    checkpoint: BlobRef | None = None
    config: BlobRef | None = None
    topology: BlobRef | None = None
    db_snapshot_id: str | None = None
    db_snapshot_at: str | None = None
    schema_revision: str | None = None
    migration_command: str | None = None
    integrity_checks: tuple[dict[str, Any], ...] = ()
    smoke_command: str | None = None
    color: str | None = None
    schema: int = RELEASE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["integrity_checks"] = list(self.integrity_checks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        """Build from a manifest; raises IntegrityError on an unknown schema or shape."""
        if data.get("schema") != RELEASE_SCHEMA:
            raise IntegrityError(
                f"release manifest has schema {data.get('schema')!r}, this toolkit reads "
                f"schema {RELEASE_SCHEMA}; upgrade rollback or check the store.",
            )
        try:
            blobs = {
                k: BlobRef.from_dict(data[k]) if data.get(k) else None
                for k in ("checkpoint", "config", "topology")
            }
            return cls(
                version=str(data["version"]),
                stack=str(data["stack"]),
                commit=str(data["commit"]),
                tag=str(data["tag"]),
                repo=str(data["repo"]),
                created_at=str(data["created_at"]),
                created_by=str(data["created_by"]),
                artifact=BlobRef.from_dict(data["artifact"]),
                artifact_name=str(data["artifact_name"]),
                db_snapshot_id=data.get("db_snapshot_id"),
                db_snapshot_at=data.get("db_snapshot_at"),
                schema_revision=data.get("schema_revision"),
                migration_command=data.get("migration_command"),
                integrity_checks=tuple(data.get("integrity_checks") or ()),
                smoke_command=data.get("smoke_command"),
                color=data.get("color"),
                checkpoint=blobs["checkpoint"],
                config=blobs["config"],
                topology=blobs["topology"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"release manifest is malformed ({exc}); check the store."
            ) from exc


@dataclass(frozen=True)
class ReleaseView:
    """A release with its current status, status history and manifest hash."""

    release: Release
    status: str
    history: tuple[StatusChange, ...]
    manifest_sha256: str
    current: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.release.to_dict(),
            "status": self.status,
            "history": [vars(h) for h in self.history],
            "manifest_sha256": self.manifest_sha256,
            "current": self.current,
        }


@dataclass(frozen=True)
class Attachments:
    """Stack state recorded with a release (filled in by the engine layer)."""

    checkpoint: bytes | None = None
    config: bytes | None = None
    topology: bytes | None = None
    db_snapshot_id: str | None = None
    db_snapshot_at: str | None = None
    schema_revision: str | None = None
    migration_command: str | None = None
    integrity_checks: tuple[dict[str, Any], ...] = ()
    smoke_command: str | None = None
    color: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _actor() -> str:
    import getpass  # record and mark only; getpass imports termios

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, indent=2).encode() + b"\n"


def open_repo(path: Path) -> git.Repo:
    """The git repository at `path`; raises UsageError if it is not one."""
    import git

    try:
        return git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise UsageError(
            f"{path} is not a git repository; pass --repo with the directory of your IaC repository.",
            repo=str(path),
        ) from exc


class Registry:
    """Releases of one stack (PROJECT/STACK) in one store.

    `repo_dir` is where the IaC repository is (--repo), used to check
    manifests against their tags; without it, the path each manifest
    recorded and then the working directory are tried.
    """

    def __init__(self, store: Store, stack: str, repo_dir: Path | None = None) -> None:
        self.store = store
        self.stack = stack
        self.repo_dir = repo_dir
        self._checked: dict[str, str] = {}  # version -> manifest sha256 that passed both anchors

    # -- keys -------------------------------------------------------------
    def _dir(self, version: str) -> str:
        return f"releases/{self.stack}/{version}/"

    def manifest_key(self, version: str) -> str:
        """The store key of `version`'s manifest."""
        return self._dir(version) + "manifest.json"

    def _digest_key(self, version: str) -> str:
        return self._dir(version) + "manifest.sha256"

    @property
    def _current_key(self) -> str:
        return f"releases/{self.stack}/current.json"

    # -- record -----------------------------------------------------------
    def record(
        self,
        version: str,
        artifact: Path,
        repo_dir: Path,
        *,
        commit: str | None = None,
        allow_dirty: bool = False,
        attachments: Attachments = Attachments(),
    ) -> ReleaseView:
        """Store the artifact and manifest, tag the commit and make the release current.

        Everything is checked before anything is written: a refused record
        leaves the store and the repository as they were.
        """
        version, repo, sha = self.check_record(
            version, artifact, repo_dir, commit=commit, allow_dirty=allow_dirty
        )
        tag = tag_name(version)
        ref = self.store.put_blob_file(artifact)
        blobs = {
            name: self._put_bytes(data)
            for name, data in (
                ("checkpoint", attachments.checkpoint),
                ("config", attachments.config),
                ("topology", attachments.topology),
            )
            if data is not None
        }
        release = Release(
            version=version,
            stack=self.stack,
            commit=sha,
            tag=tag,
            repo=str(Path(repo.working_dir).resolve()),
            created_at=_now(),
            created_by=_actor(),
            artifact=ref,
            artifact_name=artifact.name,
            db_snapshot_id=attachments.db_snapshot_id,
            db_snapshot_at=attachments.db_snapshot_at,
            schema_revision=attachments.schema_revision,
            migration_command=attachments.migration_command,
            integrity_checks=attachments.integrity_checks,
            smoke_command=attachments.smoke_command,
            color=attachments.color,
            checkpoint=blobs.get("checkpoint"),
            config=blobs.get("config"),
            topology=blobs.get("topology"),
        )
        manifest = _canonical(release.to_dict())
        digest = sha256_of(manifest)
        # The digest record first: a manifest is never visible without its anchor.
        self._put_digest(version, digest)
        # Create-only: of two writers recording the same version, one wins.
        self.store.put_doc(self.manifest_key(version), manifest, create_only=True)
        from rollback.preflight import tagger_environment

        try:
            # Without a git identity the tag is signed by the fallback (README).
            with repo.git.custom_environment(**tagger_environment(Path(repo.working_dir))):
                repo.create_tag(
                    tag,
                    ref=sha,
                    message=f"rollback release {tag} of {self.stack}\n\nmanifest-sha256: {digest}\n",
                )
        except Exception as exc:
            self.store.delete_doc(self.manifest_key(version))
            self.store.delete_doc(self._digest_key(version))
            import git

            if isinstance(exc, git.GitCommandError):
                said = (exc.stderr or "").strip().splitlines()
                raise ConfigError(
                    f"git could not write tag {tag} in {repo.working_dir}: {said[-1] if said else exc}; the release was not recorded."
                ) from exc
            raise
        self._append_status(version, "candidate", "recorded")
        self.set_current(version, "recorded")
        return self.show(version)

    def check_record(
        self,
        version: str,
        artifact: Path,
        repo_dir: Path,
        *,
        commit: str | None = None,
        allow_dirty: bool = False,
    ) -> tuple[str, git.Repo, str]:
        """Everything `record` checks, changing nothing: (normalised version, repo, commit sha).

        Raises UsageError, NotFound or AlreadyExists with one sentence.
        """
        version = parse_version(version)
        repo = open_repo(repo_dir)
        if not allow_dirty and repo.is_dirty(untracked_files=True):
            raise UsageError(
                f"the repository {repo_dir} has uncommitted changes; commit them or pass --allow-dirty.",
            )
        sha = self._resolve_commit(repo, commit or "HEAD")
        tag = tag_name(version)
        if any(t.name == tag for t in repo.tags):
            raise AlreadyExists(
                f"tag {tag} already exists in {repo_dir}; choose a new version.", version=version
            )
        if self.store.has_doc(self.manifest_key(version)):
            raise AlreadyExists(
                f"release {version} of {self.stack} is already recorded; choose a new version.",
                version=version,
            )
        _check_artifact(artifact)
        return version, repo, sha

    def _put_digest(self, version: str, digest: str) -> None:
        """Write the manifest's digest record (create-only).

        A record without a manifest is what a record killed half-way leaves
        (check_record saw no manifest): that one is replaced, conditionally.
        """
        doc = _canonical({"version": version, "manifest_sha256": digest})
        key = self._digest_key(version)
        try:
            self.store.put_doc(key, doc, create_only=True)
        except AlreadyExists:
            if self.store.has_doc(self.manifest_key(version)):
                raise
            if not self.store.swap_doc(key, self.store.get_doc(key), doc):
                raise AlreadyExists(
                    f"release {version} of {self.stack} is being recorded by someone else; choose a new version.",
                    version=version,
                ) from None

    def _put_bytes(self, data: bytes) -> BlobRef:
        import io

        return self.store.put_blob(io.BytesIO(data))

    @staticmethod
    def _resolve_commit(repo: git.Repo, rev: str) -> str:
        import git

        try:
            return str(repo.commit(rev).hexsha)
        except (git.BadName, ValueError) as exc:
            raise UsageError(
                f"commit {rev!r} does not exist in {repo.working_dir}; pass an existing --commit."
            ) from exc

    # -- read ---------------------------------------------------------------
    def versions(self) -> list[str]:
        """Recorded versions, newest (highest semver precedence) first."""
        found = {
            key.split("/")[-2]
            for key in self.store.list_docs(f"releases/{self.stack}/")
            if key.endswith("/manifest.json")
        }
        return sorted(found, key=version_key, reverse=True)

    def load(self, version: str) -> tuple[Release, str]:
        """The release and its manifest's sha256, checked against its digest record and tag.

        Raises NotFound, or IntegrityError when the manifest is not what was
        recorded (see the module docstring for what is checked).
        """
        version = self.resolve(version)
        data = self.store.get_doc(self.manifest_key(version))
        digest = sha256_of(data)
        recorded = self._recorded_digest(version)
        if recorded is not None and recorded != digest:
            raise IntegrityError(
                f"the manifest of release {version} of {self.stack} was changed after it was recorded: "
                f"it hashes to {digest[:12]}, its digest record says {recorded[:12]}; "
                "restore it from a backup of the store (`rollback release verify` checks the rest).",
                version=version,
                manifest_sha256=digest,
                recorded_sha256=recorded,
            )
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise IntegrityError(
                f"the manifest of release {version} is not valid JSON ({exc.msg}); restore it from a backup or record again.",
                version=version,
            ) from exc
        if not isinstance(doc, dict):
            raise IntegrityError(f"the manifest of release {version} is not a JSON object.")
        release = Release.from_dict(doc)
        if self._checked.get(version) != digest:
            self._check_tag(release, digest, anchored=recorded is not None)
            self._checked[version] = digest
        return release, digest

    def _recorded_digest(self, version: str) -> str | None:
        try:
            raw = self.store.get_doc(self._digest_key(version))
        except NotFound:
            return None
        try:
            value = json.loads(raw)["manifest_sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"the digest record of release {version} of {self.stack} is unreadable ({exc}); "
                "restore it from a backup of the store.",
                version=version,
            ) from exc
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
            raise IntegrityError(
                f"the digest record of release {version} of {self.stack} holds no sha256; "
                "restore it from a backup of the store.",
                version=version,
            )
        return value

    def _check_tag(self, release: Release, digest: str, *, anchored: bool) -> None:
        """Check the manifest against its annotated tag where a repository holding it is reachable."""
        try:
            here: Path | None = Path.cwd()
        except OSError:  # the working directory was deleted under us
            here = None
        candidates = [p for p in (self.repo_dir, Path(release.repo), here) if p is not None]
        for path in candidates:
            found = read_tag(path, release.tag)
            if found is None:
                continue
            commit, message = found
            where = f"tag {release.tag} in {path}"
            if commit != release.commit:
                raise IntegrityError(
                    f"release {release.version}: {where} points at {commit[:12]}, the release "
                    f"recorded {release.commit[:12]}; the manifest or the tag was changed.",
                    version=release.version,
                )
            holds = re.search(r"^manifest-sha256: ([0-9a-f]{64})$", message, re.MULTILINE)
            if holds is None or holds.group(1) != digest:
                said = holds.group(1)[:12] if holds else "no manifest sha256"
                raise IntegrityError(
                    f"the manifest of release {release.version} does not match {where}: the tag "
                    f"holds {said}, the manifest hashes to {digest[:12]}; the manifest was "
                    "changed after it was recorded.",
                    version=release.version,
                )
            return
        if not anchored:
            raise IntegrityError(
                f"release {release.version} of {self.stack} has no digest record and no reachable "
                f"repository holds its tag {release.tag} (tried {', '.join(map(str, candidates))}); "
                "pass --repo with the IaC repository so the tag can vouch for the manifest.",
                version=release.version,
            )

    def topology(self, release: Release) -> Topology:
        """The topology recorded with `release` (hash-checked); raises NotFound when it has none."""
        if release.topology is None:
            raise NotFound(
                f"release {release.version} carries no topology; record releases after `rollback stack up` so they hold the stack's `rollback` output."
            )
        from rollback.models import Topology  # runs import it; listing releases does not

        return Topology.from_dict(json.loads(self.store.get_blob(release.topology.sha256)))

    def history(self, version: str) -> tuple[StatusChange, ...]:
        keys = self.store.list_docs(self._dir(version) + "status/")
        changes = []
        for key in keys:
            doc = self._fields(key, f"a status record of release {version}", StatusChange.FIELDS)
            changes.append(StatusChange(**doc))
        return tuple(changes)

    def _fields(self, key: str, what: str, names: tuple[str, ...]) -> dict[str, str]:
        """The string fields `names` of the document at `key`; IntegrityError (exit 4) naming
        `what` it is when it is not JSON or lacks one, not a KeyError from deep inside."""
        problem: str | None = None
        try:
            doc = json.loads(self.store.get_doc(key))
        except ValueError as exc:
            doc, problem = None, f"it is not JSON: {exc}"
        else:
            problem = None if isinstance(doc, dict) else "it is not a JSON object"
        if problem is None:
            wrong = [n for n in names if not isinstance(doc.get(n), str)]
            if "status" in names and doc.get("status") not in STATUSES:
                wrong.append("status")
            if wrong:
                problem = f"its {wrong[0]} is {doc.get(wrong[0])!r}"
        if problem is not None:
            raise IntegrityError(
                f"{what} of {self.stack} is unreadable ({problem}); restore it from a backup "
                "of the store.",
                key=key,
            )
        return {n: doc[n] for n in names}

    def show(self, version: str) -> ReleaseView:
        release, digest = self.load(version)
        history = self.history(release.version)
        status = history[-1].status if history else "candidate"
        return ReleaseView(release, status, history, digest, self.current() == release.version)

    def views(self) -> list[ReleaseView]:
        return [self.show(v) for v in self.versions()]

    def require_releases(self, asked: str | None = None) -> None:
        """Raise NotFound naming the stack and the store when no release is recorded.

        A mistyped --stack or a relative --store read from the wrong directory
        looks exactly like this; say where we looked.
        """
        if not self.versions():
            said = f"release {asked} is not recorded: " if asked else ""
            raise NotFound(
                f"{said}{self.stack} has no releases in {self.store.url}; check --stack and --store "
                "(or record one with `rollback release record VERSION --artifact FILE`).",
                stack=self.stack,
                store=self.store.url,
            )

    def resolve(self, version: str) -> str:
        """`last-stable` or a version to a recorded version; raises NotFound/UsageError."""
        if version == LAST_STABLE:
            for v in self.versions():
                if self.status(v) == "stable":
                    return v
            self.require_releases()
            raise NotFound(
                f"no release of {self.stack} is marked stable; mark one with `rollback release mark VERSION --stable`."
            )
        version = parse_version(version)
        if not self.store.has_doc(self.manifest_key(version)):
            self.require_releases(version)
            raise NotFound(
                f"release {version} of {self.stack} is not recorded; `rollback release list` shows the recorded ones.",
                version=version,
            )
        return version

    def rollback_target(self, version: str) -> str | None:
        """The version a rollback to `version` means; None when `last-stable` names none.

        `last-stable` for a rollback is the newest stable release that is not
        the current one (a promoted release that goes bad is stable and
        current; rolling back to it would do nothing). Reads statuses only:
        the chosen manifest is checked when it is loaded.
        """
        if version != LAST_STABLE:
            return version
        current = self.current()
        for candidate in self.versions():
            if candidate != current and self.status(candidate) == "stable":
                return candidate
        return None

    def status(self, version: str) -> str:
        """The release's latest status: candidate until it is marked."""
        keys = self.store.list_docs(self._dir(version) + "status/")
        if not keys:
            return "candidate"
        return self._fields(keys[-1], f"a status record of release {version}", ("status",))[
            "status"
        ]

    def current(self) -> str | None:
        if not self.store.has_doc(self._current_key):
            return None
        return self._fields(self._current_key, "the current-release record", ("version",))[
            "version"
        ]

    # -- write --------------------------------------------------------------
    def delete(self, version: str) -> None:
        """Delete the documents of `version` (manifest, digest record, status history); blobs stay."""
        for key in self.store.list_docs(self._dir(version)):
            self.store.delete_doc(key)

    def set_current(self, version: str, reason: str) -> None:
        """Record which release runs now (after a deploy or a rollback)."""
        doc = {"version": version, "at": _now(), "by": _actor(), "reason": reason}
        self.store.put_doc(self._current_key, _canonical(doc))

    def mark(self, version: str, status: str, reason: str) -> ReleaseView:
        """Append a status change; the history is never rewritten."""
        if status not in STATUSES:
            raise UsageError(f"status {status!r} is unknown; use one of {', '.join(STATUSES)}.")
        version = self.resolve(version)
        self._append_status(version, status, reason)
        return self.show(version)

    def _append_status(self, version: str, status: str, reason: str) -> None:
        prefix = self._dir(version) + "status/"
        doc = _canonical({"status": status, "reason": reason, "at": _now(), "by": _actor()})
        seq = len(self.store.list_docs(prefix))
        for _ in range(50):  # another writer may take the same number: take the next
            seq += 1
            try:
                self.store.put_doc(f"{prefix}{seq:06d}.json", doc, create_only=True)
                return
            except AlreadyExists:
                continue
        raise RollbackError(f"could not append a status to release {version}; retry.")


def integrity_checks_from(data: bytes) -> tuple[dict[str, Any], ...]:
    """Parse a JSON list of integrity checks (`name`, `sql`, and `expect` or `min`/`max`).

    Raises UsageError naming what is wrong.
    """
    try:
        checks = json.loads(data)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"the integrity checks are not valid JSON ({exc.msg}); pass a JSON list."
        ) from exc
    if not isinstance(checks, list) or not all(
        isinstance(c, dict) and c.get("name") and c.get("sql") for c in checks
    ):
        raise UsageError(
            "each integrity check needs a `name` and an `sql` query; pass a JSON list of them."
        )
    return tuple(checks)


def _check_artifact(path: Path) -> None:
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NotFound(
            f"artifact {path} does not exist; pass the built file with --artifact."
        ) from None
    except OSError as exc:
        raise UsageError(
            f"artifact {path} cannot be read ({exc.strerror}); fix --artifact."
        ) from None
    if stat.S_ISDIR(mode):
        raise UsageError(
            f"artifact {path} is a directory; archive it first (tar czf app.tgz DIR) and pass the file."
        )
    if not stat.S_ISREG(mode):  # /dev/zero would fill the store; a FIFO would block forever
        raise UsageError(
            f"artifact {path} is not a regular file (a device, pipe or socket); pass the built file."
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(
            f"artifact {path} cannot be read ({exc.strerror}); fix --artifact."
        ) from None


def read_tag(repo_dir: Path, tag: str) -> tuple[str, str] | None:
    """(commit, message) of the annotated tag `tag` in the repository at `repo_dir`.

    None when `repo_dir` is not a git repository, git is missing, or the tag
    is not there. A lightweight tag has an empty message. One `git
    for-each-ref`, no GitPython: reads stay cheap.
    """
    if not repo_dir.is_dir():
        return None
    import subprocess  # here: a store without releases never asks git

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(repo_dir),
                "for-each-ref",
                "--format=%(objecttype)%00%(objectname)%00%(*objectname)%00%(contents)",
                f"refs/tags/{tag}",
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    kind, name, peeled, message = done.stdout.split("\0", 3)
    if kind == "tag":
        return peeled, message
    return name, ""


def live_checkpoint_key(stack: str) -> str:
    """Where the embedded engine keeps a stack's live state (`engine.embedded.engine.checkpoint_key`)."""
    return f"stacks/{stack}/checkpoint.json"


LIVE_SEAL = "rollback_sha256"


def seal_live_state(checkpoint: dict[str, Any]) -> bytes:
    """The bytes the embedded engine stores as a stack's live state, sealed.

    The document is the checkpoint (`version`, `deployment`) plus
    `rollback_sha256`, the sha256 of its canonical JSON, so an edit made
    outside the toolkit, even one that keeps Pulumi's shape, is an
    IntegrityError on the next read (`check_live_seal`). One document, one
    atomic write: a crash never leaves a seal that disagrees with its state.
    """
    plain = json.loads(
        json.dumps(
            {"version": checkpoint["version"], "deployment": checkpoint["deployment"]}, default=str
        )
    )
    return json.dumps({**plain, LIVE_SEAL: _state_digest(plain)}, indent=2).encode("utf-8")


def check_live_seal(data: Any, what: str) -> None:
    """Raise IntegrityError when a sealed live state no longer matches its seal.

    A state without a seal (written before seals existed) passes here; its
    shape is still checked by `check_deployment`.
    """
    if not isinstance(data, dict) or LIVE_SEAL not in data:
        return
    plain = {k: data[k] for k in ("version", "deployment") if k in data}
    if data[LIVE_SEAL] != _state_digest(plain):
        raise IntegrityError(
            f"{what} was changed outside the toolkit: it no longer matches the sha256 the "
            "engine wrote with it; nothing was changed. Restore it from a backup of the store, "
            "or bring the stack up again.",
            checkpoint=what,
        )


def _state_digest(plain: dict[str, Any]) -> str:
    canonical = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return sha256_of(canonical.encode())


def check_checkpoints(store: Store, release: Release | None, stack: str) -> list[str]:
    """Prove the checkpoints a stack step would read are intact; return what was checked.

    Reads only. The release's checkpoint blob must hash to its reference,
    the embedded engine's live state (when the store holds one) must match
    its seal, and both must be a Pulumi deployment v3 whose references
    resolve (`check_deployment`).
    For preflight and the stack step, before anything changes. Raises
    IntegrityError naming the checkpoint, NotFound when the blob is gone.
    """
    checked = []
    if release is not None and release.checkpoint is not None:
        what = (
            f"the checkpoint of release {release.version} (blob {release.checkpoint.sha256[:12]})"
        )
        data = store.get_blob(release.checkpoint.sha256)  # IntegrityError on a hash mismatch
        check_deployment(_json(data, what), what)
        checked.append(f"release {release.version} checkpoint")
    key = live_checkpoint_key(stack)
    try:
        live = store.get_doc(key)
    except NotFound:
        return checked
    what = f"the live state of stack {stack} ({key} in {store.url})"
    data = _json(live, what)
    check_live_seal(data, what)
    check_deployment(data, what)
    checked.append(f"live state {key}")
    return checked


def check_deployment(data: Any, what: str) -> None:
    """Raise IntegrityError unless `data` has the shape of a Pulumi deployment, version 3.

    Minimal, after what Pulumi itself checks of a snapshot before using it
    (pkg/resource/deploy/snapshot.go, Snapshot.VerifyIntegrity, and the
    schema sdk/go/common/apitype/deployments.json): a manifest with `time`
    and `magic`; resources with a URN of their own type; URNs unique except
    for resources pending deletion; every parent, dependency and provider
    reference naming a resource that comes earlier.
    """

    def bad(why: str) -> IntegrityError:
        return IntegrityError(
            f"{what} is corrupt: {why}; nothing was changed. Restore it from a backup of the store "
            "(or bring the stack up again for the live state).",
            checkpoint=what,
        )

    if not isinstance(data, dict) or data.get("version") != 3:
        raise bad("it is not a Pulumi deployment of version 3")
    deployment = data.get("deployment")
    if not isinstance(deployment, dict):
        raise bad("it has no `deployment` object")
    manifest = deployment.get("manifest")
    # Pulumi always writes `time`; `magic` may be empty (an export of a stack it did not
    # compute one for), so only its type is checked.
    if (
        not isinstance(manifest, dict)
        or not (isinstance(manifest.get("time"), str) and manifest.get("time"))
        or not isinstance(manifest.get("magic", ""), str)
    ):
        raise bad("its manifest lacks `time`")
    resources = deployment.get("resources") or []
    if not isinstance(resources, list):
        raise bad("`resources` is not a list")
    seen: set[str] = set()
    for i, res in enumerate(resources):
        if not isinstance(res, dict):
            raise bad(f"resource #{i} is not an object")
        urn, kind = res.get("urn"), res.get("type")
        if not isinstance(urn, str) or not isinstance(kind, str):
            raise bad(f"resource #{i} has no `urn` or `type`")
        parts = urn.split("::")
        if not urn.startswith("urn:pulumi:") or len(parts) < 4:
            raise bad(f"resource #{i} has a malformed URN {urn!r}")
        if parts[2].rsplit("$", 1)[-1] != kind:
            raise bad(f"resource {urn} says it is of type {kind!r}")
        if urn in seen and not res.get("delete"):
            raise bad(f"resource {urn} appears twice")
        for field_name in ("inputs", "outputs"):
            if field_name in res and not isinstance(res[field_name], dict):
                raise bad(f"the {field_name} of {urn} are not an object")
        refs = [("parent", res.get("parent"))]
        deps = res.get("dependencies") or []
        if not isinstance(deps, list):
            raise bad(f"the dependencies of {urn} are not a list")
        refs += [("dependency", d) for d in deps]
        provider = res.get("provider")
        if provider:
            if not isinstance(provider, str) or "::" not in provider:
                raise bad(f"the provider reference of {urn} is malformed")
            refs.append(("provider", provider.rsplit("::", 1)[0]))
        for role, ref in refs:
            if ref and ref not in seen:
                raise bad(f"resource {urn} refers to unknown {role} {ref}")
        seen.add(urn)


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"{what} is corrupt: it is not JSON ({exc}); nothing was changed.", checkpoint=what
        ) from exc
