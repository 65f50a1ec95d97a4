"""`rollback plan | to | resume | history | status | report` end to end (issue 5).

The installed command against the moto server, the embedded engine (auto: the
endpoint is the moto server) and real loopback health servers for the two
colours. The demo's world is built once per module through the CLI (see
rollbackworld.py): v1.0.0 on blue, recorded and marked stable; v2.0.0 on green
with a program change (a release-notes bucket), recorded. Green's health
endpoint then fails and the tests roll back; each later case puts 2.0.0 back
(`rollback stack reapply 2.0.0` and the registry) instead of rebuilding.

Every assertion reads the cloud with plain boto3 or the store after the
command; what the command printed is checked against those reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.rollbackworld import (
    ARTIFACT_BUCKET,
    DB,
    NOTES_BUCKET,
    STACK,
    World,
    built_world,
)

STEPS = ["preflight", "traffic", "dns", "db-snapshot", "stack", "artifact", "health", "mark"]
ON_BLUE = {"alb": {"blue": 100, "green": 0}, "dns": {"blue": 100, "green": 0}}
ON_GREEN = {"alb": {"blue": 0, "green": 100}, "dns": {"blue": 0, "green": 100}}


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The v1/v2 world, built once for the module on a freshly reset moto server."""
    with built_world(moto_server, tmp_path_factory.mktemp("rollback-cli")) as w:
        yield w


