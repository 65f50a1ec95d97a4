"""`rollback agent` end to end: agents as subprocesses on one moto queue, alarms through EventBridge.

The stacks are the fleet tests' cheap ones (shop/s0.., 1.5.0 live on blue,
1.4.0 stable on green, an alarm `shop-sN-5xx` in each topology). Alarm
state changes are published with `events.put_events` in the shape
CloudWatch gives them, and moto's EventBridge delivers them to the queue
through the rule `agent setup` created. Assertions read the listeners, the
queues and the store back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from rollback.aws.session import Clients
from rollback.journal import Journal, list_runs
from rollback.models import Topology
from rollback.releases import Registry
from rollback.store import open_store
from rollback.store.lock import read_lock
from tests.functional.conftest import ROLLBACK, RunCli, build_env, describe, parse_json
from tests.functional.rollbackworld import killer_env, wait_for
from tests.unit.test_fleet import build_stacks, listener_weights

ENV = {"ROLLBACK_ENGINE": "embedded"}
FAST = ["--wait", "1", "--visibility", "3", "--heartbeat", "0.5", "--retry-delay", "0"]


def alarm_event(alarm: str, state: str = "ALARM", at: datetime | None = None) -> dict[str, str]:
    """A PutEvents entry as CloudWatch sends an alarm's state change to EventBridge."""
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    detail = {
        "alarmName": alarm,
        "state": {
            "value": state,
            "reason": "Threshold Crossed: 5 5xx in 1 minute",
            "timestamp": stamp,
        },
        "previousState": {"value": "OK", "reason": "quiet", "timestamp": stamp},
        "configuration": {"metrics": []},
    }
    return {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Detail": json.dumps(detail),
        "Resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"],
    }


