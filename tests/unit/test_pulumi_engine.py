"""The `pulumi` engine (Automation API) and engine selection.

Most tests run without the Pulumi CLI: they drive the real Automation API
objects and replace only the workspace call that would start the CLI. Tests
marked `pulumi_cli` run the real CLI against a file backend and are skipped,
with the reason shown, when it is not on PATH.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from rollback.aws.session import Clients, make_session
from rollback.engine import Change, StackConfig
from rollback.engine.pulumi_cli import (
    CLI_MISSING,
    PulumiEngine,
    changes_from_events,
    checkpoint_from_deployment,
    find_project_dir,
)
from rollback.engine.select import select_engine
from rollback.errors import ConfigError, EngineError, IntegrityError, LockHeld, NotFound, StackBusy
from rollback.store import open_store

REPO = Path(__file__).resolve().parents[2]
STACK_URN = "urn:pulumi:dev::webapp::pulumi:pulumi:Stack::webapp-dev"


def _urn(type_: str, name: str) -> str:
    return f"urn:pulumi:dev::webapp::{type_}::{name}"


def _deployment(outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "manifest": {"time": "2024-05-01T10:00:00Z", "magic": "", "version": "v3.272.0"},
        "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:abc:v1:def:ghi"}},
        "resources": [
            {"urn": STACK_URN, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": outputs},
            {
                "urn": _urn("aws:s3/bucket:Bucket", "artifacts"),
                "custom": True,
                "id": "webapp-dev-artifacts",
                "type": "aws:s3/bucket:Bucket",
                "inputs": {"bucket": "webapp-dev-artifacts"},
                "outputs": {"bucket": "webapp-dev-artifacts"},
                "parent": STACK_URN,
            },
        ],
    }


@pytest.fixture
def no_cli_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with no `pulumi` on it, whatever this machine has installed."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A Pulumi project whose program lives in a subdirectory, like the repository's."""
    root = tmp_path / "project"
    (root / "stacks" / "app").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: webapp\nruntime: python\nmain: stacks/app\n")
    (root / "stacks" / "app" / "__main__.py").write_text("import pulumi\n")
    return root


@pytest.fixture
def engine(project_dir: Path, tmp_path: Path) -> PulumiEngine:
    """An engine whose CLI handle points at a path where no CLI is installed.

    Workspace calls that would run the CLI are replaced per test; any that is
    not replaced fails as a missing CLI, so nothing reaches a real backend.
    """
    command = auto.PulumiCommand.__new__(auto.PulumiCommand)
    command.command = str(tmp_path / "absent" / "bin" / "pulumi")
    command.version = None
    return PulumiEngine(project_dir=project_dir, command=command)


def _raise(exc: Exception) -> Callable[..., None]:
    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise exc

    return fail


def _command_error(cls: type[auto.CommandError], stderr: str) -> auto.CommandError:
    return cls(CommandResult(stdout="", stderr=stderr, code=255))


# -- errors ------------------------------------------------------------------


