"""Contract tests of the `pulumi` engine against a recording double of the Pulumi CLI.

The double (tests/fakepulumi/pulumi) answers what `pulumi.automation` sends
the way Pulumi's sources say the CLI does (each answer cites its source file
there) and records argv and environment. These tests assert what the engine
asked the CLI for and what the toolkit stored. `test_pulumi_engine.py` runs
the same flows with the real CLI where it is installed (marked `pulumi_cli`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rollback import stacks
from rollback.engine.embedded.secrets import SecretsKeyring
from rollback.engine.pulumi_cli import PulumiEngine
from rollback.engine.stack_file import parse_stack_file, read_stack_file
from rollback.errors import EngineError, IntegrityError, StackBusy
from rollback.models import Checkpoint
from rollback.waiting import Timing
from tests.fakepulumi import SECRET, SIG, FakePulumi

REPO = Path(__file__).resolve().parents[2]
DEV_FILE = (REPO / "Pulumi.dev.yaml").read_text()
SECURE = "v1:fQO43Jy4y5jmPZWE:61UoO+juat5H7k2ngF0uSTatutrlIuruk/FsMnvg6mlM"
TOPOLOGY = {
    "listener_arn": "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x/1/2",
    "target_groups": {"blue": "tg-b", "green": "tg-g"},
    "zone_id": "Z1",
    "record_name": "app.example.internal",
    "record_type": "A",
    "set_identifiers": {"blue": "blue", "green": "green"},
    "db_instance_id": "webapp-dev-db",
    "health_urls": {"blue": [], "green": []},
    "alarms": {"blue": [], "green": []},
    "live_color": "blue",
    "versions": {"blue": "1.4.0", "green": "1.5.0"},
}


@pytest.fixture(scope="module")
def dev_password() -> str:
    """The dev stack's dbPassword in plaintext (passphrase `test-passphrase`)."""
    salt = DEV_FILE.split("encryptionsalt: ", 1)[1].split("\n", 1)[0]
    return SecretsKeyring().crypter(salt, "test-passphrase").decrypt(SECURE)


@pytest.fixture
def project(tmp_path: Path, fake_pulumi: FakePulumi, dev_password: str) -> Path:
    """The reference project's files (the dev stack file as it is) and a program declaring a DB with the secret."""
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: webapp\nruntime: python\nmain: app\n")
    (root / "Pulumi.dev.yaml").write_text(DEV_FILE)
    fake_pulumi.scenario(
        resources=[
            {
                "type": "aws:rds/instance:Instance",
                "name": "db",
                "inputs": {"identifier": "webapp-dev-db", "username": "webapp"},
                "secret_inputs": {"password": "webapp:dbPassword"},
            }
        ],
        outputs={"rollback": TOPOLOGY},
        plaintexts={SECURE: dev_password},
    )
    return root


@pytest.fixture
def engine(project: Path) -> PulumiEngine:
    return PulumiEngine(project_dir=project)


def _config(project: Path) -> Any:
    return read_stack_file(project, "dev", "webapp")


def test_release_state_exports_without_show_secrets_and_stores_no_plaintext(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, dev_password: str
) -> None:
    engine.up(project / "app", "dev", _config(project))

    state = stacks.release_state(engine, stacks.load_project(project), "dev", "1.4.0", rds=None)

    assert state is not None
    exports = fake_pulumi.argvs("stack", "export")
    assert exports and all("--show-secrets" not in argv for argv in exports)
    stored = state["checkpoint"] + state["config"]
    assert dev_password.encode() not in stored
    db = [
        r for r in json.loads(state["checkpoint"])["deployment"]["resources"] if r.get("id") == "db"
    ]
    assert db[0]["inputs"]["password"] == {SIG: SECRET, "ciphertext": SECURE}


