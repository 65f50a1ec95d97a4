"""Issue 9 end to end: one owner of traffic, the outcome check, failing forward, abort.

The world (rollbackworld.py) is built with `ignore_weights=False`: from 2.0.0
on, the stack program declares the listener and Route53 weights *without*
`ignore_changes`, as a user's program might, so every apply that changes the
weights' inputs tries to move users, and the toolkit must put them back.
Every assertion reads the cloud with boto3 (weights, instance tags) or the
store after the command.
"""

from __future__ import annotations

from collections.abc import Iterator

import git
import pytest

from tests.functional.rollbackworld import World, built_world, journal_has, wait_for
from tests.functional.stackrepo import commit_all, edit

ON_BLUE = {"alb": {"blue": 100, "green": 0}, "dns": {"blue": 100, "green": 0}}
ON_GREEN = {"alb": {"blue": 0, "green": 100}, "dns": {"blue": 0, "green": 100}}
CONFIG = "Pulumi.dev.yaml"


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(moto_server, tmp_path_factory.mktemp("outcome"), ignore_weights=False) as w:
        yield w


def green_versions(world: World) -> set[str]:
    ec2 = world.aws("ec2")
    found = ec2.describe_instances(Filters=[{"Name": "tag:Color", "Values": ["green"]}])
    return {
        t["Value"]
        for r in found["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
        for t in i.get("Tags", [])
        if t["Key"] == "AppVersion"
    }


def test_stack_up_and_reapply_after_a_cutover_leave_users_where_they_are(world: World) -> None:
    assert world.weights() == ON_GREEN  # the cutover moved users; the toolkit owns that now
    repo = world.repo_dir
    git_repo = git.Repo(repo)
    # An old habit: weights edited in the stack config, then `stack up`.
    edit(git_repo, CONFIG, 'webapp:blueWeight: "100"', 'webapp:blueWeight: "50"')
    edit(git_repo, CONFIG, 'webapp:greenWeight: "0"', 'webapp:greenWeight: "50"')
    try:
        up = world.json("stack", "up", "--program", str(repo))
    finally:
        edit(git_repo, CONFIG, 'webapp:blueWeight: "50"', 'webapp:blueWeight: "100"')
        edit(git_repo, CONFIG, 'webapp:greenWeight: "50"', 'webapp:greenWeight: "0"')
    assert world.weights() == ON_GREEN
    (warning,) = up["warnings"]
    assert "aws:lb/listener:Listener" in warning and "ignore_changes" in warning, warning
    assert up["traffic"]["restored"] and up["traffic"]["desired"] == {"blue": 0, "green": 100}
    # The put-back is proven by reading the listener (and Route53) back, and says so.
    proof = up["traffic"]["evidence"]
    assert proof and all(e["ok"] for e in proof), proof

    again = world.json("stack", "reapply", "2.0.0")  # its recorded weights say blue 100
    assert world.weights() == ON_GREEN
    assert again["up"]["warnings"], again["up"]


def test_rollback_to_the_release_on_green_serves_it_and_the_outcome_proves_it(
    world: World,
) -> None:
    # 3.0.0 deployed on blue (its config's weights say green, another old habit), recorded,
    # cut over to blue. Then 3.0.0 goes bad: back to 2.0.0, which green still runs.
    git_repo = git.Repo(world.repo_dir)
    edit(git_repo, CONFIG, "webapp:liveColor: green", "webapp:liveColor: blue")
    edit(git_repo, CONFIG, "webapp:blueVersion: 1.0.0", "webapp:blueVersion: 3.0.0")
    edit(git_repo, CONFIG, 'webapp:blueWeight: "100"', 'webapp:blueWeight: "0"')
    edit(git_repo, CONFIG, 'webapp:greenWeight: "0"', 'webapp:greenWeight: "100"')
    commit_all(git_repo, "feat: 3.0.0 on blue")
    world.release(git_repo, "3.0.0")
    world.run("cutover", "blue", "--steps", "100", "--bake", "0")
    assert world.weights() == ON_BLUE
    world.blue.status = 500

    done = world.json("to", "2.0.0", "--yes")

    result = done["result"]
    assert done["ok"] and result["result"] == "succeeded", result["message"]
    # Users are on green, and green's instances say 2.0.0: read back with boto3.
    assert world.weights() == ON_GREEN
    assert green_versions(world) == {"2.0.0"}
    assert result["outcome"]["served"] == {"green": "2.0.0"}, result["outcome"]
    # The re-applied 2.0.0 program moved the listener back to blue; the toolkit put it back.
    stack = next(s for s in result["steps"] if s["name"] == "stack")
    assert stack["state"] == "verified"
    assert any("ignore_changes" in w for w in result["warnings"]), result["warnings"]
    v2 = world.json("release", "show", "2.0.0")
    assert world.artifact_sha256("releases/2.0.0/artifact") == v2["artifact"]["sha256"]
    assert world.registry().current() == "2.0.0"
    world.blue.status = 200


def test_an_outcome_broken_behind_the_runs_back_fails_naming_what_users_get(
    world: World,
) -> None:
    # Back on 3.0.0 (blue), then roll back to 2.0.0 again; while the health step runs,
    # someone retags green's instances: every step verified, the outcome does not hold.
    registry = world.registry()
    registry.mark("3.0.0", "candidate", "test: 3.0.0 is back")
    registry.set_current("3.0.0", "test: 3.0.0 is back")
    world.run("stack", "reapply", "3.0.0")
    world.run("cutover", "blue", "--steps", "100", "--bake", "0")
    runs = world.run_ids()
    proc = world.popen("--output", "json", "to", "2.0.0", "--yes")
    try:
        run_id = wait_for("the run", lambda: [r for r in world.run_ids() if r not in runs])[0]
        wait_for("the health step", lambda: journal_has(world, run_id, "health", "applying"))
        ec2 = world.aws("ec2")
        ids = [
            i["InstanceId"]
            for r in ec2.describe_instances(Filters=[{"Name": "tag:Color", "Values": ["green"]}])[
                "Reservations"
            ]
            for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        ]
        ec2.create_tags(Resources=ids, Tags=[{"Key": "AppVersion", "Value": "9.9.9"}])
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    import json

    assert proc.returncode == 1, err
    result = json.loads(out)["result"]
    assert result["result"] == "failed"
    assert all(s["state"] == "verified" for s in result["steps"]), result["steps"]
    assert not result["outcome"]["ok"]
    assert "users are served 9.9.9" in result["message"] and "not 2.0.0" in result["message"]
    # Put the truth back for the next test.
    ec2.create_tags(Resources=ids, Tags=[{"Key": "AppVersion", "Value": "2.0.0"}])
    # The outcome failure is resumable: once fixed, resume checks it again and succeeds.
    done = world.json("resume", run_id)
    assert done["ok"] and done["result"]["outcome"]["ok"], done["result"]["message"]


def back_to_3(world: World) -> None:
    world.blue.status = world.green.status = 200
    registry = world.registry()
    registry.mark("3.0.0", "candidate", "test: 3.0.0 is back")
    registry.set_current("3.0.0", "test: 3.0.0 is back")
    world.run("stack", "reapply", "3.0.0")
    world.run("cutover", "blue", "--steps", "100", "--bake", "0")
    assert world.weights() == ON_BLUE


QUICK = {"ROLLBACK_HEALTH_DEADLINE": "3"}


def test_a_failure_after_traffic_moved_keeps_users_and_resume_finishes_forward(
    world: World,
) -> None:
    back_to_3(world)
    world.green.status = 503  # the target colour is not healthy yet: the health step fails
    failed = world.json("to", "2.0.0", "--yes", expect=1, env=QUICK)["result"]
    states = {s["name"]: s["state"] for s in failed["steps"]}
    assert states["health"] == "failed" and states["traffic"] == "verified", states
    assert states["mark"] == "pending"
    # Failing forward: users stay where the verified traffic step put them, nothing undone.
    assert world.weights() == ON_GREEN
    assert not any(s.endswith("compensated") for s in states.values())
    assert f"rollback resume {failed['run_id']}" in failed["message"]
    assert world.registry().current() == "3.0.0"

    world.green.status = 200  # the cause is fixed
    done = world.json("resume", failed["run_id"])
    assert done["ok"] and done["result"]["outcome"]["ok"], done["result"]["message"]
    assert world.weights() == ON_GREEN and world.registry().current() == "2.0.0"


@pytest.mark.parametrize("blue", [500, 200])
def test_abort_sends_users_back_only_towards_a_healthy_colour(world: World, blue: int) -> None:
    back_to_3(world)
    world.green.status = 503
    failed = world.json("to", "2.0.0", "--yes", expect=1, env=QUICK)["result"]
    assert world.weights() == ON_GREEN
    world.blue.status = blue

    aborted = world.json("abort", failed["run_id"])["result"]

    assert aborted["result"] == "aborted"
    traffic = next(s for s in aborted["steps"] if s["name"] == "traffic")
    if blue == 200:
        assert traffic["state"] == "compensated" and world.weights() == ON_BLUE
    else:
        assert traffic["state"] == "compensation-skipped" and world.weights() == ON_GREEN
        assert "not healthy" in traffic["note"]
    # The desired traffic follows what abort did: a later `stack up` keeps it.
    before = world.weights()
    world.run("stack", "reapply", "3.0.0")
    assert world.weights() == before
    world.run("abort", failed["run_id"], expect=2)  # nothing left to abort
    world.blue.status = world.green.status = 200
