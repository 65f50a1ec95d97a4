"""Preflight through the installed command (issue 9, item 3): a missing precondition is
one sentence and the right exit code, and NOTHING changed: the cloud (read with boto3),
the store's file tree, the RDS snapshots and the IaC repository's tags are compared
before and after.

The demo's world (rollbackworld.py): v1.0.0 on blue, stable; v2.0.0 on green, current.
The first tests all fail in preflight, so the world stays as built; then one traffic-first
rollback succeeds (and shows what it had NOT imported or built when users moved); the last
ones record releases. They run in this order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from tests.functional.rollbackworld import DB, STACK, World, built_world

ON_GREEN = {"alb": {"blue": 0, "green": 100}, "dns": {"blue": 0, "green": 100}}


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(
        moto_server, tmp_path_factory.mktemp("preflight-cli"), green_failing=True
    ) as w:
        yield w


def everything(world: World) -> dict[str, Any]:
    """The cloud, the store, the snapshots and the repository's tags and worktrees."""
    repo = git.Repo(world.repo_dir)
    snapshots = world.aws("rds").describe_db_snapshots()["DBSnapshots"]
    return {
        "cloud": world.inventory(),
        "store": world.store_digest(),
        "snapshots": sorted(s["DBSnapshotIdentifier"] for s in snapshots),
        "tags": sorted(t.name for t in repo.tags),
        "worktrees": repo.git.worktree("list"),
    }


def refused(world: World, code: int, *args: str, **kwargs: Any) -> str:
    """Run a command that preflight refuses; check the code, one sentence, nothing changed."""
    before = everything(world)
    result = world.run(*args, expect=code, **kwargs)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert everything(world) == before
    return lines[-1]


def test_passphrase_missing_or_wrong_changes_nothing(world: World) -> None:
    assert world.weights() == ON_GREEN
    said = refused(
        world,
        2,
        "to",
        "last-stable",
        "--yes",
        env={"PULUMI_CONFIG_PASSPHRASE": None, "PULUMI_CONFIG_PASSPHRASE_FILE": None},
    )
    assert "PULUMI_CONFIG_PASSPHRASE" in said and "not set" in said, said
    said = refused(
        world, 2, "to", "last-stable", "--yes", env={"PULUMI_CONFIG_PASSPHRASE": "not-it"}
    )
    assert "does not decrypt" in said and "not-it" not in said, said
    # The file variant, unreadable.
    said = refused(
        world,
        2,
        "to",
        "last-stable",
        "--yes",
        env={
            "PULUMI_CONFIG_PASSPHRASE": None,
            "PULUMI_CONFIG_PASSPHRASE_FILE": str(world.root / "no-such-file"),
        },
    )
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" in said, said
    # An emergency is refused the same way, before it stops anything.
    said = refused(world, 2, "emergency", env={"PULUMI_CONFIG_PASSPHRASE": "not-it"})
    assert "does not decrypt" in said, said
    assert world.weights() == ON_GREEN


def _blob(world: World, sha256: str) -> Path:
    return world.store / "blobs" / "sha256" / sha256[:2] / sha256


def test_a_corrupt_checkpoint_is_exit_4_and_changes_nothing(world: World) -> None:
    import os
    import stat

    v1 = world.json("release", "show", "1.0.0")
    blob = _blob(world, v1["checkpoint"]["sha256"])
    original = blob.read_bytes()
    os.chmod(blob, stat.S_IRUSR | stat.S_IWUSR)
    # Still valid JSON, one value changed: only the hash can tell.
    doc = json.loads(original)
    doc["deployment"]["resources"][0]["urn"] += "-edited"
    blob.write_bytes(json.dumps(doc).encode())
    try:
        said = refused(world, 4, "to", "last-stable", "--yes")
    finally:
        blob.write_bytes(original)
    assert "checkpoint" in said and "1.0.0" in said, said

    # The stack's own state in the store, edited into something that is not a deployment.
    state = world.store / "stacks" / STACK / "checkpoint.json"
    original = state.read_bytes()
    doc = json.loads(original)
    doc["deployment"]["resources"] = {"not": "a list"}
    state.write_text(json.dumps(doc))
    try:
        said = refused(world, 4, "to", "last-stable", "--yes")
    finally:
        state.write_bytes(original)
    assert "checkpoint.json" in said and "malformed" in said, said
    assert world.weights() == ON_GREEN


def test_no_engine_and_a_missing_repository_change_nothing(world: World, tmp_path: Path) -> None:
    said = refused(world, 2, "--engine", "pulumi", "to", "last-stable", "--yes")
    assert "Pulumi CLI" in said, said

    # The release's repository moved away: its commit cannot be checked out.
    moved = tmp_path / "elsewhere"
    world.repo_dir.rename(moved)
    try:
        before = {"cloud": world.inventory(), "store": world.store_digest()}
        result = world.run("to", "last-stable", "--yes", expect=2)
        assert "does not exist" in result.stderr and str(world.repo_dir) in result.stderr
        assert {"cloud": world.inventory(), "store": world.store_digest()} == before
    finally:
        moved.rename(world.repo_dir)