def one_sentence(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert result.stdout == "" and len(lines) == 1 and lines[0].startswith("error: "), (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return str(lines[0])


def test_the_demo_scenario_through_separate_commands(world: World) -> None:
    assert world.weights() == ON_GREEN and NOTES_BUCKET in world.buckets()
    releases = {r["version"]: r for r in world.json("release", "list")["releases"]}
    assert releases["1.0.0"]["status"] == "stable" and releases["2.0.0"]["current"], releases
    world.green.status = 500  # 2.0.0 misbehaves

    # The plan changes nothing, and says the steps in order.
    cloud, store = world.inventory(), world.store_digest()
    plan = world.json("plan", "last-stable")
    assert [s["name"] for s in plan["steps"]] == STEPS, plan
    assert (plan["from_version"], plan["to_version"]) == ("2.0.0", "1.0.0")
    text = world.run("plan", "last-stable").stdout
    assert text.index("traffic") < text.index("stack") < text.index("mark"), text
    assert world.inventory() == cloud and world.store_digest() == store

    done = world.json("to", "last-stable", "--yes")
    result = done["result"]
    assert done["ok"] and result["result"] == "succeeded", done
    assert [(s["name"], s["state"]) for s in result["steps"]] == [(n, "verified") for n in STEPS]
    run_id = result["run_id"]
    # The outcome, read from the cloud: blue serves everyone, and blue's instances say 1.0.0.
    outcome = result["outcome"]
    assert outcome["ok"] and outcome["served"] == {"blue": "1.0.0"}, outcome
    assert "users are served 1.0.0" in outcome["sentence"]
    assert 0 < result["time_to_traffic_restored_s"] <= result["duration_s"], result

    # The cloud says it is v1 again.
    assert world.weights() == ON_BLUE
    assert NOTES_BUCKET not in world.buckets()
    (snap_step,) = [s for s in result["steps"] if s["name"] == "db-snapshot"]
    snapshot_id = snap_step["evidence"][0]["observed"].get("snapshot_id")
    snapshot = world.snapshot(str(snapshot_id))
    assert snapshot is not None and snapshot["Status"] == "available", snap_step
    assert snapshot["DBInstanceIdentifier"] == DB and run_id.lower() in snapshot_id.lower()
    v1 = world.json("release", "show", "1.0.0")
    key = "releases/1.0.0/artifact"
    assert world.artifact_sha256(key) == v1["artifact"]["sha256"]
    assert ARTIFACT_BUCKET in world.buckets()
    world.rolled_back = world.inventory()

    # The registry says what runs.
    releases = {r["version"]: r for r in world.json("release", "list")["releases"]}
    assert releases["2.0.0"]["status"] == "bad" and not releases["2.0.0"]["current"]
    assert releases["1.0.0"]["current"] and releases["1.0.0"]["status"] == "stable"

    # history, status and the report.
    runs = [r for r in world.json("history")["runs"] if r["run_id"] == run_id]
    assert [r["run_id"] for r in runs] == [run_id] and runs[0]["result"] == "succeeded"
    assert runs[0]["time_to_traffic_restored_s"] == pytest.approx(
        result["time_to_traffic_restored_s"]
    )
    history = world.run("history").stdout
    assert run_id in history and "TRAFFIC BACK" in history
    assert f"{runs[0]['time_to_traffic_restored_s']:.1f}s" in history, history
    status = world.json("status")
    assert status["run"]["run_id"] == run_id and status["run"]["result"] == "succeeded"
    assert [s["state"] for s in status["steps"]] == ["verified"] * len(STEPS)
    assert run_id in world.run("status").stdout
    report = world.run("report", run_id)
    for heading in ("## Timeline", "## Outcome", "## Evidence", "## Lessons learned"):
        assert heading in report.stdout, report.stdout
    stored = world.runs_dir() / run_id / "report.md"
    assert stored.is_file() and "## Timeline" in stored.read_text()
    assert str(stored) in report.stderr, report.stderr
    data = world.json("report", run_id)
    assert data["summary"]["run_id"] == run_id, data


def test_already_at_the_target_changes_nothing(world: World) -> None:
    assert world.registry().current() == "1.0.0"
    cloud, runs = world.inventory(), world.run_ids()
    done = world.run("to", "1.0.0", "--yes")
    assert "already at 1.0.0" in done.stdout, done.stdout
    again = world.json("to", "1.0.0", "--yes")
    assert again["ok"] and again["result"] is None and again["plan"]["steps"] == [], again
    assert world.inventory() == cloud == world.rolled_back
    assert world.run_ids() == runs


def test_bad_input_is_refused_with_one_sentence_and_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    from rollback.store import open_store
    from rollback.store.lock import acquire_lock, release_lock

    cloud, store = world.inventory(), world.store_digest()

    message = one_sentence(world.run("to", "9.9.9", "--yes", expect=2))
    assert "9.9.9" in message and "not recorded" in message, message

    # The rollback just marked 2.0.0 bad: going "back" to it needs --force.
    message = one_sentence(world.run("to", "2.0.0", "--yes", expect=2))
    assert "2.0.0 is marked bad" in message and "--force" in message, message
    forced = world.json("plan", "2.0.0", "--force")
    assert forced["to_version"] == "2.0.0" and forced["steps"], forced

    # Stores that cannot be reached: an S3 bucket that does not exist, a file.
    message = one_sentence(
        world.run("to", "last-stable", "--yes", store="s3://no-such-bucket-here/prefix", expect=2)
    )
    assert "no-such-bucket-here" in message, message
    a_file = tmp_path / "store-is-a-file"
    a_file.write_text("not a directory\n")
    message = one_sentence(world.run("to", "last-stable", "--yes", store=str(a_file), expect=2))
    assert str(a_file) in message, message
    assert world.inventory() == cloud and world.store_digest() == store

    # Another run holds the lock: exit 3, naming it.
    held = acquire_lock(open_store(str(world.store)), STACK, "20990101T000000Z-test")
    try:
        locked = world.store_digest()
        refused = world.run("to", "2.0.0", "--yes", "--force", expect=3)
        # `to` shows the plan it was confirmed with (progress), then the one error.
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
        assert refused.stdout == "" and len(errors) == 1, refused.stderr
        message = refused.stderr.strip().splitlines()[-1]
        assert message == errors[0], refused.stderr
        for part in ("20990101T000000Z-test", held.owner, held.host, str(held.pid)):
            assert part in message, message
        assert world.store_digest() == locked
    finally:
        release_lock(open_store(str(world.store)), STACK, "20990101T000000Z-test")
    assert world.inventory() == cloud and world.store_digest() == store


def _load_run(world: World, run_id: str):  # type: ignore[no-untyped-def]
    from rollback.journal import Journal
    from rollback.store import open_store

    return Journal.load(open_store(str(world.store)), STACK, run_id)


# Where the process dies, and what the cloud must show at that moment.
BOUNDARIES = [
    # before traffic: the release is checked, nothing has moved (the read-only preflight's
    # records reach the store with traffic's `applying`, so traffic is in flight, not done)
    ("preflight:verified", "preflight", ON_GREEN, True),
    # traffic written, not yet verified: resume must verify it, not redo it blindly
    ("traffic:applied", "traffic", {"alb": ON_BLUE["alb"], "dns": ON_GREEN["dns"]}, True),
    # after traffic and the snapshot, before the stack
    ("db-snapshot:verified", "db-snapshot", ON_BLUE, True),
    # mid stack: two cloud writes into the re-apply of v1.0.0
    ("stack:applying+2", "stack", None, None),
    # before mark: the cloud is v1.0.0, the registry still says 2.0.0
    ("health:verified", "health", ON_BLUE, False),
]


def test_killed_at_each_step_boundary_then_resumed(world: World, tmp_path: Path) -> None:
    from tests.functional.rollbackworld import killer_env

    world.back_to_v2()
    runs_before = world.run_ids()
    run_id = None
    for i, (at, step, weights, notes_bucket) in enumerate(BOUNDARIES):
        env = killer_env(tmp_path / f"kill-{i}", at)
        args = ("resume", run_id) if run_id else ("to", "last-stable", "--yes")
        killed = world.run(*args, env=env, expect=None)
        assert killed.returncode == -9, f"{at}: exit {killed.returncode}\n{killed.stderr}"
        if run_id is None:
            (run_id,) = [r for r in world.run_ids() if r not in runs_before]
        run = _load_run(world, run_id)
        assert not run.finished, at
        record = run.step(step)
        if "+" in at:
            assert record.state == "applying", (at, record)
        else:
            assert record.state == at.split(":")[1], (at, record)
        later = STEPS[STEPS.index(step) + 1 :]
        if step == "preflight":
            assert run.step(later.pop(0)).state == "applying", (at, run.steps)
        assert all(run.step(n).state == "pending" for n in later), (at, run.steps)
        if weights is not None:
            assert world.weights() == weights, at
        if notes_bucket is not None:
            assert (NOTES_BUCKET in world.buckets()) is notes_bucket, at
        assert world.registry().current() == "2.0.0", at

    assert run_id is not None
    done = world.json("resume", run_id)
    assert done["ok"] and done["result"]["result"] == "succeeded", done
    assert [(s["name"], s["state"]) for s in done["result"]["steps"]] == [
        (n, "verified") for n in STEPS
    ]
    # The same verified state as the uninterrupted run, read from the cloud.
    assert world.weights() == ON_BLUE
    assert world.inventory() == world.rolled_back
    v1 = world.json("release", "show", "1.0.0")
    assert world.artifact_sha256("releases/1.0.0/artifact") == v1["artifact"]["sha256"]
    registry = world.registry()
    assert registry.current() == "1.0.0" and registry.show("2.0.0").status == "bad"
    run = _load_run(world, run_id)
    resumed = [e for e in run.events if e.type == "resumed"]
    assert len(resumed) == len(BOUNDARIES)
    assert all(e.data["lock_taken_over"] for e in resumed), resumed
    assert run.result == "succeeded" and world.json("status")["run"]["result"] == "succeeded"


# -- failures injected from outside, one per step kind ------------------------------


def told(result: dict) -> dict:  # type: ignore[type-arg]
    """Where the run says traffic and the stack are, from its step states alone.

    A traffic/dns step that was verified and not undone leaves traffic where the
    rollback put it (blue); one compensated or never applied leaves it on green.
    A stack step verified and not undone leaves v1.0.0 (no release-notes bucket).
    """
    states = {s["name"]: s["state"] for s in result["steps"]}
    kept = ("verified", "compensation-skipped", "compensation-failed")
    alb = ON_BLUE["alb"] if states["traffic"] in kept else ON_GREEN["alb"]
    dns = ON_BLUE["dns"] if states["dns"] in kept else ON_GREEN["dns"]
    # A failed run also reads traffic back from the cloud; when it does, that is the story
    # (a step that failed half-way may have moved traffic without saying so).
    observed = result["state"].get("traffic (read back)")
    if observed:
        m = re.search(
            r"listener blue (\d+) / green (\d+), Route53 blue (\d+) / green (\d+)", observed
        )
        assert m, observed
        b, g, rb, rg = (int(x) for x in m.groups())
        alb, dns = {"blue": b, "green": g}, {"blue": rb, "green": rg}
    story = {"weights": {"alb": alb, "dns": dns}}
    if states["stack"] in kept:
        story["notes_bucket"] = False
    elif states["stack"] in ("pending", "compensated"):
        story["notes_bucket"] = True
    return story


def failed_run(world: World, *args: str) -> dict:  # type: ignore[type-arg]
    """`rollback to last-stable --yes` that must exit 1; its result, checked against the cloud."""
    doc = world.json("to", "last-stable", "--yes", *args, expect=1)
    result = doc["result"]
    assert not doc["ok"] and result["result"] == "failed", doc
    check_story(world, result)
    return result  # type: ignore[no-any-return]


def check_story(world: World, result: dict) -> None:  # type: ignore[type-arg]
    story = told(result)
    assert world.weights() == story["weights"], (result["state"], world.weights())
    if "notes_bucket" in story:
        assert (NOTES_BUCKET in world.buckets()) is story["notes_bucket"], result["state"]
    # The run did not mark anything: 2.0.0 is still what runs, as the report says.
    assert world.registry().current() == "2.0.0"
    assert "not started" in result["state"]["release"], result["state"]
    report = world.runs_dir() / result["run_id"] / "report.md"
    assert report.is_file() and "## Final state" in report.read_text()


def failing_step(result: dict) -> dict:  # type: ignore[type-arg]
    # The step that failed carries the error (its state may have moved on to
    # compensation-skipped when its apply had changed nothing).
    (failed,) = [s for s in result["steps"] if s["error"]]
    later = [s["state"] for s in result["steps"]][
        [s["name"] for s in result["steps"]].index(failed["name"]) + 1 :
    ]
    assert set(later) <= {"pending"}, result["steps"]
    return failed  # type: ignore[no-any-return]


def _flip_byte(path: Path) -> bytes:
    """Corrupt one byte of a (read-only) store blob; return the original bytes."""
    import os
    import stat

    original = path.read_bytes()
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def _blob(world: World, sha256: str) -> Path:
    return world.store / "blobs" / "sha256" / sha256[:2] / sha256


@pytest.mark.parametrize(
    ("sent", "code", "said"),
    [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated (SIGTERM)")],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_mid_run_names_the_run_to_resume_and_resume_finishes_it(
    world: World, tmp_path: Path, sent: str, code: int, said: str
) -> None:
    # Ctrl-C (or a cancelled CI job's SIGTERM) after users are back on blue: it said
    # "nothing was changed after the prompt", and SIGTERM killed it with its lock held.
    from tests.functional.rollbackworld import killer_env

    world.back_to_v2()
    runs_before = world.run_ids()
    env = killer_env(tmp_path / "ctrl-c", "traffic:verified", sent=sent)
    stopped = world.run("to", "last-stable", "--yes", env=env, expect=code)
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    assert f"{said}: run {run_id} stopped before its end" in stopped.stderr, stopped.stderr
    assert f"`rollback resume {run_id}` carries it on" in stopped.stderr
    assert "nothing was changed" not in stopped.stderr and "Traceback" not in stopped.stderr
    assert world.weights()["alb"] == ON_BLUE["alb"]  # what it did stays done
    assert world.json("lock", "show")["locked"] is False
    assert world.json("status")["run"]["result"] == "unfinished"  # resumable

    done = world.json("resume", run_id)
    assert done["ok"] and done["result"]["result"] == "succeeded", done
    assert world.weights() == ON_BLUE and world.registry().current() == "1.0.0"


def test_sigterm_before_the_journal_releases_the_lock_and_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    """SIGTERM right after `to --yes` took the lock for its plan's read: exit 143 with one
    sentence, the lock released, no run journaled, the cloud as it was."""
    from tests.functional.rollbackworld import killer_env

    world.back_to_v2()
    runs_before, cloud = world.run_ids(), world.inventory()
    env = killer_env(tmp_path / "term", "locked", sent="SIGTERM")
    stopped = world.run("to", "last-stable", "--yes", env=env, expect=143)
    assert stopped.stderr.strip().endswith("Terminated (SIGTERM)."), stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert world.json("lock", "show")["locked"] is False
    assert world.run_ids() == runs_before and world.inventory() == cloud


def test_sigterm_in_the_middle_of_the_stack_apply_stops_cleanly_and_resume_finishes(
    world: World, tmp_path: Path
) -> None:
    """A cancelled CI job's SIGTERM during the stack step's apply: exit 143 naming the run,
    no traceback, the lock released, users left on the verified colour; resume finishes."""
    from tests.functional.rollbackworld import killer_env

    world.back_to_v2()
    runs_before = world.run_ids()
    env = killer_env(tmp_path / "term", "stack:applying+1", sent="SIGTERM")
    stopped = world.run("to", "last-stable", "--yes", env=env, expect=143)
    (run_id,) = [r for r in world.run_ids() if r not in runs_before]
    assert f"terminated (SIGTERM): run {run_id} stopped" in stopped.stderr, stopped.stderr
    assert "Traceback" not in stopped.stderr
    # The program's thread had finished applying before the run unwound and released its lock.
    after = stopped.stderr.split("terminated (SIGTERM)", 1)[1]
    assert "urn:pulumi:" not in after, stopped.stderr
    assert world.json("lock", "show")["locked"] is False
    assert world.weights() == ON_BLUE
    status = world.json("status")["run"]
    assert status["result"] == "unfinished", status

    done = world.json("resume", run_id)
    assert done["ok"] and done["result"]["result"] == "succeeded", done
    assert world.weights() == ON_BLUE and world.registry().current() == "1.0.0"


def test_a_corrupt_blob_is_refused_by_preflight_and_a_snapshot_quota_fails_db_snapshot(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.back_to_v2()
    cloud = world.inventory()
    v1 = world.json("release", "show", "1.0.0")
    blob = _blob(world, v1["checkpoint"]["sha256"])
    store = world.store_digest()
    original = _flip_byte(blob)
    try:
        # Preflight (before the lock and the journal): exit 4, nothing changed anywhere.
        doc = world.json("to", "last-stable", "--yes", expect=4)
    finally:
        blob.write_bytes(original)
    assert doc["error"] == "IntegrityError" and "checkpoint" in doc["message"], doc
    assert world.inventory() == cloud
    assert world.store_digest() == store  # (the blob put back): no lock, no run, no event

    # The account's manual snapshot quota is reached (moto reads the limit per call).
    rds = world.aws("rds")
    taken = len(rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"])
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", str(taken))
    result = failed_run(world)
    failed = failing_step(result)
    assert failed["name"] == "db-snapshot" and "quota" in failed["error"].lower(), failed
    assert len(rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]) == taken
    # Traffic went first and green (the failing colour) cannot take it back: users stay on
    # blue, as the read-back in the result says (failed_run checked it against boto3).
    assert world.weights() == ON_BLUE
    assert "listener blue 100 / green 0" in result["state"]["traffic (read back)"]


def test_blue_stopped_fails_the_rollback_and_the_report_says_where_traffic_is(
    world: World,
) -> None:
    # Blue's instance is down: no routable target, so traffic waits for the stack step,
    # which cannot register a stopped instance. (The traffic step itself refuses a colour
    # without targets, but the stack step before it always fails first.)
    ec2 = world.aws("ec2")
    blue = world.blue_instance()
    ec2.stop_instances(InstanceIds=[blue])
    try:
        plan = world.json("plan", "last-stable")
        names = [s["name"] for s in plan["steps"]]
        assert names.index("stack") < names.index("traffic"), names
        doc = world.json("to", "last-stable", "--yes", expect=1)
        result = doc["result"]
        failed = failing_step(result)
        assert failed["name"] == "stack" and "InvalidTarget" in failed["error"], failed
        assert world.registry().current() == "2.0.0"
        check_story(world, result)
    finally:
        ec2.start_instances(InstanceIds=[blue])
        world.back_to_v2()


def test_an_object_in_the_new_bucket_fails_the_stack(world: World) -> None:
    s3 = world.aws("s3")
    s3.put_object(Bucket=NOTES_BUCKET, Key="notes/2.0.0.md", Body=b"# 2.0.0\n")
    try:
        result = failed_run(world)
    finally:
        s3.delete_object(Bucket=NOTES_BUCKET, Key="notes/2.0.0.md")
    failed = failing_step(result)
    assert failed["name"] == "stack" and NOTES_BUCKET in failed["error"], failed
    # Failing forward: nothing is undone, users stay on blue where the verified step put them.
    states = {s["name"]: s["state"] for s in result["steps"]}
    assert states["traffic"] == states["dns"] == "verified", result["steps"]
    assert world.weights() == ON_BLUE and NOTES_BUCKET in world.buckets()


def test_a_blob_corrupted_mid_run_fails_the_artifact(world: World) -> None:
    from tests.functional.rollbackworld import journal_has, wait_for

    world.back_to_v2()
    s3 = world.aws("s3")
    key = "releases/1.0.0/artifact"
    versions = s3.list_object_versions(Bucket=ARTIFACT_BUCKET, Prefix=key)
    for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        s3.delete_object(Bucket=ARTIFACT_BUCKET, Key=key, VersionId=v["VersionId"])
    v1 = world.json("release", "show", "1.0.0")
    runs = world.run_ids()
    proc = world.popen("--output", "json", "to", "last-stable", "--yes")
    blob = _blob(world, v1["artifact"]["sha256"])
    original = b""
    try:
        run_id = wait_for("the run", lambda: [r for r in world.run_ids() if r not in runs])[0]
        wait_for("the stack step", lambda: journal_has(world, run_id, "stack", "applying"))
        original = _flip_byte(blob)  # after preflight checked it, before the upload
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        if original:
            blob.write_bytes(original)
    assert proc.returncode == 1, err
    import json

    result = json.loads(out)["result"]
    check_story(world, result)
    failed = failing_step(result)
    assert failed["name"] == "artifact" and v1["artifact"]["sha256"] in failed["error"], failed
    assert world.artifact_sha256(key) is None


def test_two_rollbacks_at_once_and_a_failing_health_check(world: World) -> None:
    world.back_to_v2()
    world.blue.status = 500  # blue answers 500 too: the health step cannot pass
    runs = world.run_ids()
    args = ("--output", "json", "to", "last-stable", "--yes")
    # A short health deadline (a setting operators tune): the winner fails in seconds, not a minute.
    quick = {"ROLLBACK_HEALTH_DEADLINE": "6"}
    procs = [world.popen(*args, env=quick), world.popen(*args, env=quick)]
    try:
        import json

        # The loser exits 3 at once, naming the winner; the winner runs to the health deadline.
        loser = None
        while loser is None:
            for proc in procs:
                if proc.poll() is not None:
                    loser = proc
                    break
        out, err = loser.communicate(timeout=10)
        assert loser.returncode == 3, err
        (winner,) = [p for p in procs if p is not loser]
        error = json.loads(out)
        holder = error["holder"]
        assert holder["pid"] == winner.pid, error
        message = err.strip().splitlines()[-1]
        for part in (holder["run_id"], holder["owner"], holder["host"], str(winner.pid)):
            assert part in message, message
        out, err = winner.communicate(timeout=150)
    finally:
        for proc in procs:
            proc.kill()
        world.blue.status = 200
    assert winner.returncode == 1, err
    result = json.loads(out)["result"]
    assert result["run_id"] == holder["run_id"]
    assert [r for r in world.run_ids() if r not in runs] == [holder["run_id"]]
    failed = failing_step(result)
    assert failed["name"] == "health" and "500" in failed["error"], failed
    states = {s["name"]: s["state"] for s in result["steps"]}
    # Failing forward: nothing is undone; users stay on blue with v1.0.0.
    assert states["traffic"] == states["dns"] == states["stack"] == "verified"
    check_story(world, result)
    assert world.weights() == ON_BLUE and NOTES_BUCKET not in world.buckets()


def test_a_deleted_hosted_zone_fails_dns(world: World) -> None:
    """Last: it deletes the zone every recorded topology names."""
    world.back_to_v2()
    route53 = world.aws("route53")
    (zone,) = [
        z for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == "example.internal."
    ]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    doomed = [r for r in records if r["Type"] not in ("NS", "SOA")]
    route53.change_resource_record_sets(
        HostedZoneId=zone["Id"],
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": r} for r in doomed]},
    )
    route53.delete_hosted_zone(Id=zone["Id"])
    doc = world.json("to", "last-stable", "--yes", expect=1)
    result = doc["result"]
    failed = failing_step(result)
    assert failed["name"] == "dns", failed
    states = {s["name"]: s["state"] for s in result["steps"]}
    # The listener moved to blue: it stays there, as the report says.
    assert states["traffic"] == "verified", result["steps"]
    assert world.weights()["alb"] == ON_BLUE["alb"]
    assert "done and verified" in result["state"]["traffic"], result["state"]
    assert NOTES_BUCKET in world.buckets() and world.registry().current() == "2.0.0"