@dataclass
class Site:
    root: Path
    aws: Clients
    topologies: dict[str, Topology]
    queue_url: str = ""
    dlq_url: str = ""
    agents: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def store(self) -> Path:
        return self.root / "store"

    def weights(self, stack: str) -> dict[str, int]:
        return listener_weights(self.aws("elbv2"), self.topologies[stack])

    def current(self, stack: str) -> str | None:
        return Registry(open_store(str(self.store)), stack).current()

    def runs(self, stack: str) -> list[str]:
        return [r.run_id for r in list_runs(open_store(str(self.store)), stack)]

    def setup(self, run_cli: RunCli) -> dict[str, Any]:
        args = ["--store", str(self.store), "-o", "json", "agent", "setup", "--visibility", "3"]
        result = run_cli(*args, env=ENV)
        assert result.returncode == 0, describe(result, args)
        document = parse_json(result)
        self.queue_url = document["outputs"]["queue_url"]
        self.dlq_url = document["outputs"]["dead_letter_queue_url"]
        return dict(document)

    def start_agent(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        argv = [str(ROLLBACK), "--store", str(self.store), "-o", "json", "agent", "run"]
        agent = subprocess.Popen(
            [*argv, "--queue", self.queue_url, *FAST, *extra],
            env=build_env({**ENV, **(env or {})}),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.agents.append(agent)
        return agent

    def publish(self, *entries: dict[str, str]) -> None:
        answer = self.aws("events").put_events(Entries=list(entries))
        assert answer["FailedEntryCount"] == 0, answer

    def send(self, body: str) -> None:
        self.aws("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)

    def queue_empty(self) -> bool:
        attrs = self.aws("sqs").get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return attrs == {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
        }

    def dead_letters(self) -> list[dict[str, Any]]:
        sqs = self.aws("sqs")
        found: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                return found
            found += got

    def stop(self, agent: subprocess.Popen[str]) -> tuple[int, str, str]:
        """SIGTERM the agent; its exit code and streams."""
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=60)
        return agent.returncode, out, err


@pytest.fixture
def site(moto_endpoint: str, tmp_path: Path) -> Iterator[Site]:
    aws = Clients(boto3.Session(region_name="us-east-1"), endpoint_url=moto_endpoint)
    topologies = build_stacks(aws, open_store(str(tmp_path / "store")), tmp_path, 3)
    made = Site(tmp_path, aws, topologies)
    yield made
    for agent in made.agents:
        if agent.poll() is None:
            agent.kill()
            agent.communicate(timeout=30)


def test_setup_is_idempotent_and_its_dry_run_changes_nothing(site: Site, run_cli: RunCli) -> None:
    args = ["--store", str(site.store), "-o", "json", "agent", "setup", "--dry-run"]
    result = run_cli(*args, env=ENV)
    assert result.returncode == 0, describe(result, args)
    plan = parse_json(result)
    assert plan["applied"] is False
    assert {r["action"] for r in plan["resources"]} == {"create"}
    assert plan["alarms"] == ["shop-s0-5xx", "shop-s1-5xx", "shop-s2-5xx"]
    assert site.aws("sqs").list_queues().get("QueueUrls", []) == []
    assert site.aws("events").list_rules()["Rules"] == []

    created = site.setup(run_cli)
    assert {r["action"] for r in created["resources"]} == {"create"}
    sqs, events = site.aws("sqs"), site.aws("events")
    attrs = sqs.get_queue_attributes(QueueUrl=site.queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":rollback-agent-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    policy = json.loads(attrs["Policy"])["Statement"][0]
    assert policy["Principal"] == {"Service": "events.amazonaws.com"}
    assert policy["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(":rule/rollback-agent-alarms")
    rule = events.describe_rule(Name="rollback-agent-alarms")
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail"]["alarmName"] == ["shop-s0-5xx", "shop-s1-5xx", "shop-s2-5xx"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    targets = events.list_targets_by_rule(Rule="rollback-agent-alarms")["Targets"]
    assert [t["Arn"] for t in targets] == [attrs["QueueArn"]]

    again = site.setup(run_cli)
    assert {r["action"] for r in again["resources"]} == {"unchanged"}
    assert len(sqs.list_queues()["QueueUrls"]) == 2

    args = ["--store", str(site.store), "-o", "json", "agent", "setup", "--redrive-after", "7"]
    result = run_cli(*args, env=ENV)
    assert result.returncode == 0, describe(result, args)
    changed = {r["kind"]: r["action"] for r in parse_json(result)["resources"]}
    assert changed["sqs-queue"] == "update" and changed["eventbridge-rule"] == "unchanged"
    attrs = sqs.get_queue_attributes(QueueUrl=site.queue_url, AttributeNames=["RedrivePolicy"])
    assert int(json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"]) == 7


def test_one_alarm_two_agents_one_run(site: Site, run_cli: RunCli) -> None:
    site.setup(run_cli)
    first, second = site.start_agent(), site.start_agent()
    event = alarm_event("shop-s0-5xx")
    # The same transition delivered twice (EventBridge delivers at least once).
    site.publish(event, event)
    wait_for("traffic on green", lambda: site.weights("shop/s0") == {"blue": 0, "green": 100}, 60)
    wait_for("the queue to drain", site.queue_empty, 60)
    wait_for(
        "the lock's release", lambda: read_lock(open_store(str(site.store)), "shop/s0") is None
    )
    assert site.current("shop/s0") == "1.4.0"
    runs = site.runs("shop/s0")
    assert len(runs) == 1, runs
    run = Journal.load(open_store(str(site.store)), "shop/s0", runs[0])
    assert run.result == "succeeded"
    assert run.reason.startswith("CloudWatch alarm shop-s0-5xx went ALARM at ")
    assert run.actor.startswith("rollback-agent@")
    assert (site.store / "runs" / "shop" / "s0" / runs[0] / "report.md").exists()
    # Nothing else moved.
    for other in ("shop/s1", "shop/s2"):
        assert site.weights(other) == {"blue": 100, "green": 0}
        assert site.runs(other) == []
    outputs, errs = [], []
    for agent in (first, second):
        code, out, err = site.stop(agent)
        assert code == 0, err
        outputs.append(json.loads(out))
        errs.append(err)
    settled = [m for doc in outputs for m in doc["messages"]]
    # The event sent twice: one message ran it, the other was recognised as its duplicate.
    assert sorted(m["outcome"] for m in settled) == ["done", "duplicate"], "\n".join(errs)
    assert [r["result"] for m in settled for r in m["runs"]] == ["succeeded"]
    assert site.dead_letters() == []


def test_an_agent_killed_mid_run_is_resumed_by_the_next(
    site: Site, run_cli: RunCli, tmp_path: Path
) -> None:
    site.setup(run_cli)
    killer = killer_env(tmp_path / "kill", "traffic:verified")
    killer["PYTHONPATH"] += os.pathsep + os.environ.get("PYTHONPATH", "")
    doomed = site.start_agent(env=killer)
    site.publish(alarm_event("shop-s1-5xx"))
    assert doomed.wait(timeout=60) == -signal.SIGKILL, doomed.communicate()[1]
    runs = site.runs("shop/s1")
    assert len(runs) == 1
    left = Journal.load(open_store(str(site.store)), "shop/s1", runs[0])
    assert not left.finished and left.step("traffic").state == "verified"

    heir = site.start_agent()
    wait_for(
        "the run to finish",
        lambda: Journal.load(open_store(str(site.store)), "shop/s1", runs[0]).finished,
        60,
    )
    wait_for("the queue to drain", site.queue_empty, 60)
    code, out, err = site.stop(heir)
    assert code == 0, err
    assert site.runs("shop/s1") == runs  # resumed, not a second run
    run = Journal.load(open_store(str(site.store)), "shop/s1", runs[0])
    assert run.result == "succeeded"
    assert [e.type for e in run.events].count("resumed") == 1
    assert site.weights("shop/s1") == {"blue": 0, "green": 100}
    assert site.current("shop/s1") == "1.4.0"
    entry = json.loads(out)["messages"][0]["runs"][0]
    assert (entry["result"], entry["resumed"], entry["run_id"]) == ("succeeded", True, runs[0])
    assert read_lock(open_store(str(site.store)), "shop/s1") is None


def test_bad_messages_are_dead_lettered_and_the_agents_carry_on(
    site: Site, run_cli: RunCli
) -> None:
    site.setup(run_cli)
    agent = site.start_agent()
    site.send("this is not JSON")
    site.send(json.dumps({"hello": "world"}))
    site.send(json.dumps({"stack": "no-slash", "to": "1.4.0"}))
    site.send(json.dumps(json.loads(json.dumps(alarm_event("nobody-5xx")))))  # wrong shape
    # An alarm no topology names, in the shape EventBridge delivers (sent to the queue directly:
    # the rule would not route it).
    unknown = {
        "version": "0",
        "id": "e-1",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "time": "2026-11-30T12:00:00Z",
        "detail": json.loads(alarm_event("nobody-5xx")["Detail"]),
    }
    site.send(json.dumps(unknown))
    # Then real work: the agent is alive and rolls a stack back through the fleet command.
    args = [
        "--store",
        str(site.store),
        "-o",
        "json",
        "--stack",
        "shop/s2",
        "to",
        "1.4.0",
        "--yes",
        "--via-queue",
        site.queue_url,
        "--wait-timeout",
        "60",
    ]
    result = run_cli(*args, env=ENV)
    assert result.returncode == 0, describe(result, args)
    fleet = parse_json(result)
    assert [(s["stack"], s["result"]) for s in fleet["stacks"]] == [("shop/s2", "succeeded")]
    assert site.weights("shop/s2") == {"blue": 0, "green": 100}
    wait_for("the queue to drain", site.queue_empty, 60)
    assert agent.poll() is None, "the agent died"
    code, out, err = site.stop(agent)
    assert code == 0, err
    letters = site.dead_letters()
    reasons = sorted(m["MessageAttributes"]["rollback-reason"]["StringValue"] for m in letters)
    assert len(reasons) == 5, reasons
    assert any("not JSON" in r for r in reasons)
    assert any("neither a CloudWatch alarm state change nor a job" in r for r in reasons)
    assert any("is not PROJECT/STACK" in r for r in reasons)
    assert any("alarm nobody-5xx is named by no stack" in r for r in reasons)
    assert sum("dead-lettered" in line for line in err.splitlines()) == 5
    counts = json.loads(out)["counts"]
    assert counts == {"dead-lettered": 5, "done": 1}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_mid_run_finishes_the_run_takes_nothing_more_and_exits_0(
    site: Site, run_cli: RunCli
) -> None:
    import urllib.request

    site.setup(run_cli)
    port = _free_port()
    agent = site.start_agent("--metrics-port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_for("/healthz", lambda: _get(f"{base}/healthz") == (200, "ok\n"), 60)
    site.publish(alarm_event("shop-s2-5xx"))
    wait_for("traffic on green", lambda: site.weights("shop/s2") == {"blue": 0, "green": 100}, 60)
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    assert "rollback_agent_queue_receive_lag_seconds_count 1.0" in metrics
    agent.send_signal(signal.SIGTERM)  # while the health step (about 4 s) runs
    signalled = datetime.now(UTC)
    site.send(json.dumps({"stack": "shop/s0", "to": "1.4.0", "id": "after-sigterm"}))
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert "SIGTERM: finishing the message in hand" in err
    [run_id] = site.runs("shop/s2")
    run = Journal.load(open_store(str(site.store)), "shop/s2", run_id)
    assert run.result == "succeeded"
    assert run.finished_at is not None and datetime.fromisoformat(run.finished_at) > signalled
    assert site.current("shop/s2") == "1.4.0"
    assert json.loads(out)["counts"] == {"done": 1}
    # The job sent after SIGTERM was left for another agent.
    assert site.runs("shop/s0") == []
    assert site.weights("shop/s0") == {"blue": 100, "green": 0}
    got = site.aws("sqs").receive_message(QueueUrl=site.queue_url, VisibilityTimeout=0)
    assert [json.loads(m["Body"])["id"] for m in got["Messages"]] == ["after-sigterm"]


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""