# A test-only sitecustomize: when the traffic step starts, write down what the process
# has imported and built so far.
_PROBE = """
import json, os, sys
import rollback.journal as _journal
import rollback.models as _models
import rollback.engine.select as _select

_built = []
_from_dict = _models.Checkpoint.from_dict.__func__
_models.Checkpoint.from_dict = classmethod(lambda cls, d: (_built.append("checkpoint"), _from_dict(cls, d))[1])
_select_engine = _select.select_engine
def _select_and_note(*a, **k):
    _built.append("engine")
    return _select_engine(*a, **k)
_select.select_engine = _select_and_note
_stage = _journal.Journal.stage
def _stage_and_look(self, type, *, step=None, state=None, data=None):
    if (step, state) == ("traffic", "applying"):
        heavy = ("pulumi", "rollback.engine.embedded.engine", "rollback.engine.embedded.checkpoint",
                 "rollback.engine.embedded.resources", "rollback.stacks")
        with open(os.environ["PROBE_OUT"], "w") as out:
            json.dump({"modules": [m for m in heavy if m in sys.modules], "built": _built}, out)
    return _stage(self, type, step=step, state=state, data=data)
_journal.Journal.stage = _stage_and_look
"""


def test_traffic_first_moves_users_before_any_engine_or_checkpoint(
    world: World, tmp_path: Path
) -> None:
    import os

    (tmp_path / "sitecustomize.py").write_text(_PROBE)
    out = tmp_path / "probe.json"
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    done = world.json("to", "last-stable", "--yes", env={"PYTHONPATH": path, "PROBE_OUT": str(out)})
    assert done["ok"], done
    kinds = [s["kind"] for s in done["plan"]["steps"]]
    assert kinds.index("traffic") < kinds.index("stack"), kinds
    seen = json.loads(out.read_text())
    assert seen == {"modules": [], "built": []}, seen
    assert world.weights() == {"alb": {"blue": 100, "green": 0}, "dns": {"blue": 100, "green": 0}}


def test_record_without_a_git_identity_uses_the_fallback(world: World) -> None:
    """No user.name/email anywhere: the tag is signed by the documented fallback identity."""
    repo = git.Repo(world.repo_dir)
    with repo.config_writer() as config:
        config.remove_section("user")
    home = world.root / "empty-home"
    home.mkdir()
    env: dict[str, str | None] = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    env.update(
        {
            f"GIT_{who}_{what}": None
            for who in ("AUTHOR", "COMMITTER")
            for what in ("NAME", "EMAIL", "DATE")
        }
    )
    env["EMAIL"] = None
    artifact = world.root / "webapp-2.0.1.tgz"
    artifact.write_bytes(b"webapp 2.0.1\n")
    # The passphrase is checked before the snapshot, too.
    said = refused(
        world,
        2,
        "release",
        "record",
        "2.0.1",
        "--artifact",
        str(artifact),
        "--repo",
        str(world.repo_dir),
        env={**env, "PULUMI_CONFIG_PASSPHRASE": "not-it"},
    )
    assert "does not decrypt" in said, said
    result = world.run(
        "release",
        "record",
        "2.0.1",
        "--artifact",
        str(artifact),
        "--repo",
        str(world.repo_dir),
        env=env,
    )
    assert "recorded v2.0.1" in result.stdout, result.stdout
    tag = git.Repo(world.repo_dir).tags["v2.0.1"].tag
    assert tag is not None and tag.tagger.email.endswith("@rollback.invalid"), tag.tagger
    assert "via rollback" in str(tag.tagger.name)
    manifest = world.json("release", "show", "2.0.1")
    assert f"manifest-sha256: {manifest['manifest_sha256']}" in tag.message


def test_a_deleted_snapshot_refuses_a_restore_and_changes_nothing(world: World) -> None:
    """A release on a new schema, rolled back by restoring 1.0.0's snapshot, which is gone."""
    artifact = world.root / "webapp-2.1.0.tgz"
    artifact.write_bytes(b"webapp 2.1.0\n")
    world.run(
        "release",
        "record",
        "2.1.0",
        "--artifact",
        str(artifact),
        "--repo",
        str(world.repo_dir),
        "--schema-revision",
        "b2",
    )
    v1 = world.json("release", "show", "1.0.0")
    snapshot_id = v1["db_snapshot_id"]
    assert world.snapshot(snapshot_id) is not None
    world.aws("rds").delete_db_snapshot(DBSnapshotIdentifier=snapshot_id)
    said = refused(world, 2, "to", "1.0.0", "--yes", "--accept-data-loss")
    assert snapshot_id in said and "missing" in said, said
    assert world.aws("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"]
