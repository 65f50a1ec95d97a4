"""A crash at any instant, and edits of what the store says (issue 9, items 5 and 6).

The installed command against the demo's world (rollbackworld.py): v1.0.0 on
blue, v2.0.0 on green. Runs are killed with SIGKILL at exact points
(`killer_env`): between taking the lock and writing run.json, inside the stack
step's git worktree, between the `finished` record and releasing the lock.
Then edits that stay valid JSON (a manifest's commit, a journal record's
state, a checkpoint's resource) must be exit 4 with nothing changed, read
back from the cloud and the store tree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.rollbackworld import STACK, World, built_world, killer_env

ON_BLUE = {"alb": {"blue": 100, "green": 0}, "dns": {"blue": 100, "green": 0}}
LOCK = Path("locks") / "webapp" / "dev.lock"


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(
        moto_server, tmp_path_factory.mktemp("crash-integrity"), green_failing=True
    ) as w:
        yield w


def lock_doc(world: World) -> dict[str, Any] | None:
    path = world.store / LOCK
    return json.loads(path.read_text()) if path.exists() else None


def worktrees(world: World) -> list[str]:
    import git

    listed = git.Repo(world.repo_dir).git.worktree("list", "--porcelain").splitlines()
    return [line.split(" ", 1)[1] for line in listed if line.startswith("worktree ")]


def _dead_checkouts(world: World) -> list[Path]:
    """Reapply folders of `world`'s repository in the temporary directory whose process is gone.

    Only this world's: test files run side by side (pytest -n 2), and another one's killed
    run leaves its folder until its own recovery prunes it.
    """
    import re
    import tempfile

    from rollback.store.lock import process_alive

    found = []
    for path in Path(tempfile.gettempdir()).glob("rollback-reapply-*"):
        m = re.match(r"rollback-reapply-(\d+)-", path.name)
        if not m or process_alive(int(m.group(1))):
            continue
        try:  # the checkout (src/, see stacks.worktree) names its repository in .git
            gitdir = (path / "src" / ".git").read_text()
        except OSError:
            continue
        if str(world.repo_dir) in gitdir:
            found.append(path)
    return found


def test_killed_at_the_lock_inside_git_and_after_finished_then_resumed(
    world: World, tmp_path: Path
) -> None:
    # 1. Killed between taking the lock and writing run.json.
    runs_before = world.run_ids()
    killed = world.run(
        "to", "last-stable", "--yes", env=killer_env(tmp_path / "k1", "locked"), expect=None
    )
    assert killed.returncode == -9, killed.stderr
    held = lock_doc(world)
    assert held is not None and world.run_ids() == runs_before  # a lock, and no run
    ghost = held["run_id"]
    assert ghost not in json.dumps(world.json("history"))  # history shows no such run

    cleared = world.run("resume", ghost)
    assert f"run {ghost} was killed before it changed anything" in cleared.stdout, cleared.stdout
    assert "its lock is cleared" in cleared.stdout
    assert lock_doc(world) is None
    assert world.json("lock", "show")["locked"] is False

    # 2. Killed inside the stack step, while its git worktree exists.
    killed = world.run(
        "to",
        "last-stable",
        "--yes",
        env=killer_env(tmp_path / "k2", "stack:applying+1"),
        expect=None,
    )
    assert killed.returncode == -9, killed.stderr
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    assert len(worktrees(world)) == 2, worktrees(world)  # the killed run's checkout is registered
    assert len(_dead_checkouts(world)) == 1  # and its folder is left, as this check sees it

    # 3. Its resume is killed after `finished`, before it releases the lock.
    killed = world.run("resume", run_id, env=killer_env(tmp_path / "k3", "finished"), expect=None)
    assert killed.returncode == -9, killed.stderr
    assert worktrees(world) == [str(world.repo_dir)]  # the resume pruned the dead checkout
    assert _dead_checkouts(world) == []  # and its folder is gone
    assert (lock_doc(world) or {}).get("run_id") == run_id
    assert not (world.runs_dir() / run_id / "report.md").exists()
    assert world.weights() == ON_BLUE and world.registry().current() == "1.0.0"

    # The lock a finished run left is no obstacle: `lock show` names it, resume clears it.
    cleared = world.run("resume", run_id)
    assert f"run {run_id} finished (succeeded)" in cleared.stdout, cleared.stdout
    assert "its lock is cleared" in cleared.stdout and lock_doc(world) is None
    report = world.runs_dir() / run_id / "report.md"
    assert report.is_file() and "succeeded" in report.read_text()  # written on its behalf
    world.rolled_back = world.inventory()
    assert world.json("status")["run"]["result"] == "succeeded"
    assert worktrees(world) == [str(world.repo_dir)]


def test_a_lock_left_after_finished_is_taken_over_by_the_next_run(
    world: World, tmp_path: Path
) -> None:
    # A cutover to the live colour: it takes the lock and journals, and moves nobody.
    assert world.weights() == ON_BLUE
    killed = world.run("cutover", "blue", env=killer_env(tmp_path / "k", "finished"), expect=None)
    assert killed.returncode == -9, killed.stderr
    finished = (lock_doc(world) or {}).get("run_id")
    assert finished, "the killed cutover left no lock"

    done = world.json("cutover", "blue")  # not refused with exit 3, no --break-lock needed
    assert done["ok"], done
    markers = [json.loads(p.read_text()) for p in (world.store / "locks").rglob("*") if p.is_file()]
    (marker,) = [m for m in markers if m["lock"]["run_id"] == finished]
    assert f"run {finished} finished (succeeded)" in marker["why"], marker
    assert lock_doc(world) is None and world.weights() == ON_BLUE
    assert world.inventory() == world.rolled_back


# -- integrity: edits that stay valid JSON are exit 4, and change nothing ------------


def _rewrite(path: Path, **changes: Any) -> bytes:
    import os
    import stat

    original = path.read_bytes()
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    doc = json.loads(original)
    doc.update(changes)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return original


def _flip(path: Path) -> bytes:
    import os
    import stat

    original = path.read_bytes()
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def _refused(world: World, *args: str) -> str:
    result = world.run(*args, expect=4)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    return lines[-1]


def test_edited_manifest_journal_and_checkpoint_are_exit_4_and_change_nothing(
    world: World,
) -> None:
    cloud = world.inventory()

    # A manifest whose commit was edited: every read refuses it.
    manifest = world.store / "releases" / STACK / "1.0.0" / "manifest.json"
    head = world.registry().show("2.0.0").release.commit
    original = _rewrite(manifest, commit=head)
    store = world.store_digest()
    for args in (
        ("release", "show", "1.0.0"),
        ("plan", "1.0.0", "--force"),
        ("to", "1.0.0", "--yes", "--force"),
    ):
        message = _refused(world, *args)
        assert "release 1.0.0" in message and "changed after it was recorded" in message, message
    assert world.inventory() == cloud and world.store_digest() == store
    manifest.write_bytes(original)

    # A journal record whose state was edited: history, report and resume refuse the run.
    run_id = world.json("status")["run"]["run_id"]
    events = sorted((world.runs_dir() / run_id / "events").glob("*.json"))
    record = next(p for p in events if json.loads(p.read_text()).get("state") == "verified")
    original = _rewrite(record, state="failed")
    store = world.store_digest()
    for args in (("history",), ("report", run_id), ("resume", run_id), ("status",)):
        message = _refused(world, *args)
        assert f"run {run_id}: journal record {record.stem}" in message, message
    assert world.inventory() == cloud and world.store_digest() == store
    record.write_bytes(original)

    # The live stack state with a resource's id edited: still a valid Pulumi deployment.
    live = world.store / "stacks" / STACK / "checkpoint.json"
    original = live.read_bytes()
    doc = json.loads(original)
    bucket = next(r for r in doc["deployment"]["resources"] if r["type"] == "aws:s3/bucket:Bucket")
    bucket["id"] = "someone-elses-bucket"
    live.write_text(json.dumps(doc, indent=2))
    store = world.store_digest()
    for args in (("stack", "reapply", "1.0.0"), ("stack", "verify"), ("stack", "export")):
        message = _refused(world, *args)
        assert "live state of stack webapp/dev" in message, message
        assert "changed outside the toolkit" in message, message
    assert world.inventory() == cloud and world.store_digest() == store
    live.write_bytes(original)

    # The release's checkpoint blob with a byte flipped.
    ref = world.registry().show("1.0.0").release.checkpoint
    assert ref is not None
    blob = world.store / "blobs" / "sha256" / ref.sha256[:2] / ref.sha256
    original = _flip(blob)
    store = world.store_digest()
    message = _refused(world, "stack", "reapply", "1.0.0")
    assert ref.sha256[:12] in message, message
    assert world.inventory() == cloud and world.store_digest() == store
    blob.write_bytes(original)

    # Afterwards, restored: everything reads again.
    assert world.json("release", "show", "1.0.0")["version"] == "1.0.0"
    assert world.json("report", run_id)


def test_killed_right_after_releasing_the_lock_leaves_the_run_reported(
    world: World, tmp_path: Path
) -> None:
    # A kill between unlocking and the last write must not leave a succeeded run without
    # its report: nothing is left to resume it, and the lock no longer says anything.
    world.back_to_v2()
    runs_before = world.run_ids()
    killed = world.run(
        "to", "last-stable", "--yes", env=killer_env(tmp_path / "k1", "unlocked"), expect=None
    )
    assert killed.returncode == -9, killed.stderr
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    _assert_reported_and_rolled_back(world, run_id)

    # The same for a resume: a run killed in its stack step, its resume killed once unlocked.
    world.back_to_v2()
    runs_before = world.run_ids()
    killed = world.run(
        "to", "last-stable", "--yes", env=killer_env(tmp_path / "k2", "stack:applying"), expect=None
    )
    assert killed.returncode == -9, killed.stderr
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    killed = world.run("resume", run_id, env=killer_env(tmp_path / "k3", "unlocked"), expect=None)
    assert killed.returncode == -9, killed.stderr
    _assert_reported_and_rolled_back(world, run_id)


def _assert_reported_and_rolled_back(world: World, run_id: str) -> None:
    """What a user reads after the kill: no lock, succeeded, its report's outcome verified."""
    assert lock_doc(world) is None
    assert world.json("lock", "show")["locked"] is False
    status = world.json("status")
    assert status["run"]["run_id"] == run_id and status["run"]["result"] == "succeeded", status
    report = world.runs_dir() / run_id / "report.md"
    assert report.is_file(), "the run finished and unlocked, but its report was never written"
    text = report.read_text()
    assert "## Outcome" in text and "**Verified**" in text, text
    assert json.loads((world.runs_dir() / run_id / "report.json").read_text())["outcome"]["ok"]
    assert world.weights() == ON_BLUE and world.registry().current() == "1.0.0"
    assert worktrees(world) == [str(world.repo_dir)] and _dead_checkouts(world) == []