class _ShowSecretsEngine:
    """What the Automation API's own export_stack gives: `stack export --show-secrets`."""

    name = "pulumi"

    def __init__(self, engine: PulumiEngine) -> None:
        self.engine = engine

    def export(self, stack: str) -> Checkpoint:
        from pulumi import automation as auto

        workspace = auto.LocalWorkspace(
            work_dir=str(self.engine.project_dir), pulumi_command=auto.PulumiCommand()
        )
        deployment = workspace.export_stack(stack)
        return Checkpoint.from_dict({"version": 3, "deployment": deployment.deployment})


def test_the_store_refuses_a_checkpoint_exported_with_show_secrets(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, dev_password: str
) -> None:
    engine.up(project / "app", "dev", _config(project))
    leaky = _ShowSecretsEngine(engine)

    with pytest.raises(IntegrityError, match="plaintext of a config secret") as caught:
        stacks.release_state(leaky, stacks.load_project(project), "dev", "1.4.0", rds=None)  # type: ignore[arg-type]

    assert dev_password not in str(caught.value)
    assert any("--show-secrets" in argv for argv in fake_pulumi.argvs("stack", "export"))


def test_up_refreshes_by_default_and_counts_come_from_the_engine_summary(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi
) -> None:
    first = stacks.up(engine, stacks.load_project(project), "dev")
    second = stacks.up(engine, stacks.load_project(project), "dev")

    ups = fake_pulumi.argvs("up")
    assert len(ups) == 2 and all("--refresh" in argv for argv in ups)
    assert first.counts() == {"create": 2} and first.resources == 1  # the stack counts too
    assert second.counts() == {"same": 2}
    assert second.to_dict()["counts"] == {"same": 2}


def test_no_refresh_leaves_drift_that_the_live_proof_reports_per_resource(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi
) -> None:
    config = _config(project)
    engine.up(project / "app", "dev", config)
    fake_pulumi.drift(db=["allocatedStorage", "tags"])

    engine.refresh = False
    engine.up(project / "app", "dev", config)
    drift = stacks.live_drift(engine, project / "app", "dev", config)

    assert "--refresh" not in fake_pulumi.argvs("up")[-1]
    proof = fake_pulumi.argvs("preview")[-1]
    assert "--refresh" in proof and "--expect-no-changes" in proof
    db_urn = "urn:pulumi:dev::webapp::aws:rds/instance:Instance::db"
    assert [(d.urn, d.property, d.actual) for d in drift] == [
        (db_urn, "allocatedStorage", "update"),
        (db_urn, "tags", "update"),
    ]

    engine.refresh = True
    engine.up(project / "app", "dev", config)
    assert engine.prove(project / "app", "dev", config) == []
    assert engine.last_counts == {"update": 1, "same": 1}


def test_the_stack_file_is_written_byte_for_byte(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    odd = (
        "# kept: a comment\n"
        "secretsprovider: awskms://alias/rollback?region=us-east-1\n"
        "encryptedkey: AQICAHh0ZXN0a2V5\n"
        "environment:\n  - webapp/dev   # ESC import\n"
        "config:\n"
        "  webapp:version: 1.10\n"
        "  webapp:enabled: no\n"
        "  webapp:count: 3\n"
        "  webapp:dbPassword:\n    secure: AQICAHhzZWNyZXQ=\n"
    )
    config = stacks.config_from_bytes(stacks.config_to_bytes(parse_stack_file(odd, "webapp")))
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / "Pulumi.yaml").write_text((project / "Pulumi.yaml").read_text())
    (worktree / "app").mkdir()

    engine.up(worktree / "app", "dev", config)

    assert (worktree / "Pulumi.dev.yaml").read_bytes() == odd.encode()
    seen = [e["stack_file"] for e in fake_pulumi.entries() if "stack_file" in e]
    assert seen == [odd]


