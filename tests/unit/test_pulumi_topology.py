"""The topology helper: a program's `rollback` output built from its resources and checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollback.engine.embedded.program import Registration
from rollback.engine.embedded.runner import run_program
from rollback.errors import UsageError
from rollback.models import Topology
from rollback.pulumi_topology import TopologyError, check_colors

PROGRAM = Path(__file__).parent.parent / "programs" / "topology"


def _cloud(registration: Registration) -> tuple[str, dict[str, Any]]:
    """Stand-in outputs: what the provider would compute, named after the resource."""
    name = registration.name
    return f"{name}-id", {
        **registration.inputs,
        "arn": f"arn:aws:test:::{name}",
        "dnsName": f"{name}.elb.example",
        "zoneId": f"Z-{name}",
        "identifier": f"{name}-identifier",
        "name": registration.inputs.get("name", name),
        "bucket": registration.inputs.get("bucket", name),
    }


def _run(**config: str) -> dict[str, Any]:
    run = run_program(
        PROGRAM,
        project="topology",
        stack="dev",
        config={f"topology:{k}": v for k, v in config.items()},
        secret_keys=[],
        preview=False,
        handler=_cloud,
    )
    exported: dict[str, Any] = run.exports["rollback"]
    return exported


def test_the_helper_exports_what_the_toolkit_reads_from_the_programs_resources() -> None:
    exported = _run()

    topology = Topology.from_dict(exported)
    assert topology.listener_arn == "arn:aws:test:::http"
    assert topology.load_balancer_arn == "arn:aws:test:::alb"
    assert topology.target_groups == {
        "blue": "arn:aws:test:::tg-blue",
        "green": "arn:aws:test:::tg-green",
    }
    assert topology.zone_id == "Z-zone"
    assert topology.db_instance_id == "db-identifier"
    assert topology.alarms == {"blue": ["blue-5xx"], "green": ["green-5xx"]}
    assert topology.set_identifiers == {"blue": "blue", "green": "green"}
    assert topology.health_urls["green"] == ["http://alb.elb.example/health"]
    assert topology.artifact_bucket == "topology-artifacts"
    assert topology.live_color == "blue"


def test_a_live_colour_without_target_group_stops_the_program_with_one_sentence() -> None:
    # The program's own error comes out as is: a usage error with its sentence.
    with pytest.raises(TopologyError) as caught:
        _run(liveColor="purple")

    assert "live colour 'purple' is not one of ['blue', 'green']" in caught.value.message


def test_a_colour_without_a_version_stops_the_program() -> None:
    with pytest.raises(TopologyError) as caught:
        _run(greenVersion="none")

    assert "versions names colours ['blue']" in caught.value.message


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"target_groups": {"blue": "a"}}, "at least two colours"),
        ({"set_identifiers": {"blue": "b"}}, "set_identifiers names colours"),
        ({"health_urls": {"blue": ["u"], "green": []}}, "no health URL for green"),
        ({"alarms": {"red": ["x"]}}, "alarms name colours ['red']"),
        ({"record_type": "MX"}, "record_type 'MX'"),
    ],
)
def test_check_colors_refuses_inconsistent_topologies(change: dict[str, Any], words: str) -> None:
    arguments: dict[str, Any] = {
        "target_groups": {"blue": "a", "green": "b"},
        "set_identifiers": {"blue": "blue", "green": "green"},
        "health_urls": {"blue": ["u"], "green": ["v"]},
        "alarms": {},
        "live_color": "blue",
        "versions": {"blue": "1", "green": "2"},
        "record_type": "CNAME",
        **change,
    }
    with pytest.raises(TopologyError) as caught:
        check_colors(**arguments)

    assert words in caught.value.message
    assert isinstance(caught.value, UsageError)