def test_missing_cli_is_a_config_error_naming_the_alternative(
    no_cli_on_path: None, project_dir: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        PulumiEngine(project_dir=project_dir)
    assert caught.value.message == CLI_MISSING
    assert "--engine embedded" in caught.value.message
    assert caught.value.exit_code == 2


def test_cli_vanishing_after_start_is_the_same_config_error(engine: PulumiEngine) -> None:
    # No replacement: Stack.select really starts the (absent) CLI.
    with pytest.raises(ConfigError, match="the Pulumi CLI is not on PATH"):
        engine.export("dev")


def test_concurrent_update_is_stack_busy_with_exit_3(
    engine: PulumiEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = _command_error(
        auto.ConcurrentUpdateError, "error: the stack is currently locked by 1 lock(s)"
    )
    monkeypatch.setattr(auto.PulumiCommand, "run", _raise(error))
    with pytest.raises(StackBusy) as caught:
        engine.export("dev")
    assert isinstance(caught.value, LockHeld)
    assert caught.value.exit_code == 3
    assert "another update is running on stack dev" in caught.value.message
    assert caught.value.fields["stack"] == "dev"


def test_missing_stack_is_not_found(engine: PulumiEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    error = _command_error(auto.StackNotFoundError, "error: no stack named 'prod' found")
    monkeypatch.setattr(auto.PulumiCommand, "run", _raise(error))
    with pytest.raises(NotFound, match="stack prod does not exist in the Pulumi backend"):
        engine.outputs("prod")


def test_other_cli_failures_are_engine_errors_quoting_stderr(
    engine: PulumiEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = "warning: noise\nerror: update failed\nerror: creating EC2 Instance: InvalidAMIID"
    monkeypatch.setattr(
        auto.LocalWorkspace, "select_stack", _raise(_command_error(auto.CommandError, stderr))
    )
    with pytest.raises(EngineError) as caught:
        engine.cancel("dev")
    assert caught.value.exit_code == 1
    assert caught.value.message.endswith(
        "warning: noise | error: update failed | error: creating EC2 Instance: InvalidAMIID"
    )


# -- translation -------------------------------------------------------------


def test_a_deployment_of_another_version_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="not a Pulumi deployment of version 3"):
        checkpoint_from_deployment(auto.Deployment(version=2, deployment=_deployment({})))


def _event(op: str, urn: str, type_: str, diffs: list[str] | None = None) -> auto.EngineEvent:
    return auto.EngineEvent.from_json(
        {
            "sequence": 1,
            "timestamp": 1714557600,
            "resourcePreEvent": {
                "metadata": {"op": op, "urn": urn, "type": type_, "provider": "", "diffs": diffs}
            },
        }
    )


def test_preview_events_become_one_change_per_resource() -> None:
    listener = _urn("aws:lb/listener:Listener", "http")
    instance = _urn("aws:ec2/instance:Instance", "web-blue-0")
    bucket = _urn("aws:s3/bucket:Bucket", "artifacts")
    alarm = _urn("aws:cloudwatch/metricAlarm:MetricAlarm", "alarm-blue-5xx")
    events = [
        _event("same", STACK_URN, "pulumi:pulumi:Stack"),
        _event(
            "same", "urn:pulumi:dev::webapp::pulumi:providers:aws::default", "pulumi:providers:aws"
        ),
        _event("update", listener, "aws:lb/listener:Listener", ["defaultActions"]),
        _event("create-replacement", instance, "aws:ec2/instance:Instance", ["ami"]),
        _event("replace", instance, "aws:ec2/instance:Instance", ["ami"]),
        _event("delete-replaced", instance, "aws:ec2/instance:Instance", ["ami"]),
        _event("same", bucket, "aws:s3/bucket:Bucket"),
        _event("delete", alarm, "aws:cloudwatch/metricAlarm:MetricAlarm"),
        auto.EngineEvent.from_json({"sequence": 9, "timestamp": 1714557601, "summaryEvent": None}),
    ]
    assert changes_from_events(events) == [
        Change(
            urn=listener, type="aws:lb/listener:Listener", op="update", diff=("defaultActions",)
        ),
        Change(urn=instance, type="aws:ec2/instance:Instance", op="replace", diff=("ami",)),
        Change(urn=bucket, type="aws:s3/bucket:Bucket", op="same"),
        Change(urn=alarm, type="aws:cloudwatch/metricAlarm:MetricAlarm", op="delete"),
    ]


def test_project_dir_is_found_from_the_program_dir(project_dir: Path, tmp_path: Path) -> None:
    assert find_project_dir(project_dir / "stacks" / "app") == project_dir.resolve()
    assert find_project_dir(project_dir) == project_dir.resolve()
    assert find_project_dir(REPO / "stacks" / "webapp") == REPO
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    with pytest.raises(NotFound, match="no Pulumi.yaml"):
        find_project_dir(lonely)


# -- selection ---------------------------------------------------------------


@pytest.fixture
def wiring(tmp_path: Path) -> dict[str, Any]:
    return {
        "store": open_store(str(tmp_path / "store")),
        "clients": Clients(make_session("us-east-1")),
    }


def test_unknown_engine_name_is_a_config_error(wiring: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="engine 'terraform' is unknown"):
        select_engine("terraform", endpoint_url=None, **wiring)


def test_pulumi_chosen_without_the_cli_is_a_config_error(
    no_cli_on_path: None, wiring: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError) as caught:
        select_engine("pulumi", endpoint_url=None, **wiring)
    assert caught.value.message == CLI_MISSING


@pytest.mark.parametrize("endpoint", [None, "https://elasticloadbalancing.us-east-1.amazonaws.com"])
def test_auto_never_falls_back_to_embedded_for_real_aws(
    no_cli_on_path: None, wiring: dict[str, Any], endpoint: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        select_engine("auto", endpoint_url=endpoint, **wiring)
    assert "the Pulumi CLI is not on PATH" in caught.value.message
    assert "rollback cloud start" in caught.value.message


def test_auto_refuses_a_loopback_port_that_is_not_the_embedded_cloud(
    no_cli_on_path: None, wiring: dict[str, Any]
) -> None:
    # Port 9 (discard) on loopback: nothing answers, so it is not the embedded cloud.
    with pytest.raises(ConfigError, match="no stack engine fits the endpoint http://127.0.0.1:9"):
        select_engine("auto", endpoint_url="http://127.0.0.1:9", **wiring)


def test_auto_without_cli_picks_embedded_for_the_embedded_cloud(
    no_cli_on_path: None, moto_endpoint: str, wiring: dict[str, Any]
) -> None:
    embedded = pytest.importorskip(
        "rollback.engine.embedded.engine", reason="the embedded engine has not landed yet"
    )
    engine = select_engine("auto", endpoint_url=moto_endpoint, project="webapp", **wiring)
    assert isinstance(engine, embedded.EmbeddedEngine)
    assert engine.name == "embedded"


# -- the real CLI --------------------------------------------------------------

needs_cli = pytest.mark.skipif(
    shutil.which("pulumi") is None,
    reason="the Pulumi CLI is not on PATH (its installers download a binary; not available here)",
)


@pytest.fixture
def tiny_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with no resources (no provider plugin to download) and one secret config.

    It has no requirements.txt, so Pulumi runs it with PULUMI_PYTHON_CMD, set here
    as an operator would to this interpreter (which has pulumi); the toolkit never sets it.
    """
    import sys

    monkeypatch.setenv("PULUMI_PYTHON_CMD", sys.executable)
    root = tmp_path / "tiny"
    (root / "app").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: webapp\nruntime: python\nmain: app\n")
    (root / "app" / "__main__.py").write_text(
        textwrap.dedent(
            """
            import pulumi

            config = pulumi.Config("webapp")
            pulumi.export("rollback", {"live_color": config.require("liveColor"), "schema": 1})
            pulumi.export("password", config.require_secret("dbPassword"))
            """
        )
    )
    return root


def _dev_config(live_color: str) -> StackConfig:
    """The repository's dev stack secrets (passphrase `test-passphrase`, set by conftest)."""
    dev = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    return StackConfig(
        values={"webapp:liveColor": live_color},
        secrets={"webapp:dbPassword": dev["config"]["webapp:dbPassword"]["secure"]},
        encryption_salt=dev["encryptionsalt"],
    )


@pytest.mark.pulumi_cli
@needs_cli
def test_real_cli_up_export_outputs_history_and_import(tiny_project: Path, tmp_path: Path) -> None:
    backend = tmp_path / "backend"
    backend.mkdir()
    engine = PulumiEngine(project_dir=tiny_project, backend_url=f"file://{backend}")

    with pytest.raises(NotFound):
        engine.export("dev")
    first = engine.up(tiny_project / "app", "dev", _dev_config("blue"))
    assert first.outputs()["rollback"] == {"live_color": "blue", "schema": 1}
    assert engine.outputs("dev") == {
        "rollback": {"live_color": "blue", "schema": 1},
        "password": "[secret]",
    }
    assert engine.preview(tiny_project, "dev", _dev_config("blue")) == []

    engine.up(tiny_project / "app", "dev", _dev_config("green"))
    assert engine.export("dev").outputs()["rollback"]["live_color"] == "green"
    assert [record.kind for record in engine.history("dev")][:2] == ["update", "update"]

    engine.import_checkpoint("dev", first)
    assert engine.export("dev").outputs()["rollback"]["live_color"] == "blue"
    with pytest.raises(EngineError):
        engine.cancel("dev")  # nothing is running


@pytest.mark.pulumi_cli
@needs_cli
def test_real_cli_same_flows_as_the_contract_tests(tiny_project: Path, tmp_path: Path) -> None:
    """What test_pulumi_contract.py asserts of the double, against the real CLI and a file backend."""
    from rollback import stacks
    from rollback.engine.stack_file import parse_stack_file

    backend = tmp_path / "backend"
    backend.mkdir()
    engine = PulumiEngine(
        project_dir=tiny_project, backend_url=f"file://{backend}", pyenv_cache=tmp_path / "envs"
    )
    dev = (REPO / "Pulumi.dev.yaml").read_text()
    text = "# comment kept\n" + dev.replace(
        "webapp:liveColor: blue", "webapp:liveColor: blue  # live"
    )
    config = parse_stack_file(text, "webapp")

    engine.up(tiny_project / "app", "dev", config)
    assert (tiny_project / "Pulumi.dev.yaml").read_text() == text  # byte for byte
    assert engine.last_counts and engine.last_counts.get("create", 0) >= 1
    assert engine.prove(tiny_project / "app", "dev", config) == []  # live proof: no changes

    stored = engine.export("dev").to_dict()
    plaintexts = stacks.config_secret_plaintexts(config)
    assert plaintexts == ["dev-only-Passw0rd"]
    stacks.refuse_plaintext(stored, plaintexts, "the checkpoint")  # raises on a plaintext secret
    with pytest.raises(EngineError, match="no update is running"):
        engine.cancel("dev")
