"""The release registry against real git repositories and both store backends."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from rollback import release_upkeep
from rollback.errors import AlreadyExists, IntegrityError, NotFound, UsageError
from rollback.releases import Registry, parse_version, version_key
from rollback.store import Store
from tests.unit.store_backends import BACKENDS, flip_one_bit, open_backend, stored_objects

STACK = "webapp/dev"


def make_repo(path: Path) -> git.Repo:
    repo = git.Repo.init(path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Test Engineer")
        cw.set_value("user", "email", "test@example.invalid")
    commit(repo, "Pulumi.yaml", "name: webapp\n", "feat: first stack")
    return repo


def commit(repo: git.Repo, name: str, content: str, message: str) -> str:
    path = Path(repo.working_dir) / name
    path.write_text(content)
    repo.index.add([name])
    return str(repo.index.commit(message).hexsha)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_backend(request.param, tmp_path) as s:
        yield s


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    return make_repo(tmp_path / "iac")


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "app-1.tgz"
    path.write_bytes(b"application build 1\n" * 100)
    return path


def tags(repo: git.Repo) -> dict[str, str]:
    return {t.name: t.commit.hexsha for t in repo.tags}


def test_record_stores_manifest_blob_and_annotated_tag(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    view = Registry(store, STACK).record("v1.0.0", artifact, Path(repo.working_dir))

    assert view.release.version == "1.0.0"
    assert view.status == "candidate" and view.current
    tag = repo.tags["v1.0.0"]
    assert tag.commit.hexsha == repo.head.commit.hexsha
    assert tag.tag is not None  # annotated
    assert f"manifest-sha256: {view.manifest_sha256}" in tag.tag.message
    stored = stored_objects(store)
    manifest = next(
        v for k, v in stored.items() if k.endswith("releases/webapp/dev/1.0.0/manifest.json")
    )
    import hashlib

    assert hashlib.sha256(manifest).hexdigest() == view.manifest_sha256
    assert (
        json.loads(manifest)["artifact"]["sha256"]
        == hashlib.sha256(artifact.read_bytes()).hexdigest()
    )
    assert artifact.read_bytes() in stored.values()


def test_list_newest_first_by_semver_and_last_stable(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    reg = Registry(store, STACK)
    for version in ("1.0.0", "1.1.0-rc.1", "1.1.0", "1.10.0"):
        commit(repo, "main.py", version, f"chore: {version}")
        reg.record(version, artifact, Path(repo.working_dir))
    assert [v.release.version for v in reg.views()] == ["1.10.0", "1.1.0", "1.1.0-rc.1", "1.0.0"]
    with pytest.raises(NotFound, match="marked stable"):
        reg.resolve("last-stable")
    reg.mark("1.0.0", "stable", "baked a week")
    reg.mark("1.1.0", "stable", "baked")
    reg.mark("1.1.0", "bad", "500s after cutover")
    assert reg.resolve("last-stable") == "1.0.0"
    history = reg.show("1.1.0").history
    assert [h.status for h in history] == ["candidate", "stable", "bad"]
    assert history[-1].reason == "500s after cutover"


def test_verify_passes_then_catches_a_bit_flip(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    reg = Registry(store, STACK)
    view = reg.record("1.0.0", artifact, Path(repo.working_dir))
    assert release_upkeep.verify(reg, "1.0.0").ok
    key = f"blobs/sha256/{view.release.artifact.sha256[:2]}/{view.release.artifact.sha256}"
    flip_one_bit(store, key)
    with pytest.raises(IntegrityError, match="artifact blob"):
        release_upkeep.verify(reg, "1.0.0")


def test_verify_catches_a_moved_tag(store: Store, repo: git.Repo, artifact: Path) -> None:
    reg = Registry(store, STACK)
    reg.record("1.0.0", artifact, Path(repo.working_dir))
    commit(repo, "main.py", "x", "fix: later")
    repo.git.tag("-f", "-a", "v1.0.0", "-m", "moved")
    with pytest.raises(IntegrityError, match="points at"):
        release_upkeep.verify(reg, "1.0.0")


def test_changelog_lists_breaking_changes_first(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    reg = Registry(store, STACK)
    reg.record("1.0.0", artifact, Path(repo.working_dir))
    commit(repo, "a.py", "a", "fix: retry on timeout")
    commit(repo, "b.py", "b", "feat(db)!: drop legacy column")
    commit(repo, "c.py", "c", "feat: green colour\n\nBREAKING CHANGE: new listener port")
    commit(repo, "d.py", "d", "docs: typo")
    reg.record("2.0.0", artifact, Path(repo.working_dir))
    entries = release_upkeep.changelog(reg, "1.0.0", "v2.0.0")
    assert [e.subject for e in entries] == [
        "feat: green colour",
        "feat(db)!: drop legacy column",
        "docs: typo",
        "fix: retry on timeout",
    ]
    assert [e.breaking for e in entries] == [True, True, False, False]


def test_prune_keeps_newest_stable_and_newer_and_current(
    store: Store, repo: git.Repo, tmp_path: Path
) -> None:
    reg = Registry(store, STACK)
    for i, version in enumerate(("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0")):
        art = tmp_path / f"app-{i}.tgz"
        art.write_bytes(f"build {i}".encode())
        commit(repo, "main.py", version, f"chore: {version}")
        reg.record(version, art, Path(repo.working_dir))
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        reg.mark(version, "stable", "ok")
    reg.set_current("1.0.0", "rolled back")  # the current release is never pruned

    dry = release_upkeep.prune(reg, keep=2, dry_run=True)
    assert dry.deleted == () and dry.kept[-1] == "1.0.0"
    reg.set_current("1.4.0", "deployed")
    before = stored_objects(store)
    dry = release_upkeep.prune(reg, keep=2, dry_run=True)
    assert dry.deleted == ("1.0.0",) and len(dry.deleted_blobs) == 1
    assert stored_objects(store) == before

    result = release_upkeep.prune(reg, keep=2)
    assert reg.versions() == ["1.4.0", "1.3.0", "1.2.0", "1.1.0"]
    assert not store.has_blob(result.deleted_blobs[0])
    assert store.has_blob(reg.show("1.1.0").release.artifact.sha256)


def test_prerelease_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    assert sorted(reversed(ordered), key=version_key) == ordered
    assert parse_version("v2.3.4-rc.1+build.5") == "2.3.4-rc.1+build.5"


# -- bad input: one sentence, a documented exit code, store and repository unchanged --


def _unchanged(store: Store, repo: git.Repo) -> tuple[dict[str, bytes], dict[str, str]]:
    return stored_objects(store), tags(repo)


@pytest.mark.parametrize(
    ("version", "error", "match"),
    [
        ("1.4", UsageError, "not a semantic version"),
        ("v1.0.0.0", UsageError, "not a semantic version"),
        ("latest", UsageError, "not a semantic"),
        # Valid semver with no bound; as a store directory it was "File name too long" (exit 70).
        ("9" * 300 + ".0.0", UsageError, "is 304 characters long; use a semantic version of at"),
        ("1.4.0-" + "a" * 123, UsageError, "at most 128 characters"),
    ],
)
def test_malformed_version_refused(
    store: Store, repo: git.Repo, artifact: Path, version: str, error: type, match: str
) -> None:
    before = _unchanged(store, repo)
    with pytest.raises(error, match=match) as exc:
        Registry(store, STACK).record(version, artifact, Path(repo.working_dir))
    assert exc.value.exit_code == 2
    assert _unchanged(store, repo) == before


def test_an_overlong_version_is_refused_on_reading_too(store: Store) -> None:
    with pytest.raises(UsageError, match="at most 128 characters") as exc:
        Registry(store, STACK).show("1." * 200 + "0")
    assert exc.value.exit_code == 2 and len(exc.value.message) < 200


def test_duplicate_version_refused(store: Store, repo: git.Repo, artifact: Path) -> None:
    reg = Registry(store, STACK)
    reg.record("1.0.0", artifact, Path(repo.working_dir))
    commit(repo, "x.py", "x", "fix: x")
    before = _unchanged(store, repo)
    with pytest.raises(AlreadyExists, match="tag v1.0.0 already exists"):
        reg.record("v1.0.0", artifact, Path(repo.working_dir))
    repo.delete_tag(repo.tags["v1.0.0"])
    before = _unchanged(store, repo)
    with pytest.raises(AlreadyExists, match="already recorded"):
        reg.record("1.0.0", artifact, Path(repo.working_dir))
    assert _unchanged(store, repo) == before


def test_dirty_repo_refused_unless_allowed(store: Store, repo: git.Repo, artifact: Path) -> None:
    (Path(repo.working_dir) / "untracked.py").write_text("x")
    before = _unchanged(store, repo)
    with pytest.raises(UsageError, match="uncommitted changes; commit them or pass --allow-dirty"):
        Registry(store, STACK).record("1.0.0", artifact, Path(repo.working_dir))
    assert _unchanged(store, repo) == before
    assert (
        Registry(store, STACK)
        .record("1.0.0", artifact, Path(repo.working_dir), allow_dirty=True)
        .release.version
        == "1.0.0"
    )


def test_not_a_git_repo_refused(store: Store, tmp_path: Path, artifact: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match="is not a git repository"):
        Registry(store, STACK).record("1.0.0", artifact, plain)
    assert stored_objects(store) == {}


def test_missing_or_directory_artifact_refused(
    store: Store, repo: git.Repo, tmp_path: Path
) -> None:
    before = _unchanged(store, repo)
    with pytest.raises(NotFound, match="does not exist"):
        Registry(store, STACK).record("1.0.0", tmp_path / "nope.tgz", Path(repo.working_dir))
    with pytest.raises(UsageError, match="is a directory"):
        Registry(store, STACK).record("1.0.0", tmp_path, Path(repo.working_dir))
    # A device would fill the store, a FIFO would block forever: refused before a read.
    fifo = tmp_path / "artifact.fifo"
    os.mkfifo(fifo)
    for odd in (Path("/dev/zero"), fifo):
        with pytest.raises(UsageError, match="is not a regular file"):
            Registry(store, STACK).record("1.0.0", odd, Path(repo.working_dir))
    assert _unchanged(store, repo) == before


def test_unknown_version_is_not_found(store: Store) -> None:
    # Nothing is recorded at all: the message says where it looked instead.
    with pytest.raises(NotFound, match="webapp/dev has no releases in .*check --stack") as exc:
        Registry(store, STACK).show("9.9.9")
    assert exc.value.exit_code == 2


def test_manifest_with_unknown_schema_or_truncated_json(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    reg = Registry(store, STACK)
    reg.record("1.0.0", artifact, Path(repo.working_dir))
    key = "releases/webapp/dev/1.0.0/manifest.json"
    doc = json.loads(store.get_doc(key))
    store.put_doc(key, json.dumps({**doc, "schema": 99}).encode())
    with pytest.raises(IntegrityError, match="was changed after it was recorded") as exc:
        Registry(store, STACK).show("1.0.0")
    assert exc.value.exit_code == 4
    store.put_doc(key, json.dumps(doc).encode()[:40])
    with pytest.raises(IntegrityError, match="was changed after it was recorded"):
        Registry(store, STACK).show("1.0.0")


# every read checks the manifest against its digest record and its tag (issue 9, item 6)

MANIFEST = "releases/webapp/dev/1.0.0/manifest.json"
DIGEST = "releases/webapp/dev/1.0.0/manifest.sha256"


def _edit(store: Store, key: str, **changes: object) -> bytes:
    doc = json.loads(store.get_doc(key))
    data = json.dumps({**doc, **changes}, sort_keys=True, indent=2).encode() + b"\n"
    store.put_doc(key, data)
    return data


def test_an_edited_manifest_commit_is_an_integrity_error_on_every_read(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    Registry(store, STACK).record("1.0.0", artifact, Path(repo.working_dir))
    other = commit(repo, "main.py", "x", "fix: later")
    _edit(store, MANIFEST, commit=other)
    before = stored_objects(store)

    reg = Registry(store, STACK)
    for read in (
        lambda: reg.show("1.0.0"),
        lambda: reg.load("1.0.0"),
        reg.views,
        lambda: release_upkeep.verify(reg, "1.0.0"),
    ):
        with pytest.raises(IntegrityError, match="release 1.0.0 of webapp/dev was changed") as exc:
            read()
        assert exc.value.exit_code == 4
    assert stored_objects(store) == before


def test_a_manifest_edited_with_its_digest_record_is_caught_by_the_tag(
    store: Store, repo: git.Repo, artifact: Path, tmp_path: Path
) -> None:
    import hashlib

    Registry(store, STACK).record("1.0.0", artifact, Path(repo.working_dir))
    edited = _edit(store, MANIFEST, artifact_name="evil.tgz")
    store.put_doc(
        DIGEST,
        json.dumps(
            {"version": "1.0.0", "manifest_sha256": hashlib.sha256(edited).hexdigest()}
        ).encode(),
    )

    with pytest.raises(IntegrityError, match="does not match tag v1.0.0 in") as exc:
        Registry(store, STACK).show("1.0.0")
    assert "the tag holds" in exc.value.message
    # With the recorded repository gone, --repo (or the working directory) still reaches the tag.
    moved = tmp_path / "moved-iac"
    Path(repo.working_dir).rename(moved)
    with pytest.raises(IntegrityError, match="does not match tag"):
        Registry(store, STACK, repo_dir=moved).show("1.0.0")


def test_a_moved_tag_is_an_integrity_error_on_read(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    Registry(store, STACK).record("1.0.0", artifact, Path(repo.working_dir))
    commit(repo, "main.py", "x", "fix: later")
    repo.git.tag("-f", "-a", "v1.0.0", "-m", "moved")
    with pytest.raises(IntegrityError, match="points at"):
        Registry(store, STACK).show("1.0.0")


def test_a_release_without_digest_record_needs_its_tag(
    store: Store, repo: git.Repo, artifact: Path, tmp_path: Path
) -> None:
    view = Registry(store, STACK).record("1.0.0", artifact, Path(repo.working_dir))
    store.delete_doc(DIGEST)  # as recorded before digest records existed

    assert Registry(store, STACK).show("1.0.0").manifest_sha256 == view.manifest_sha256
    Path(repo.working_dir).rename(tmp_path / "gone")
    with pytest.raises(IntegrityError, match="has no digest record and no reachable repository"):
        Registry(store, STACK).show("1.0.0")
    assert Registry(store, STACK, repo_dir=tmp_path / "gone").show("1.0.0").release.version


def test_a_repository_without_the_tag_leaves_the_digest_record_in_charge(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    Registry(store, STACK).record("1.0.0", artifact, Path(repo.working_dir))
    repo.git.tag("-d", "v1.0.0")  # a clone without tags
    assert Registry(store, STACK).show("1.0.0").release.version == "1.0.0"
    _edit(store, MANIFEST, commit="0" * 40)
    with pytest.raises(IntegrityError, match="was changed after it was recorded"):
        Registry(store, STACK).show("1.0.0")


def test_a_record_killed_after_its_digest_record_can_be_recorded_again(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    store.put_doc(DIGEST, b'{"version": "1.0.0", "manifest_sha256": "00"}', create_only=True)
    view = Registry(store, STACK).record("1.0.0", artifact, Path(repo.working_dir))
    assert json.loads(store.get_doc(DIGEST))["manifest_sha256"] == view.manifest_sha256


# checkpoints: the release's blob and the embedded engine's live state


def _deployment() -> dict[str, object]:
    stack_urn = "urn:pulumi:dev::webapp::pulumi:pulumi:Stack::webapp-dev"
    provider = "urn:pulumi:dev::webapp::pulumi:providers:aws::default"
    return {
        "version": 3,
        "deployment": {
            "manifest": {"time": "2026-11-30T00:00:00Z", "magic": "ab", "version": "3.0.0"},
            "resources": [
                {"urn": stack_urn, "type": "pulumi:pulumi:Stack", "custom": False},
                {"urn": provider, "type": "pulumi:providers:aws", "custom": True, "id": "p1"},
                {
                    "urn": "urn:pulumi:dev::webapp::aws:s3/bucket:Bucket::art",
                    "type": "aws:s3/bucket:Bucket",
                    "custom": True,
                    "id": "art",
                    "parent": stack_urn,
                    "provider": f"{provider}::p1",
                    "inputs": {"bucket": "art"},
                    "outputs": {"bucket": "art"},
                },
            ],
        },
    }


def test_live_checkpoint_key_is_the_embedded_engines() -> None:
    from rollback.engine.embedded.engine import checkpoint_key
    from rollback.releases import live_checkpoint_key

    assert live_checkpoint_key("webapp/dev") == checkpoint_key("webapp", "dev")


def test_check_checkpoints_passes_intact_ones_and_names_a_corrupt_one(
    store: Store, repo: git.Repo, artifact: Path
) -> None:
    from rollback.releases import Attachments, check_checkpoints, live_checkpoint_key

    good = json.dumps(_deployment()).encode()
    reg = Registry(store, STACK)
    release = reg.record(
        "1.0.0", artifact, Path(repo.working_dir), attachments=Attachments(checkpoint=good)
    ).release
    store.put_doc(live_checkpoint_key(STACK), good)
    assert check_checkpoints(store, release, STACK) == [
        "release 1.0.0 checkpoint",
        "live state stacks/webapp/dev/checkpoint.json",
    ]

    assert release.checkpoint is not None
    sha = release.checkpoint.sha256
    flip_one_bit(store, f"blobs/sha256/{sha[:2]}/{sha}")
    with pytest.raises(IntegrityError) as exc:
        check_checkpoints(store, release, STACK)
    assert exc.value.exit_code == 4
    assert check_checkpoints(store, None, STACK) == ["live state stacks/webapp/dev/checkpoint.json"]

    store.put_doc(live_checkpoint_key(STACK), good[: len(good) // 2])
    with pytest.raises(IntegrityError, match="live state of stack webapp/dev .* not JSON"):
        check_checkpoints(store, None, STACK)


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d.update(version=2), "not a Pulumi deployment of version 3"),
        (lambda d: d["deployment"]["manifest"].pop("time"), "lacks `time`"),
        (
            lambda d: d["deployment"]["resources"][2].update(type="aws:s3/bucketV2:BucketV2"),
            "says it is of type",
        ),
        (lambda d: d["deployment"]["resources"].reverse(), "refers to unknown"),
        (
            lambda d: d["deployment"]["resources"][2].update(parent="urn:pulumi:x::y::a:b:C::z"),
            "unknown parent",
        ),
        (
            lambda d: d["deployment"]["resources"].append(d["deployment"]["resources"][1]),
            "appears twice",
        ),
        (lambda d: d["deployment"]["resources"][2].update(outputs=[1]), "not an object"),
        (lambda d: d["deployment"]["resources"][2].update(urn="bucket"), "malformed URN"),
    ],
)
def test_check_deployment_refuses_a_broken_shape(edit: object, why: str) -> None:
    from rollback.releases import check_deployment

    data = _deployment()
    check_deployment(data, "the checkpoint")
    edit(data)  # type: ignore[operator]
    with pytest.raises(IntegrityError, match=why):
        check_deployment(data, "the checkpoint")


def test_a_sealed_live_state_edited_in_shape_is_an_integrity_error(store: Store) -> None:
    from rollback.releases import check_checkpoints, live_checkpoint_key, seal_live_state

    sealed = seal_live_state(_deployment())
    store.put_doc(live_checkpoint_key(STACK), sealed)
    assert check_checkpoints(store, None, STACK)

    doc = json.loads(sealed)
    doc["deployment"]["resources"][2]["id"] = "another-bucket"  # still a valid deployment
    store.put_doc(live_checkpoint_key(STACK), json.dumps(doc).encode())
    with pytest.raises(IntegrityError, match="changed outside the toolkit") as exc:
        check_checkpoints(store, None, STACK)
    assert exc.value.exit_code == 4


def test_the_embedded_engine_seals_what_it_writes_and_refuses_an_edit(store: Store) -> None:
    from rollback.aws.session import Clients, make_session
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.releases import LIVE_SEAL, live_checkpoint_key, seal_live_state

    engine = EmbeddedEngine(store, Clients(make_session("us-east-1")), "webapp")
    store.put_doc(live_checkpoint_key(STACK), seal_live_state(_deployment()))
    assert engine.export("dev").to_dict() == _deployment()  # the seal stays in the store
    assert LIVE_SEAL not in engine.export("dev").to_dict()

    doc = json.loads(store.get_doc(live_checkpoint_key(STACK)))
    doc["deployment"]["manifest"]["time"] = "2027-01-01T00:00:00Z"
    store.put_doc(live_checkpoint_key(STACK), json.dumps(doc).encode())
    with pytest.raises(IntegrityError, match="live state of stack webapp/dev"):
        engine.export("dev")


@pytest.mark.parametrize(
    ("which", "content", "says"),
    [
        (
            "current",
            b"[]",
            "the current-release record of webapp/dev is unreadable \\(it is not a JSON object\\)",
        ),
        ("current", b"{}", "its version is None"),
        ("current", b"{not json", "it is not JSON"),
        (
            "status",
            b'{"status": 5}',
            "a status record of release 1.0.0 of webapp/dev is unreadable \\(its status is 5\\)",
        ),
        (
            "status",
            b'{"status": "great", "reason": "", "at": "", "by": ""}',
            "its status is 'great'",
        ),
        ("status", b'{"status": "stable"}', "its reason is None"),
    ],
)
def test_an_edited_current_or_status_record_is_an_integrity_error(
    store: Store, repo: git.Repo, artifact: Path, which: str, content: bytes, says: str
) -> None:
    # Found by editing a real store: these were KeyErrors (exit 70, "internal error").
    registry = Registry(store, STACK)
    registry.record("1.0.0", artifact, Path(repo.working_dir))
    registry.mark("1.0.0", "stable", "tests")
    prefix = "releases/webapp/dev/"
    keys = store.list_docs(prefix + ("current" if which == "current" else "1.0.0/status/"))
    store.put_doc(keys[-1], content)
    with pytest.raises(IntegrityError, match=says) as raised:
        registry.show("1.0.0")
    assert raised.value.exit_code == 4
