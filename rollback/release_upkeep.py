"""Release upkeep: verifying a release end to end, the changelog between two, pruning.

Each serves its own `rollback release` command (verify, changelog, prune). They
live apart from the registry (`rollback.releases`), which nearly every command
opens, so that opening it does not build their result records.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback.errors import IntegrityError, NotFound, UsageError
from rollback.releases import Registry, open_repo, version_key
from rollback.store import BlobRef

_BREAKING_SUBJECT = re.compile(r"^[a-zA-Z]+(\([^)]*\))?!:")
_BREAKING_BODY = re.compile(r"^BREAKING[ -]CHANGE:", re.MULTILINE)


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


def verify(registry: Registry, version: str, repo_dir: Path | None = None) -> VerifyResult:
    """Re-hash every blob of the release and check its tag; raises IntegrityError on a mismatch."""
    release, digest = registry.load(version)
    checked: list[dict[str, Any]] = []
    problems: list[str] = []
    for name in ("artifact", "checkpoint", "config", "topology"):
        ref: BlobRef | None = getattr(release, name)
        if ref is None:
            continue
        try:
            registry.store.verify_blob(ref.sha256)
            checked.append({"what": name, "sha256": ref.sha256, "ok": True})
        except (IntegrityError, NotFound) as exc:
            checked.append({"what": name, "sha256": ref.sha256, "ok": False, "error": exc.message})
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
            problems.append(f"tag {release.tag} does not hold this manifest's sha256 {digest[:12]}")
    if problems:
        raise IntegrityError(
            f"release {release.version} failed verification: {'; '.join(problems)}.",
            version=release.version,
            checked=checked,
        )
    return VerifyResult(release.version, tuple(checked), True)


def changelog(
    registry: Registry, from_version: str, to_version: str, repo_dir: Path | None = None
) -> list[ChangelogEntry]:
    """Commits between two releases' tags, breaking changes first."""
    old, _ = registry.load(from_version)
    new, _ = registry.load(to_version)
    repo = open_repo(repo_dir or Path(new.repo))
    entries = []
    for c in repo.iter_commits(f"{old.commit}..{new.commit}"):
        message = str(c.message)
        subject = message.splitlines()[0] if message else ""
        breaking = bool(_BREAKING_SUBJECT.match(subject) or _BREAKING_BODY.search(message))
        entries.append(ChangelogEntry(c.hexsha, subject, str(c.author.name), breaking))
    return sorted(entries, key=lambda e: not e.breaking)  # stable: keeps git order within groups


def prune(registry: Registry, keep: int, dry_run: bool = False) -> PruneResult:
    """Keep the newest `keep` stable releases and all newer ones; delete the rest.

    Never deletes the current release. Blobs are deleted only when no
    remaining release of any stack in the store references them.
    """
    if keep < 1:
        raise UsageError(
            "--keep must be at least 1; a stack needs one stable release to roll back to."
        )
    versions = registry.versions()
    stable = [v for v in versions if registry.status(v) == "stable"]
    current = registry.current()
    if len(stable) <= keep:
        kept = set(versions)
    else:
        oldest_kept = stable[keep - 1]
        kept = {v for v in versions if version_key(v) >= version_key(oldest_kept)}
    if current:
        kept.add(current)
    doomed = [v for v in versions if v not in kept]
    referenced = set()
    for key in registry.store.list_docs("releases/"):
        if not key.endswith("/manifest.json"):
            continue
        if any(key == registry.manifest_key(v) for v in doomed):
            continue
        referenced |= _blob_refs(json.loads(registry.store.get_doc(key)))
    doomed_blobs = set()
    for v in doomed:
        release, _ = registry.load(v)
        doomed_blobs |= _blob_refs(release.to_dict())
    blobs = sorted(doomed_blobs - referenced)
    if not dry_run:
        for v in doomed:
            registry.delete(v)
        for digest in blobs:
            registry.store.delete_blob(digest)
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
