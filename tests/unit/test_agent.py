"""The agent in-process: message parsing, the rule's pattern, retries and dead letters, metrics.

Queues and stacks live in in-process moto; the agent settles one message at
a time (`serve(..., max_messages=N)` with no long-poll wait), and every
assertion reads the queues, the listeners or the store back.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.agent import Agent
from rollback.agent_claims import read_result
from rollback.agent_messages import AlarmChange, Job, Malformed, parse_message
from rollback.agent_metrics import AgentMetrics
from rollback.agent_settle import AgentSettings
from rollback.agent_setup import alarm_pattern
from rollback.aws.session import Clients
from rollback.aws.sqs import Queue
from rollback.errors import CloudError
from rollback.journal import list_runs
from rollback.models import Topology
from rollback.orchestrate import Workbench
from rollback.releases import Registry
from rollback.store import Store, open_store
from rollback.waiting import Timing
from tests.unit.test_fleet import build_stacks, listener_weights

# The example event of the CloudWatch user guide ("Alarm events and EventBridge"), as
# EventBridge delivers it to an SQS target.
AWS_EXAMPLE = {
    "version": "0",
    "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
    "detail-type": "CloudWatch Alarm State Change",
    "source": "aws.cloudwatch",
    "account": "123456789012",
    "time": "2019-10-02T17:04:40Z",
    "region": "us-east-1",
    "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"],
    "detail": {
        "alarmName": "ServerCpuTooHigh",
        "configuration": {
            "description": "Goes into alarm when server CPU utilization is too high!"
        },
        "previousState": {
            "reason": "Threshold Crossed: 1 out of the last 1 datapoints [0.0666 (01/10/19 13:46:00)] was not greater than the threshold (50.0)",
            "timestamp": "2019-10-01T13:56:40.985+0000",
            "value": "OK",
        },
        "state": {
            "reason": "Threshold Crossed: 1 out of the last 1 datapoints [99.5 (02/10/19 16:59:00)] was greater than the threshold (50.0)",
            "timestamp": "2019-10-02T17:04:40.985+0000",
            "value": "ALARM",
        },
    },
}


def event(alarm: str, state: str = "ALARM", at: datetime | None = None) -> str:
    doc = json.loads(json.dumps(AWS_EXAMPLE))
    doc["detail"]["alarmName"] = alarm
    doc["detail"]["state"]["value"] = state
    moment = at or datetime.now(UTC)
    doc["detail"]["state"]["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return json.dumps(doc)


# -- messages ------------------------------------------------------------------------------


def test_the_aws_example_event_is_an_alarm_change_with_one_key_per_transition() -> None:
    change = parse_message(json.dumps(AWS_EXAMPLE), "m-1")
    assert change == AlarmChange(
        alarm="ServerCpuTooHigh",
        state="ALARM",
        previous="OK",
        at="2019-10-02T17:04:40.985+0000",
        reason=AWS_EXAMPLE["detail"]["state"]["reason"],  # type: ignore[index]
        event_id="c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
    )
    again = dict(AWS_EXAMPLE, id="another-delivery")
    assert parse_message(json.dumps(again), "m-2").key == change.key  # type: ignore[union-attr]
    later = json.loads(json.dumps(AWS_EXAMPLE))
    later["detail"]["state"]["timestamp"] = "2019-10-02T18:00:00.000+0000"
    assert parse_message(json.dumps(later), "m-3").key != change.key  # type: ignore[union-attr]


def test_a_job_message_takes_its_id_or_the_message_id() -> None:
    job = parse_message(json.dumps({"stack": "shop/s1", "to": "1.4.0", "reason": "r"}), "m-9")
    assert job == Job(id="m-9", stack="shop/s1", to="1.4.0", reason="r")
    named = parse_message(json.dumps({"stack": "shop/s1", "id": "j-1", "force": True}), "m-9")
    assert isinstance(named, Job) and (named.id, named.to, named.force) == (
        "j-1",
        "last-stable",
        True,
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("nope", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"hello": 1}', "neither a CloudWatch alarm state change nor a job"),
        ('{"stack": "shop"}', "is not PROJECT/STACK"),
        ('{"stack": "shop/.."}', "is not PROJECT/STACK"),
        ('{"stack": "shop/a", "to": ""}', "is not a version"),
        ('{"stack": "shop/a", "id": "../x"}', "job id"),
        ('{"stack": "shop/a", "force": "yes"}', "`force` must be true or false"),
        (
            '{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"}',
            "is not a",
        ),
        (
            '{"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch"}',
            "no `detail`",
        ),
    ],
)
def test_malformed_messages_say_what_is_wrong(body: str, says: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse_message(body, "m")
    assert says in caught.value.message


def test_the_rules_pattern_matches_exactly_the_stacks_alarms_going_to_alarm() -> None:
    from moto.events.models import EventPattern

    pattern = EventPattern.load(json.dumps(alarm_pattern(["ServerCpuTooHigh", "other"])))
    assert pattern.matches_event(AWS_EXAMPLE)
    ok = json.loads(json.dumps(AWS_EXAMPLE))
    ok["detail"]["state"]["value"] = "OK"
    assert not pattern.matches_event(ok)
    stranger = json.loads(json.dumps(AWS_EXAMPLE))
    stranger["detail"]["alarmName"] = "not-ours"
    assert not pattern.matches_event(stranger)


# -- the agent against in-process moto ---------------------------------------------------------


@dataclass
class Rig:
    aws: Clients
    store: Store
    topologies: dict[str, Topology]
    queue: Queue
    dlq: Queue

    def agent(self, bench_for: Any = None, **settings: Any) -> Agent:
        return Agent(
            self.queue,
            self.store,
            bench_for or self.bench,
            settings=AgentSettings(**{"wait_s": 0, "retry_delay_s": 0, **settings}),
            dead_letter=self.dlq,
            warm=False,  # bench_for is called by the messages only
        )

    def bench(self, stack: str) -> Workbench:
        return Workbench(
            clients=self.aws,
            store=self.store,
            registry=Registry(self.store, stack),
            engine=lambda: object(),  # no stack step is planned; nothing to cancel
            timing=Timing(sleep=lambda s: None),
        )

    def settle(self, agent: Agent, count: int) -> list[str]:
        agent.serve(threading.Event(), max_messages=count)
        return [h.outcome for h in agent.handled]

    def dead_letters(self) -> list[dict[str, Any]]:
        got = self.aws("sqs").receive_message(
            QueueUrl=self.dlq.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return list(got.get("Messages", []))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with mock_aws():
        aws = Clients(boto3.Session(region_name="us-east-1"))
        store = open_store(str(tmp_path / "store"))
        topologies = build_stacks(aws, store, tmp_path, 2)
        sqs = aws("sqs")
        dlq = sqs.create_queue(QueueName="q-dlq")["QueueUrl"]
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        yield Rig(aws, store, topologies, Queue(sqs, url), Queue(sqs, dlq))


def test_an_alarm_rolls_its_stack_back_once_and_an_ok_is_ignored(rig: Rig) -> None:
    rig.queue.send(event("shop-s1-5xx", "OK"))
    rig.queue.send(event("shop-s1-5xx"))
    agent = rig.agent()
    assert rig.settle(agent, 2) == ["ignored", "done"]
    assert listener_weights(rig.aws("elbv2"), rig.topologies["shop/s1"]) == {
        "blue": 0,
        "green": 100,
    }
    assert listener_weights(rig.aws("elbv2"), rig.topologies["shop/s0"]) == {
        "blue": 100,
        "green": 0,
    }
    [run] = list_runs(rig.store, "shop/s1")
    assert run.result == "succeeded" and "[incident " in run.reason
    # A second alarm of the same stack, fired before the rollback made 1.4.0 current, is stale.
    before = datetime.now(UTC) - timedelta(minutes=5)
    rig.queue.send(event("shop-s1-5xx", at=before))
    assert rig.settle(agent, 3)[-1] == "done"
    assert agent.handled[-1].runs[0]["result"] == "stale"
    assert len(list_runs(rig.store, "shop/s1")) == 1
    assert rig.queue.approximate_depth() == (0, 0)


def test_a_transient_failure_is_retried_then_dead_lettered_with_its_reason(rig: Rig) -> None:
    def broken(stack: str) -> Workbench:
        raise CloudError("reading the listener failed: throttled (Throttling).")

    rig.queue.send(event("shop-s0-5xx"))
    assert rig.settle(rig.agent(broken), 3) == ["retry", "retry", "dead-lettered"]
    [letter] = rig.dead_letters()
    attrs = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert attrs["rollback-reason"] == (
        "failed 3 times; last: reading the listener failed: throttled (Throttling)."
    )
    assert attrs["rollback-receive-count"] == "3"
    assert json.loads(letter["Body"])["detail"]["alarmName"] == "shop-s0-5xx"
    assert rig.queue.approximate_depth() == (0, 0)
    assert list_runs(rig.store, "shop/s0") == []


def test_a_refused_job_is_dead_lettered_at_once_and_its_result_says_why(rig: Rig) -> None:
    rig.queue.send(json.dumps({"id": "j-1", "stack": "shop/s0", "to": "9.9.9"}))
    rig.queue.send(json.dumps({"id": "j-2", "stack": "shop/s0", "to": "1.4.0", "by": "ana"}))
    assert rig.settle(rig.agent(), 2) == ["dead-lettered", "done"]
    refused = read_result(rig.store, "job-j-1")
    assert refused is not None and (refused["result"], refused["exit_code"]) == ("refused", 2)
    assert "9.9.9" in refused["message"]
    done = read_result(rig.store, "job-j-2")
    assert done is not None and (done["result"], done["ok"]) == ("succeeded", True)
    [run] = list_runs(rig.store, "shop/s0")
    assert run.actor.startswith("ana via rollback-agent@") and run.reason.endswith("[job j-2]")
    [letter] = rig.dead_letters()
    assert "refused: release 9.9.9" in letter["MessageAttributes"]["rollback-reason"]["StringValue"]


def test_a_message_received_after_stop_goes_back_at_once(rig: Rig) -> None:
    rig.queue.send(event("shop-s0-5xx"))
    stop = threading.Event()
    agent = rig.agent()
    original = rig.queue.receive

    def receive_then_stop(**kwargs: Any) -> Any:
        got = original(**kwargs)
        stop.set()  # SIGTERM arrives while the receive was in flight
        return got

    rig.queue.receive = receive_then_stop  # type: ignore[method-assign]
    agent.serve(stop)
    assert agent.handled == []
    rig.queue.receive = original  # type: ignore[method-assign]
    assert len(rig.queue.receive(wait_s=0)) == 1  # visible again for another agent
    assert list_runs(rig.store, "shop/s0") == []


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_and_healthz_on_loopback() -> None:
    metrics = AgentMetrics(stale_after_s=60)
    metrics.alive()
    metrics.received(0.25)
    metrics.ran("succeeded", 3.5, 0.4)
    metrics.settled("done")
    server = metrics.serve(0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        base = f"http://127.0.0.1:{port}"
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert 'rollback_agent_runs_total{result="succeeded"} 1.0' in text
        assert "rollback_agent_run_duration_seconds_sum 3.5" in text
        assert "rollback_agent_time_to_traffic_restored_seconds_count 1.0" in text
        assert "rollback_agent_queue_receive_lag_seconds_sum 0.25" in text
        assert 'rollback_agent_messages_total{outcome="done"} 1.0' in text
        assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
        metrics.stale_after_s = 0
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert caught.value.code == 503
    finally:
        server.shutdown()
        server.server_close()


def test_a_job_given_up_on_leaves_a_result_for_the_waiting_fleet(rig: Rig) -> None:
    from rollback.errors import LockHeld

    def locked(stack: str) -> Workbench:
        raise LockHeld(f"stack {stack} is locked by run r-1; wait for that run to finish.")

    rig.queue.send(json.dumps({"id": "j-9", "stack": "shop/s1", "to": "1.4.0"}))
    assert rig.settle(rig.agent(locked, max_receives=2), 2) == ["retry", "dead-lettered"]
    result = read_result(rig.store, "job-j-9")
    assert result is not None
    assert (result["result"], result["ok"], result["stack"]) == ("dead-lettered", False, "shop/s1")
    assert result["message"] == (
        "failed 2 times; last: stack shop/s1 is locked by run r-1; wait for that run to finish."
    )
    assert len(rig.dead_letters()) == 1


# -- rollback to --via-queue -------------------------------------------------------------------


def test_via_queue_without_wait_enqueues_one_job_per_stack(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rollback.cli.main import main

    argv = ["--store", str(tmp_path / "store"), "-o", "json", "--stack", "shop/s0",
            "--stack", "shop/s1", "to", "1.4.0", "--yes", "--reason", "bad deploy",
            "--via-queue", rig.queue.url, "--no-wait"]  # fmt: skip
    main(argv)  # returns (no SystemExit) on success
    printed = json.loads(capsys.readouterr().out)
    assert [q["stack"] for q in printed["queued"]] == ["shop/s0", "shop/s1"]
    got = rig.queue.receive(max_messages=10, wait_s=0)
    jobs = sorted((parse_message(m.body, m.message_id) for m in got), key=lambda j: j.key)
    assert [(j.stack, j.to, j.reason) for j in jobs] == [  # type: ignore[union-attr]
        ("shop/s0", "1.4.0", "bad deploy"),
        ("shop/s1", "1.4.0", "bad deploy"),
    ]
    assert {j.key for j in jobs} == {q["job"] for q in printed["queued"]}
    # Nothing ran here: the agents do the work.
    assert list_runs(rig.store, "shop/s0") == []
    assert listener_weights(rig.aws("elbv2"), rig.topologies["shop/s0"]) == {
        "blue": 100,
        "green": 0,
    }


def test_waiting_on_jobs_reports_each_result_and_the_ones_still_queued(rig: Rig) -> None:
    from rollback.agent_fleet import wait_for
    from rollback.agent_messages import Job

    jobs = [Job("j-a", "shop/s0", "1.4.0", "r"), Job("j-b", "shop/s1", "1.4.0", "r")]
    rig.queue.send(jobs[0].to_body())
    rig.settle(rig.agent(), 1)
    clock = iter(range(100))
    seen: list[tuple[str, str]] = []
    fleet = wait_for(
        rig.store,
        jobs,
        timeout_s=3,
        on_done=lambda run, by: seen.append((run.stack, run.result)),
        timing=Timing(sleep=lambda s: None, clock=lambda: float(next(clock))),
    )
    assert seen == [("shop/s0", "succeeded")]
    assert [(r.stack, r.result, r.exit_code) for r in fleet.runs] == [
        ("shop/s0", "succeeded", 0),
        ("shop/s1", "queued", 1),
    ]
    assert fleet.exit_code == 1
    assert "no agent reported job j-b within 3s" in fleet.runs[1].message


def test_a_run_locked_by_its_dead_agents_live_lease_waits_for_the_lease(rig: Rig) -> None:
    from rollback.agent_claims import claim, job_key
    from rollback.journal import Journal
    from rollback.planner import Options
    from rollback.store.lock import acquire_lock, read_lock

    # Agent A (another host, as far as this agent can tell: its lease is live) started job j-w
    # and died after writing run.json and taking the lock.
    job = Job("j-w", "shop/s0", "1.4.0", "r")
    message_id = rig.queue.send(job.to_body())
    claim(rig.store, job_key("j-w"), {"job": job.to_body(), "message_id": message_id})
    plan = rig.bench("shop/s0").planner().plan("1.4.0", Options(reason="r [job j-w]", actor="a"))
    Journal.create(rig.store, plan, actor="agent-a", options={})
    acquire_lock(rig.store, "shop/s0", plan.run_id, lease_seconds=600, owner="agent-a")

    agent = rig.agent()
    assert rig.settle(agent, 1) == ["waiting"]
    assert f"run {plan.run_id} was left by" in agent.handled[0].detail
    assert rig.queue.approximate_depth() == (0, 1)  # hidden until the lease runs out
    assert rig.dead_letters() == []
    assert [r.run_id for r in list_runs(rig.store, "shop/s0")] == [plan.run_id]  # no second run
    held = read_lock(rig.store, "shop/s0")
    assert held is not None and held.owner == "agent-a"  # a live lease is never broken


def test_two_alarm_transitions_of_one_bad_release_are_one_incident(rig: Rig) -> None:
    calls: list[str] = []

    def flaky(stack: str) -> Workbench:
        calls.append(stack)
        if len(calls) == 1:  # the first attempt fails after both claims were written
            raise CloudError("reading the listener failed: throttled (Throttling).")
        return rig.bench(stack)

    first_at = datetime.now(UTC)
    rig.queue.send(event("shop-s0-5xx", at=first_at))
    agent = rig.agent(flaky, retry_delay_s=2, wait_s=1)  # the retry comes back after 2 s
    assert rig.settle(agent, 1) == ["retry"]
    # The alarm flapped: OK, then ALARM again; the second transition is the same incident.
    rig.queue.send(event("shop-s0-5xx", at=first_at + timedelta(seconds=30)))
    outcomes = rig.settle(agent, 3)
    assert sorted(outcomes[1:]) == ["done", "done"]
    entries = {h.runs[0]["result"] for h in agent.handled[1:]}
    assert entries == {"duplicate", "succeeded"}
    [run] = list_runs(rig.store, "shop/s0")
    assert run.result == "succeeded"
    assert listener_weights(rig.aws("elbv2"), rig.topologies["shop/s0"]) == {
        "blue": 0,
        "green": 100,
    }


def test_claims_in_order_stop_at_the_first_one_taken(tmp_path: Path) -> None:
    from rollback.agent_claims import Claim, claim, claim_in_order

    store = open_store(str(tmp_path / "store"))
    claim(store, "agent/incidents/shop/s0/i-1.json", {"transition": "t-0"})
    found = claim_in_order(
        store,
        [
            ("agent/transitions/t-1.json", {"message_id": "m-1"}),
            ("agent/incidents/shop/s0/i-1.json", {"transition": "t-1"}),
            ("agent/incidents/shop/s1/i-2.json", {"transition": "t-1"}),
        ],
    )
    # The transition is claimed; the incident another transition took is returned as it is
    # in the store; the claim after it is not written (its caller claims it on its own).
    assert [(c.key, c.fresh) for c in found] == [
        ("agent/transitions/t-1.json", True),
        ("agent/incidents/shop/s0/i-1.json", False),
    ]
    assert found[1].doc == {"transition": "t-0"}
    assert json.loads(store.get_doc("agent/transitions/t-1.json")) == {"message_id": "m-1"}
    assert not store.has_doc("agent/incidents/shop/s1/i-2.json")
    assert claim_in_order(store, [("agent/transitions/t-1.json", {"message_id": "m-2"})]) == [
        Claim("agent/transitions/t-1.json", {"message_id": "m-1"}, False)
    ]


def test_the_heartbeat_extends_the_message_in_hand_and_never_after_it_is_dropped() -> None:
    import time

    from rollback.agent_settle import Heartbeat
    from rollback.aws.sqs import Received

    beats: list[tuple[str, str]] = []  # (message, "start" | "end") of each extension

    def extend(message: Received) -> None:
        beats.append((message.message_id, "start"))
        time.sleep(0.05)  # an extension in flight when the message is dropped
        beats.append((message.message_id, "end"))

    def received(message_id: str) -> Received:
        return Received(message_id, "{}", f"r-{message_id}", 1, 0.0, {})

    heart = Heartbeat(extend, 0.02)
    heart.start()
    try:
        heart.hold(received("m-1"))
        time.sleep(0.15)
        heart.drop()
        assert beats and beats[-1] == ("m-1", "end")  # drop waited for the one in flight
        after = len(beats)
        time.sleep(0.1)
        assert len(beats) == after  # nothing in hand: no beat
        heart.hold(received("m-2"))
        time.sleep(0.1)
        heart.drop()
        assert {m for m, _ in beats[after:]} == {"m-2"} and beats[-1][1] == "end"
    finally:
        heart.close()
    assert heart._thread is not None and not heart._thread.is_alive()
