"""The release registry: record, list, show, verify, mark, changelog, prune.

A release is an immutable manifest in the store (its sha256 is written into
an annotated git tag `vX.Y.Z` on the IaC commit) plus an append-only status
history. Blobs (artifact, checkpoint, config, topology) are referenced by hash.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.errors import (
    AlreadyExists,
    ConfigError,
    IntegrityError,
    NotFound,
    RollbackError,
    UsageError,
)
from rollback.models import BlobRef, Release, StatusChange, Topology

if TYPE_CHECKING:
    import git

    from rollback.store import Store

STATUSES = ("candidate", "stable", "bad")
LAST_STABLE = "last-stable"

# semver.org's grammar, with an optional leading "v".
_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_BREAKING_SUBJECT = re.compile(r"^[a-zA-Z]+(\([^)]*\))?!:")
_BREAKING_BODY = re.compile(r"^BREAKING[ -]CHANGE:", re.MULTILINE)


def parse_version(text: str) -> str:
    """Normalise `v1.4.0` or `1.4.0` to `1.4.0`; raises UsageError if not semantic."""
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


@dataclass(frozen=True)
class VerifyResult:
    version: str
    checked: tuple[dict[str, Any], ...]
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "ok": self.ok, "checked": list(self.checked)}


@dataclass(frozen=True)
class ChangelogEntry:
    commit: str
    subject: str
    author: str
    breaking: bool


@dataclass(frozen=True)
class PruneResult:
    kept: tuple[str, ...]
    deleted: tuple[str, ...]
    deleted_blobs: tuple[str, ...]
    dry_run: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _actor() -> str:
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
    """Releases of one stack (PROJECT/STACK) in one store."""

    def __init__(self, store: Store, stack: str) -> None:
        self.store = store
        self.stack = stack

    # -- keys -------------------------------------------------------------
    def _dir(self, version: str) -> str:
        return f"releases/{self.stack}/{version}/"

    def _manifest_key(self, version: str) -> str:
        return self._dir(version) + "manifest.json"

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
        digest = hashlib.sha256(manifest).hexdigest()
        # Create-only: of two writers recording the same version, one wins.
        self.store.put_doc(self._manifest_key(version), manifest, create_only=True)
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
            self.store.delete_doc(self._manifest_key(version))
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
        if self.store.has_doc(self._manifest_key(version)):
            raise AlreadyExists(
                f"release {version} of {self.stack} is already recorded; choose a new version.",
                version=version,
            )
        _check_artifact(artifact)
        return version, repo, sha

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
        """The release and its manifest's sha256; raises NotFound or IntegrityError."""
        version = self.resolve(version)
        data = self.store.get_doc(self._manifest_key(version))
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise IntegrityError(
                f"the manifest of release {version} is not valid JSON ({exc.msg}); restore it from a backup or record again.",
                version=version,
            ) from exc
        if not isinstance(doc, dict):
            raise IntegrityError(f"the manifest of release {version} is not a JSON object.")
        return Release.from_dict(doc), hashlib.sha256(data).hexdigest()

    def topology(self, release: Release) -> Topology:
        """The topology recorded with `release` (hash-checked); raises NotFound when it has none."""
        if release.topology is None:
            raise NotFound(
                f"release {release.version} carries no topology; record releases after `rollback stack up` so they hold the stack's `rollback` output."
            )
        return Topology.from_dict(json.loads(self.store.get_blob(release.topology.sha256)))

    def history(self, version: str) -> tuple[StatusChange, ...]:
        keys = self.store.list_docs(self._dir(version) + "status/")
        changes = []
        for key in keys:
            doc = json.loads(self.store.get_doc(key))
            changes.append(
                StatusChange(**{k: str(doc[k]) for k in ("status", "reason", "at", "by")})
            )
        return tuple(changes)

    def show(self, version: str) -> ReleaseView:
        release, digest = self.load(version)
        history = self.history(release.version)
        status = history[-1].status if history else "candidate"
        return ReleaseView(release, status, history, digest, self.current() == release.version)

    def views(self) -> list[ReleaseView]:
        return [self.show(v) for v in self.versions()]

    def resolve(self, version: str) -> str:
        """`last-stable` or a version to a recorded version; raises NotFound/UsageError."""
        if version == LAST_STABLE:
            for v in self.versions():
                if self._status(v) == "stable":
                    return v
            raise NotFound(
                f"no release of {self.stack} is marked stable; mark one with `rollback release mark VERSION --stable`."
            )
        version = parse_version(version)
        if not self.store.has_doc(self._manifest_key(version)):
            raise NotFound(
                f"release {version} of {self.stack} is not recorded; `rollback release list` shows the recorded ones.",
                version=version,
            )
        return version

    def _status(self, version: str) -> str:
        keys = self.store.list_docs(self._dir(version) + "status/")
        if not keys:
            return "candidate"
        return str(json.loads(self.store.get_doc(keys[-1]))["status"])

    def current(self) -> str | None:
        if not self.store.has_doc(self._current_key):
            return None
        return str(json.loads(self.store.get_doc(self._current_key))["version"])

    # -- write --------------------------------------------------------------
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

    # -- verify -------------------------------------------------------------
    def verify(self, version: str, repo_dir: Path | None = None) -> VerifyResult:
        """Re-hash every blob of the release and check its tag; raises IntegrityError on a mismatch."""
        release, digest = self.load(version)
        checked: list[dict[str, Any]] = []
        problems: list[str] = []
        for name in ("artifact", "checkpoint", "config", "topology"):
            ref: BlobRef | None = getattr(release, name)
            if ref is None:
                continue
            try:
                self.store.verify_blob(ref.sha256)
                checked.append({"what": name, "sha256": ref.sha256, "ok": True})
            except (IntegrityError, NotFound) as exc:
                checked.append(
                    {"what": name, "sha256": ref.sha256, "ok": False, "error": exc.message}
                )
                problems.append(f"{name} blob {ref.sha256[:12]}: {exc.message}")
        repo = open_repo(repo_dir or Path(release.repo))
        tag = next((t for t in repo.tags if t.name == release.tag), None)
        if tag is None:
            problems.append(f"tag {release.tag} is missing from {repo.working_dir}")
            checked.append({"what": "tag", "ok": False, "error": "missing"})
        else:
            points_at = tag.commit.hexsha
            message = tag.tag.message if tag.tag is not None else ""
            tag_ok = points_at == release.commit and f"manifest-sha256: {digest}" in message
            checked.append({"what": "tag", "tag": release.tag, "commit": points_at, "ok": tag_ok})
            if points_at != release.commit:
                problems.append(
                    f"tag {release.tag} points at {points_at[:12]}, the release recorded {release.commit[:12]}"
                )
            elif not tag_ok:
                problems.append(
                    f"tag {release.tag} does not hold this manifest's sha256 {digest[:12]}"
                )
        if problems:
            raise IntegrityError(
                f"release {release.version} failed verification: {'; '.join(problems)}.",
                version=release.version,
                checked=checked,
            )
        return VerifyResult(release.version, tuple(checked), True)

    # -- changelog ----------------------------------------------------------
    def changelog(
        self, from_version: str, to_version: str, repo_dir: Path | None = None
    ) -> list[ChangelogEntry]:
        """Commits between two releases' tags, breaking changes first."""
        old, _ = self.load(from_version)
        new, _ = self.load(to_version)
        repo = open_repo(repo_dir or Path(new.repo))
        entries = []
        for c in repo.iter_commits(f"{old.commit}..{new.commit}"):
            message = str(c.message)
            subject = message.splitlines()[0] if message else ""
            breaking = bool(_BREAKING_SUBJECT.match(subject) or _BREAKING_BODY.search(message))
            entries.append(ChangelogEntry(c.hexsha, subject, str(c.author.name), breaking))
        return sorted(
            entries, key=lambda e: not e.breaking
        )  # stable: keeps git order within groups

    # -- prune --------------------------------------------------------------
    def prune(self, keep: int, dry_run: bool = False) -> PruneResult:
        """Keep the newest `keep` stable releases and all newer ones; delete the rest.

        Never deletes the current release. Blobs are deleted only when no
        remaining release of any stack in the store references them.
        """
        if keep < 1:
            raise UsageError(
                "--keep must be at least 1; a stack needs one stable release to roll back to."
            )
        versions = self.versions()
        stable = [v for v in versions if self._status(v) == "stable"]
        current = self.current()
        if len(stable) <= keep:
            kept = set(versions)
        else:
            oldest_kept = stable[keep - 1]
            kept = {v for v in versions if version_key(v) >= version_key(oldest_kept)}
        if current:
            kept.add(current)
        doomed = [v for v in versions if v not in kept]
        referenced = set()
        for key in self.store.list_docs("releases/"):
            if not key.endswith("/manifest.json"):
                continue
            if any(key == self._manifest_key(v) for v in doomed):
                continue
            referenced |= _blob_refs(json.loads(self.store.get_doc(key)))
        doomed_blobs = set()
        for v in doomed:
            release, _ = self.load(v)
            doomed_blobs |= _blob_refs(release.to_dict())
        blobs = sorted(doomed_blobs - referenced)
        if not dry_run:
            for v in doomed:
                for key in self.store.list_docs(self._dir(v)):
                    self.store.delete_doc(key)
            for digest in blobs:
                self.store.delete_blob(digest)
        return PruneResult(
            kept=tuple(sorted(kept, key=version_key, reverse=True)),
            deleted=tuple(doomed),
            deleted_blobs=tuple(blobs),
            dry_run=dry_run,
        )


def _blob_refs(manifest: dict[str, Any]) -> set[str]:
    return {
        str(manifest[name]["sha256"])
        for name in ("artifact", "checkpoint", "config", "topology")
        if isinstance(manifest.get(name), dict)
    }


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
    if not path.exists():
        raise NotFound(f"artifact {path} does not exist; pass the built file with --artifact.")
    if path.is_dir():
        raise UsageError(
            f"artifact {path} is a directory; archive it first (tar czf app.tgz DIR) and pass the file."
        )