def test_the_release_runs_with_its_own_virtualenv_never_pulumi_python_cmd(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    (project / "Pulumi.yaml").write_text(
        "name: webapp\nruntime:\n  name: python\n  options:\n    virtualenv: venv\nmain: app\n"
    )
    (project / "requirements.txt").write_text("# nothing beyond the standard library\n")

    engine.up(project / "app", "dev", _config(project))

    ran = fake_pulumi.interpreters()[-1]
    assert ran["interpreter"] == "venv/bin/python"
    cache = tmp_path / "pyenvs"
    assert Path(ran["prefix"]).resolve().parent == cache.resolve()
    assert (project / "venv").resolve() == Path(ran["prefix"]).resolve()
    assert all("PULUMI_PYTHON_CMD" not in c["env"] for c in fake_pulumi.calls())


def test_without_virtualenv_the_cached_env_comes_first_on_path(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    (project / "requirements.txt").write_text("\n")

    engine.up(project / "app", "dev", _config(project))
    engine.up(project / "app", "dev", _config(project))  # the second reuses the cache

    prefixes = {Path(e["prefix"]).resolve() for e in fake_pulumi.interpreters()}
    envs = list((tmp_path / "pyenvs").iterdir())
    assert len(envs) == 1 and prefixes == {envs[0].resolve()}
    up_env = fake_pulumi.calls()[-1]["env"] if fake_pulumi.calls() else {}
    assert "PULUMI_PYTHON_CMD" not in up_env
    assert sys.prefix not in prefixes


# -- cancel on a self-managed backend -----------------------------------------


def _lock(fake: FakePulumi, pid: int, hostname: str | None = None) -> Path:
    folder = fake.lock_dir("webapp", "dev")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "3f1c.json"
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "username": "ci",
                "hostname": hostname or socket.gethostname(),
                "timestamp": "2026-11-30T15:00:00Z",
            }
        )
    )
    return path


