"""After the first up, live traffic belongs to the toolkit: ignore_changes keeps every up off it.

tests/programs/traffic declares its listener forward weights and Route53 record
weights with ignore_changes (as stacks/webapp does); the toolkit moves traffic
with boto3 between ups. Every later up must leave the live weights alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.stacks import verify
from rollback.store.local import LocalStore
from tests.unit.test_embedded_options import Calls

PROGRAM = Path(__file__).parent.parent / "programs" / "traffic"
LISTENER_URN = "urn:pulumi:dev::traffic::aws:lb/listener:Listener::http"


@dataclass
class Stack:
    clients: Clients
    calls: Calls
    engine: EmbeddedEngine
    store: LocalStore
    ignore: dict[str, str]

    def up(self, **values: str) -> dict[str, Any]:
        config = {**self.ignore, **values}
        self.engine.up(
            PROGRAM, "dev", StackConfig(values={f"traffic:{k}": v for k, v in config.items()})
        )
        raw = json.loads(self.store.get_doc(checkpoint_key("traffic", "dev")))
        return {r["urn"]: r for r in raw["deployment"]["resources"]}

    def exports(self) -> dict[str, Any]:
        return self.engine.outputs("dev")

    def listener_weights(self) -> dict[str, int]:
        arn = self.exports()["listener"]
        groups = {v: k for k, v in self.exports()["groups"].items()}
        (listener,) = self.clients("elbv2").describe_listeners(ListenerArns=[arn])["Listeners"]
        forward = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        return {groups[tg["TargetGroupArn"]]: tg["Weight"] for tg in forward}

    def dns_weights(self) -> dict[str, int]:
        records = self.clients("route53").list_resource_record_sets(
            HostedZoneId=self.exports()["zone"]
        )
        return {
            r["SetIdentifier"]: r["Weight"]
            for r in records["ResourceRecordSets"]
            if r.get("SetIdentifier")
        }

    def move_traffic(self, green: int) -> None:
        """What the toolkit's traffic and dns steps do: boto3 writes, outside the stack."""
        exports = self.exports()
        self.clients("elbv2").modify_listener(
            ListenerArn=exports["listener"],
            DefaultActions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": exports["groups"]["blue"], "Weight": 100 - green},
                            {"TargetGroupArn": exports["groups"]["green"], "Weight": green},
                        ]
                    },
                }
            ],
        )
        dns = self.clients("route53")
        changes = []
        for record in dns.list_resource_record_sets(HostedZoneId=exports["zone"])[
            "ResourceRecordSets"
        ]:
            if record.get("SetIdentifier"):
                weight = green if record["SetIdentifier"] == "green" else 100 - green
                changes.append(
                    {"Action": "UPSERT", "ResourceRecordSet": {**record, "Weight": weight}}
                )
        dns.change_resource_record_sets(
            HostedZoneId=exports["zone"], ChangeBatch={"Changes": changes}
        )


def _stack(tmp_path: Path, ignore: dict[str, str]) -> Iterator[Stack]:
    import boto3

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        calls = Calls()
        session.events.register("before-parameter-build.*.*", calls)
        clients = Clients(session)
        store = LocalStore(tmp_path / "store")
        yield Stack(clients, calls, EmbeddedEngine(store, clients, "traffic"), store, ignore)


@pytest.fixture(
    params=[
        "defaultActions[0].forward.targetGroups",
        # Wildcards: tests/unit/test_embedded_paths.py (kept out here: each case is a full stack).
        "default_actions",  # a Python name: the SDK sends it as defaultActions
    ]
)
def owned(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    yield from _stack(
        tmp_path, {"listenerIgnore": request.param, "recordIgnore": "weightedRoutingPolicies"}
    )


def test_no_up_moves_traffic_the_toolkit_moved(owned: Stack) -> None:
    owned.up()
    assert owned.listener_weights() == {"blue": 100, "green": 0}
    owned.move_traffic(green=100)

    owned.calls.made.clear()
    owned.up()  # unchanged program
    assert owned.calls.made == []
    state = owned.up(blueWeight="50")  # the program's weights changed: ignored
    assert owned.calls.made == []
    forward = state[LISTENER_URN]["inputs"]["defaultActions"][0]["forward"]["targetGroups"]
    assert [tg["weight"] for tg in forward] == [100, 0]  # old inputs kept, as Pulumi does

    owned.up(port="8080")  # a real change to the listener: updated, weights left as they are live
    assert "ModifyListener" in owned.calls.names()
    (listener,) = owned.clients("elbv2").describe_listeners(
        ListenerArns=[owned.exports()["listener"]]
    )["Listeners"]
    assert listener["Port"] == 8080
    assert owned.listener_weights() == {"blue": 0, "green": 100}
    assert owned.dns_weights() == {"blue": 0, "green": 100}
    # `stack verify` does not call the toolkit's traffic drift either.
    report = verify(owned.engine, "dev", owned.engine.export("dev"))
    assert report.ok, report.drift


def test_without_ignore_changes_an_up_puts_the_programs_weights_back(tmp_path: Path) -> None:
    """The control: the same moves are drift when the program keeps the weights."""
    for stack in _stack(tmp_path, {}):
        stack.up()
        stack.move_traffic(green=100)
        # Traffic is the toolkit's (rollback/ownership.py): the stack check never calls moved
        # weights drift of the state; it compares them with the desired traffic when given one.
        assert verify(stack.engine, "dev", stack.engine.export("dev")).drift == ()
        stack.up()
        assert stack.listener_weights() == {"blue": 100, "green": 0}
        assert stack.dns_weights() == {"blue": 100, "green": 0}