def test_killed_after_the_listener_moved_then_resumed_keeps_users_on_blue(
    world: World, tmp_path: Path
) -> None:
    # Killed after the traffic step's change, before it verified and recorded the new
    # weights as the stack's desired traffic: the resume finds the step done, and the
    # stack step after it must not put users back where the cutover to green left them.
    world.back_to_v2()
    runs_before = world.run_ids()
    killed = world.run(
        "to",
        "last-stable",
        "--yes",
        env=killer_env(tmp_path / "k", "traffic:applying+1"),
        expect=None,
    )
    assert killed.returncode == -9, killed.stderr
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    assert world.weights()["alb"] == ON_BLUE["alb"]  # the listener moved before the kill

    resumed = world.run("resume", run_id, expect=None)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _assert_reported_and_rolled_back(world, run_id)


def test_a_killed_emergency_resumed_leaves_no_stop_request(world: World, tmp_path: Path) -> None:
    # `emergency` asks cutovers to stop, rolls back, and clears its request as it ends. Killed
    # on the way and resumed (or its lock cleared after `finished`), the request must not
    # outlive the incident: a cutover refuses to start while one is pending, and no command
    # clears it.
    stop = world.store / "stops" / "webapp" / "dev.json"
    for i, at in enumerate(("traffic:verified", "finished")):
        world.back_to_v2()
        runs_before = world.run_ids()
        killer = killer_env(tmp_path / f"k{i}", at)
        killed = world.run("emergency", "--reason", "pager", env=killer, expect=None)
        assert killed.returncode == -9, killed.stderr
        (run_id,) = [r for r in world.run_ids() if r not in runs_before]
        assert stop.exists()  # the request of the emergency in progress

        world.run("resume", run_id)
        _assert_reported_and_rolled_back(world, run_id)
        assert not stop.exists(), f"killed at {at}: the stop request outlived the emergency"
        assert world.json("cutover", "blue")["ok"]  # the live colour: moves nobody