@pytest.fixture
def running_update() -> Any:
    """A process standing in for a `pulumi up` that is still running."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_cancel_waits_for_the_locked_update_to_end_then_clears_its_stale_lock(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, running_update: Any
) -> None:
    engine.up(project / "app", "dev", _config(project))
    lock = _lock(fake_pulumi, running_update.pid)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the update ends while we wait
        waits.append(seconds)
        running_update.kill()
        running_update.wait()

    engine.timing = Timing(sleep=sleep, clock=lambda: float(len(waits)))
    engine.cancel("dev")

    assert waits and not lock.exists()
    assert fake_pulumi.argvs("cancel")  # the dead update's lock went through `pulumi cancel`


def test_cancel_refuses_while_the_update_still_runs_and_keeps_its_lock(
    engine: PulumiEngine, fake_pulumi: FakePulumi, running_update: Any
) -> None:
    lock = _lock(fake_pulumi, running_update.pid)
    ticks = iter(range(0, 10_000, 100))
    engine.timing = Timing(sleep=lambda _s: None, clock=lambda: float(next(ticks)))
    engine.cancel_wait_s = 300

    with pytest.raises(StackBusy, match=f"pid {running_update.pid}.*still runs"):
        engine.cancel("dev")

    assert lock.exists() and running_update.poll() is None
    assert not fake_pulumi.argvs("cancel")


def test_cancel_refuses_an_update_on_another_host(
    engine: PulumiEngine, fake_pulumi: FakePulumi
) -> None:
    lock = _lock(fake_pulumi, os.getpid(), hostname="build-7.internal")

    with pytest.raises(StackBusy, match="build-7.internal .*another host"):
        engine.cancel("dev")

    assert lock.exists() and not fake_pulumi.argvs("cancel")


def test_cancel_with_no_running_update_is_an_engine_error(
    engine: PulumiEngine, fake_pulumi: FakePulumi
) -> None:
    with pytest.raises(EngineError, match="no update is running"):
        engine.cancel("dev")


def test_outputs_stay_masked_and_never_ask_for_secrets(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi
) -> None:
    engine.up(project / "app", "dev", _config(project))
    before = len(fake_pulumi.argvs("stack", "output"))

    assert engine.outputs("dev") == {"rollback": TOPOLOGY}
    mine = fake_pulumi.argvs("stack", "output")[before:]
    assert mine == [["stack", "output", "--json", "--stack", "dev"]]


# -- a release re-applied end to end --------------------------------------------


def _recorded_release(engine: PulumiEngine, project: Path, tmp_path: Path) -> tuple[Any, Any]:
    """Commit the project, apply it, record its state as release 1.4.0 would."""
    import io

    import git

    from rollback.releases import Release
    from rollback.store import BlobRef, open_store

    repo = git.Repo.init(project)
    repo.git.add(A=True)
    repo.index.commit("v1.4.0")
    stacks.up(engine, stacks.load_project(project), "dev")
    state = stacks.release_state(engine, stacks.load_project(project), "dev", "1.4.0", rds=None)
    assert state is not None
    store = open_store(str(tmp_path / "store"))
    refs: dict[str, BlobRef] = {
        name: store.put_blob(io.BytesIO(state[name])) for name in ("checkpoint", "config")
    }
    release = Release(
        version="1.4.0",
        stack="webapp/dev",
        commit=repo.head.commit.hexsha,
        tag="v1.4.0",
        repo=str(project),
        created_at="2026-11-30T15:00:00Z",
        created_by="test",
        artifact=refs["config"],
        artifact_name="app.zip",
        checkpoint=refs["checkpoint"],
        config=refs["config"],
    )
    return store, release


def test_reapply_refreshes_then_proves_live_in_the_releases_worktree(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    (project / "requirements.txt").write_text("# the release pins nothing beyond stdlib\n")
    store, release = _recorded_release(engine, project, tmp_path)
    fake_pulumi.drift(db=["tags"])  # someone edits the database by hand during the incident

    result = stacks.reapply(engine, store, release, "dev")

    assert result.ok and result.refreshed and result.verify is not None
    assert result.verify.drift == ()
    up_call = [c for c in fake_pulumi.calls() if c["argv"][0] == "up"][-1]
    assert "--refresh" in up_call["argv"] and up_call["cwd"] != str(project)  # the worktree
    proof = [c for c in fake_pulumi.calls() if c["argv"][0] == "preview"][-1]
    assert {"--refresh", "--expect-no-changes"} <= set(proof["argv"])
    assert proof["cwd"] == up_call["cwd"]
    written = [e["stack_file"] for e in fake_pulumi.entries() if "stack_file" in e][-1]
    assert written == DEV_FILE  # the recorded stack file, byte for byte
    ran = fake_pulumi.interpreters()[-1]  # the worktree's own environment, not ours
    assert Path(ran["prefix"]).resolve().parent == (tmp_path / "pyenvs").resolve()
    assert "PULUMI_PYTHON_CMD" not in up_call["env"]
    assert up_call["env"]["VIRTUAL_ENV"] == ran["prefix"]


def test_reapply_without_refresh_fails_its_live_proof_naming_the_drift(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    from rollback.errors import CheckFailed

    store, release = _recorded_release(engine, project, tmp_path)
    fake_pulumi.drift(db=["tags"])

    with pytest.raises(CheckFailed, match="still differs from the release: db tags") as caught:
        stacks.reapply(engine, store, release, "dev", refresh=False)

    outcome = caught.value.fields["result"]
    assert outcome["refreshed"] is False
    assert [(d["property"], d["actual"]) for d in outcome["verify"]["drift"]] == [
        ("tags", "update")
    ]
    assert "--refresh" not in [c for c in fake_pulumi.argvs("up")][-1]


# -- the command line ------------------------------------------------------------


def test_backend_url_and_no_refresh_reach_the_cli_and_counts_reach_stack_up(
    project: Path, fake_pulumi: FakePulumi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from rollback.cli.main import cli

    monkeypatch.delenv("PULUMI_BACKEND_URL")
    no_cloud_behind_the_listener(monkeypatch)
    other = tmp_path / "other-backend"
    other.mkdir()
    base = ["--store", str(tmp_path / "store"), "--engine", "pulumi", "--backend-url"]

    first = CliRunner().invoke(
        cli, [*base, f"file://{other}", "stack", "up", "--program", str(project)]
    )
    second = CliRunner().invoke(
        cli,
        [*base, f"file://{other}", "--no-refresh", "stack", "up", "--program", str(project)],
    )

    assert first.exit_code == 0, first.output
    assert "1 resources (2 create)" in first.output
    assert second.exit_code == 0 and "(no changes)" in second.output, second.output
    assert {c["env"]["PULUMI_BACKEND_URL"] for c in fake_pulumi.calls()} == {f"file://{other}"}
    assert (other / ".pulumi" / "stacks" / "webapp" / "dev.json").exists()
    ups = fake_pulumi.argvs("up")
    assert "--refresh" in ups[0] and "--refresh" not in ups[1]


def no_cloud_behind_the_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS stands behind this fake stack's listener: the toolkit's hold on traffic after
    an apply, and its traffic check in `stack verify`, are tested against the embedded
    cloud (tests/functional/test_outcome_cli.py), not in this contract with the CLI."""
    from rollback.ownership import TrafficOwner
    from rollback.steps import evidence

    monkeypatch.setattr(TrafficOwner, "holder", lambda self, set_by, quiet=False: None)
    monkeypatch.setattr(
        TrafficOwner, "check", lambda self, topology: evidence("traffic (not read here)", {}, True)
    )


