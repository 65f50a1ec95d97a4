"""What a warm agent keeps never decides a rollback: the store and the cloud, read at the alarm, do.

The agent warms (workbenches, release tag checks, passphrase checks) and then
the store changes under it: a release marked bad, a new stable release, a new
current release. Each alarm after that must roll back as a cold agent would;
every assertion reads the listener or the store back. The live read started
on receipt is used only for the topology it was started for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rollback.agent import Agent
from rollback.agent_settle import AgentSettings, Handled
from rollback.agent_warm import AgentWorkbench, LiveAhead
from rollback.journal import list_runs
from rollback.models import Topology
from rollback.planner import Options
from rollback.releases import Attachments, Registry
from tests.unit.test_agent import Rig, event, rig  # noqa: F401  (the in-process rig)
from tests.unit.test_fleet import listener_weights
from tests.unit.test_releases import commit

STACK = "shop/s1"
ALARM = "shop-s1-5xx"


def warmed(rig: Rig) -> Agent:  # noqa: F811
    """An agent that has warmed every stack, as `serve` does before its first receive."""
    agent = Agent(
        rig.queue,
        rig.store,
        rig.bench,
        settings=AgentSettings(wait_s=0, retry_delay_s=0),
        dead_letter=rig.dlq,
    )
    agent.index.refresh()
    agent._warm_up()
    assert agent.warmth.prepared[STACK].current == "1.5.0"
    return agent


def alarm(rig: Rig, agent: Agent) -> Handled:  # noqa: F811
    """Send the alarm now and let the agent settle it (no re-warming in between)."""
    rig.queue.send(event(ALARM))
    [message] = rig.queue.receive(wait_s=0)
    return agent.handle(message)


@pytest.fixture
def views(monkeypatch: pytest.MonkeyPatch) -> list[Topology]:
    """The topologies whose live read, started on receipt, a plan took."""
    taken: list[Topology] = []
    view = LiveAhead.view

    def noted(self: LiveAhead) -> Any:
        taken.append(self.topology)
        return view(self)

    monkeypatch.setattr(LiveAhead, "view", noted)
    return taken


def record(rig: Rig, version: str, colour: str, tmp_path: Path) -> None:  # noqa: F811
    """Record `version` of STACK on `colour` (it becomes current), as build_stacks does.

    The colour's instance is tagged with the version, where the outcome check reads it.
    """
    from dataclasses import replace

    import git

    topology = rig.topologies[STACK]
    topology = replace(topology, versions={**topology.versions, colour: version})
    [target] = rig.aws("elbv2").describe_target_health(
        TargetGroupArn=topology.target_groups[colour]
    )["TargetHealthDescriptions"]
    rig.aws("ec2").create_tags(
        Resources=[target["Target"]["Id"]], Tags=[{"Key": "AppVersion", "Value": version}]
    )
    repo = git.Repo(tmp_path / "repos" / "shop" / "s1")
    commit(repo, "main.py", version, f"chore: {version}")
    Registry(rig.store, STACK).record(
        version,
        tmp_path / "app.tgz",
        Path(repo.working_dir),
        attachments=Attachments(topology=json.dumps(topology.to_dict()).encode(), color=colour),
    )


def weights(rig: Rig) -> dict[str, int]:  # noqa: F811
    return listener_weights(rig.aws("elbv2"), rig.topologies[STACK])


def test_a_warm_agent_plans_from_the_read_it_started_on_receipt(
    rig: Rig,  # noqa: F811
    views: list[Topology],
) -> None:
    agent = warmed(rig)
    handled = alarm(rig, agent)
    assert handled.outcome == "done" and handled.runs[0]["result"] == "succeeded", handled.runs[0][
        "message"
    ]
    assert views == [rig.topologies[STACK]]
    assert weights(rig) == {"blue": 0, "green": 100}
    [run] = list_runs(rig.store, STACK)
    assert (run.from_version, run.to_version) == ("1.5.0", "1.4.0")
    # Preflight took the planner's read of green's routable targets (seconds old).
    [run_doc] = [
        e for e in Registry(rig.store, STACK).store.list_docs("runs/") if e.endswith("run.json")
    ]
    plan = json.loads(rig.store.get_doc(run_doc))["plan"]
    traffic = next(s for s in plan["steps"] if s["kind"] == "traffic")
    assert traffic["params"]["routable"] == {"green": 1}  # the receiving colour's, read once


def test_a_release_marked_bad_after_warming_is_never_rolled_back_to(
    rig: Rig,  # noqa: F811
) -> None:
    agent = warmed(rig)
    Registry(rig.store, STACK).mark("1.4.0", "bad", "found broken after the agent started")
    handled = alarm(rig, agent)
    assert handled.outcome == "dead-lettered", handled
    assert "marked stable" in handled.detail
    assert weights(rig) == {"blue": 100, "green": 0}
    assert list_runs(rig.store, STACK) == []


def test_a_stable_release_recorded_after_warming_is_the_target(
    rig: Rig,  # noqa: F811
    tmp_path: Path,
) -> None:
    agent = warmed(rig)
    record(rig, "1.4.1", "green", tmp_path)
    record(rig, "1.5.0-hotfix.1", "blue", tmp_path)  # current again, a newer candidate
    Registry(rig.store, STACK).mark("1.4.1", "stable", "baked after the agent started")
    handled = alarm(rig, agent)
    assert handled.outcome == "done" and handled.runs[0]["result"] == "succeeded", handled.runs[0][
        "message"
    ]
    [run] = list_runs(rig.store, STACK)
    assert (run.from_version, run.to_version) == ("1.5.0-hotfix.1", "1.4.1")
    assert weights(rig) == {"blue": 0, "green": 100}
    assert Registry(rig.store, STACK).current() == "1.4.1"


def test_a_new_current_release_after_warming_is_read_again(
    rig: Rig,  # noqa: F811
    tmp_path: Path,
    views: list[Topology],
) -> None:
    agent = warmed(rig)
    record(rig, "1.6.0", "blue", tmp_path)
    handled = alarm(rig, agent)
    assert handled.runs[0]["result"] == "succeeded", handled
    [run] = list_runs(rig.store, STACK)
    assert (run.from_version, run.to_version) == ("1.6.0", "1.4.0")
    assert views == []  # warmed for 1.5.0: the planner read the cloud itself
    assert weights(rig) == {"blue": 0, "green": 100}
    # After the run the agent warms the stack again, for what is current now.
    agent._rewarm(handled)
    assert agent.warmth.prepared[STACK].current == "1.4.0"


def test_a_read_started_for_another_topology_is_not_taken(
    rig: Rig,  # noqa: F811
    views: list[Topology],
) -> None:
    from dataclasses import replace

    agent = warmed(rig)
    bench = agent.warmth.bench(STACK)
    assert isinstance(bench, AgentWorkbench)
    other = replace(rig.topologies[STACK], listener_arn=rig.topologies["shop/s0"].listener_arn)
    target = agent.warmth.prepared[STACK].target
    assert target is not None
    bench.ahead = LiveAhead(agent.warmth.pool, bench, other, target)
    plan = bench.planner().plan("last-stable", Options())
    assert views == [] and bench.ahead is None
    traffic = plan.step("traffic")
    assert traffic.description.changes["from"] == {"blue": 100, "green": 0}


def test_a_read_ahead_is_not_taken_when_old_or_when_a_run_holds_the_stack(
    rig: Rig,  # noqa: F811
    views: list[Topology],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rollback.agent_warm as warm
    from rollback.store.lock import acquire_lock, read_lock, release_lock

    agent = warmed(rig)
    bench = agent.warmth.bench(STACK)
    assert isinstance(bench, AgentWorkbench)
    monkeypatch.setattr(warm, "AHEAD_FRESH_S", 0.0)  # any read is too old now
    agent.warmth.read_ahead(STACK, "1.5.0")
    assert bench.ahead is not None
    # The read is made under the lock taken for the run it is for.
    held = read_lock(rig.store, STACK)
    assert held is not None and held.pid == os.getpid()
    bench.planner().plan("last-stable", Options())
    assert views == []
    agent.warmth.forget_reads(STACK)  # no run took the lock: it is released
    assert read_lock(rig.store, STACK) is None
    # A run holds the stack (a cutover being stopped): nothing is read ahead.
    acquire_lock(rig.store, STACK, "20261130T000000Z-abcd")
    agent.warmth.read_ahead(STACK, "1.5.0")
    assert bench.ahead is None and agent.warmth.lock(STACK) is None
    release_lock(rig.store, STACK, "20261130T000000Z-abcd")


@pytest.fixture
def traffic_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The listeners whose forward config a traffic step read for itself (not the plan's read)."""
    from rollback.steps.traffic import TrafficStep

    read: list[str] = []
    start = TrafficStep._start_reads

    def noted(self: TrafficStep) -> Any:
        read.append(self.topology.listener_arn)
        return start(self)

    monkeypatch.setattr(TrafficStep, "_start_reads", noted)
    return read