def test_a_killed_abort_is_finished_by_resume(world: World, tmp_path: Path) -> None:
    # A failed rollback (blue unhealthy: its health step fails), then `abort` killed half-way
    # through its undo: DNS back on green, the listener still on blue. `resume` used to refuse
    # ("plan a new rollback instead") while `to` refused on the dead run's lock ("`rollback
    # resume RUN` finishes it"): no way out but an expired lease. Resume finishes the abort.
    world.back_to_v2()
    runs_before = world.run_ids()
    world.blue.status = 500
    try:
        world.run("to", "last-stable", "--yes", env={"ROLLBACK_HEALTH_DEADLINE": "3"}, expect=1)
    finally:
        world.blue.status = 200
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    world.green.status = 200  # abort sends users back only to a healthy colour
    try:
        killer = killer_env(tmp_path / "k", "dns:compensated")
        killed = world.run("abort", run_id, env=killer, expect=None)
        assert killed.returncode == -9, killed.stderr
        assert world.weights()["dns"] == {"blue": 0, "green": 100}  # half undone
        assert (lock_doc(world) or {}).get("run_id") == run_id

        world.run("resume", run_id)  # what the lock's message says to do
    finally:
        world.green.status = 500
    assert world.weights() == {"alb": {"blue": 0, "green": 100}, "dns": {"blue": 0, "green": 100}}
    assert lock_doc(world) is None
    status = world.json("status")
    assert status["run"]["run_id"] == run_id and status["run"]["result"] == "aborted", status
    report = world.runs_dir() / run_id / "report.md"
    assert report.is_file() and "aborted" in report.read_text()
    assert worktrees(world) == [str(world.repo_dir)] and _dead_checkouts(world) == []


def test_a_failed_run_whose_resume_died_holding_the_lock_is_carried_forward(
    world: World, tmp_path: Path
) -> None:
    # A failed rollback's resume killed right after taking the lock, before its journal says
    # so: the lock names a run whose journal ends `finished (failed)`. `resume` again used to
    # clear that lock, exit 0 and stop there, the run still failed.
    world.back_to_v2()
    runs_before = world.run_ids()
    world.blue.status = 500
    try:
        world.run("to", "last-stable", "--yes", env={"ROLLBACK_HEALTH_DEADLINE": "3"}, expect=1)
    finally:
        world.blue.status = 200
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    killed = world.run("resume", run_id, env=killer_env(tmp_path / "k", "locked"), expect=None)
    assert killed.returncode == -9, killed.stderr
    assert (lock_doc(world) or {}).get("run_id") == run_id
    assert world.json("status")["run"]["result"] == "failed"

    world.run("resume", run_id)
    _assert_reported_and_rolled_back(world, run_id)