class _Registry:
    """The two things StackStep reads of a Registry: the store and a release by version."""

    def __init__(self, store: Any, release: Any) -> None:
        self.store = store
        self._release = release

    def show(self, version: str) -> Any:
        assert version == self._release.version
        return type("View", (), {"release": self._release})()


def test_the_stack_step_reapplies_when_only_the_cloud_drifted_and_proves_it_live(
    engine: PulumiEngine, project: Path, fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    from rollback.steps.stack import StackStep

    store, release = _recorded_release(engine, project, tmp_path)
    step = StackStep(engine, _Registry(store, release), "1.4.0", "dev", previous=None)  # type: ignore[arg-type]

    assert step.apply().changed is False  # checkpoint and cloud agree: nothing to do
    fake_pulumi.drift(db=["tags"])  # the checkpoint still agrees; the cloud does not
    applied = step.apply()
    evidence = step.verify()

    assert applied.changed and applied.detail == {
        "counts": {"update": 1, "same": 1},
        "refreshed": True,
    }
    assert [e.ok for e in evidence] == [True, True], evidence
    assert "--expect-no-changes" in fake_pulumi.argvs("preview")[-1]


def test_stack_verify_with_the_pulumi_engine_is_the_live_preview(
    project: Path, fake_pulumi: FakePulumi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from rollback.cli.main import cli

    monkeypatch.chdir(project)
    no_cloud_behind_the_listener(monkeypatch)
    base = ["--store", str(tmp_path / "store"), "--engine", "pulumi", "stack"]
    assert CliRunner().invoke(cli, [*base, "up"]).exit_code == 0

    clean = CliRunner().invoke(cli, [*base, "verify"])
    fake_pulumi.drift(db=["allocatedStorage"])
    drifted = CliRunner().invoke(cli, [*base, "verify"])

    assert clean.exit_code == 0 and "1 resources of dev match" in clean.output, clean.output
    assert drifted.exit_code == 1, drifted.output
    assert (
        "db allocatedStorage: recorded 'as the release declares', cloud 'update'" in drifted.output
    )
    assert {"--refresh", "--expect-no-changes"} <= set(fake_pulumi.argvs("preview")[-1])