def test_the_traffic_step_acts_on_the_read_made_under_the_lock_taken_on_receipt(
    rig: Rig,  # noqa: F811
    views: list[Topology],
    traffic_reads: list[str],
) -> None:
    from rollback.store.lock import read_lock

    agent = warmed(rig)
    handled = alarm(rig, agent)
    assert handled.runs[0]["result"] == "succeeded", handled.runs[0]["message"]
    assert views == [rig.topologies[STACK]] and traffic_reads == []
    assert weights(rig) == {"blue": 0, "green": 100}
    assert read_lock(rig.store, STACK) is None and agent.warmth.locks == {}


@pytest.fixture
def held_at_read(
    rig: Rig,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> list[str | None]:
    """The run id holding the stack lock as each plan's live read started (None: free)."""
    import rollback.planner as planner
    from rollback.store.lock import read_lock

    held: list[str | None] = []
    read_live = planner.read_live

    def noted(*args: Any) -> Any:
        lock = read_lock(rig.store, STACK)
        held.append(lock.run_id if lock else None)
        return read_live(*args)

    monkeypatch.setattr(planner, "read_live", noted)
    monkeypatch.setattr("rollback.orchestrate.read_live", noted)
    return held


def test_an_emergency_plans_under_its_lock_and_the_traffic_step_takes_that_read(
    rig: Rig,  # noqa: F811
    traffic_reads: list[str],
    held_at_read: list[str | None],
) -> None:
    from rollback.orchestrate import emergency
    from rollback.store.lock import read_lock

    outcome = emergency(rig.bench(STACK), "the 5xx alarm", actor="ana")
    assert outcome.ok and outcome.result is not None
    # The plan's read was made holding the lock of the very run, and the step acted on it.
    assert held_at_read == [outcome.plan.run_id] and traffic_reads == []
    assert weights(rig) == {"blue": 0, "green": 100}
    assert read_lock(rig.store, STACK) is None


@pytest.mark.parametrize(
    ("confirmation", "under_lock"), [("--yes", True), ("prompt", False)], ids=["yes", "prompt"]
)
def test_rollback_to_plans_under_its_lock_unless_a_person_confirms_in_between(
    rig: Rig,  # noqa: F811
    traffic_reads: list[str],
    held_at_read: list[str | None],
    confirmation: str,
    under_lock: bool,
) -> None:
    """`rollback to --yes` takes the lock as its plan's live read starts, and the traffic step
    acts on that read; behind a prompt the stack is not held, and the step reads again."""
    from rollback.orchestrate import rollback_to
    from rollback.store.lock import read_lock

    outcome = rollback_to(
        rig.bench(STACK),
        "last-stable",
        Options(reason="5xx", actor="ana"),
        confirm=lambda plan: True,
        confirmation=confirmation,
    )
    assert outcome.ok and outcome.result is not None
    assert held_at_read == [outcome.plan.run_id if under_lock else None]
    assert traffic_reads == ([] if under_lock else [rig.topologies[STACK].listener_arn])
    assert weights(rig) == {"blue": 0, "green": 100}
    assert read_lock(rig.store, STACK) is None


def test_a_refused_rollback_to_leaves_the_store_tree_as_it_was(
    rig: Rig,  # noqa: F811
) -> None:
    """The lock taken for the plan's read goes with the refusal, and so does its folder."""
    from rollback.errors import UsageError
    from rollback.orchestrate import rollback_to

    root = Path(rig.store.root)  # type: ignore[attr-defined]
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert not (root / "locks").exists()
    with pytest.raises(UsageError, match="not confirmed"):
        rollback_to(
            rig.bench(STACK),
            "last-stable",
            Options(reason="5xx", actor="ana"),
            confirm=lambda plan: False,
            confirmation="--yes",
        )
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    assert weights(rig) == {"blue": 100, "green": 0}


def test_a_duplicate_alarm_releases_the_lock_taken_on_receipt(
    rig: Rig,  # noqa: F811
) -> None:
    from rollback.agent_claims import claim, transition_key
    from rollback.agent_messages import parse_message
    from rollback.store.lock import read_lock

    agent = warmed(rig)
    body = event(ALARM)
    change = parse_message(body, "m-0")
    # Another agent claimed this very transition from another delivery of the event.
    claim(rig.store, transition_key(change.key), {"message_id": "another-delivery"})
    rig.queue.send(body)
    [message] = rig.queue.receive(wait_s=0)
    handled = agent.handle(message)
    assert handled.outcome == "duplicate", handled
    assert read_lock(rig.store, STACK) is None and agent.warmth.locks == {}
    assert list_runs(rig.store, STACK) == []
    assert weights(rig) == {"blue": 100, "green": 0}
