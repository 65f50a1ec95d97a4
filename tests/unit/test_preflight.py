"""Preflight checks one by one, and `preflight(bench, plan)` over the planner's moto world.

Every refusal is one sentence of the error tree (exit 2 or 4) that ends with
"nothing was changed", and the checks only read: the tests assert no mutating
AWS call and an unchanged store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import git
import pytest
import yaml

from rollback import preflight as pf
from rollback.aws.session import Clients, make_session
from rollback.errors import ConfigError, ExitCode, IntegrityError, NotFound, UsageError
from rollback.models import Evidence
from rollback.orchestrate import Workbench
from rollback.planner import Options
from rollback.store import open_store
from tests.unit.test_planner import World
from tests.unit.test_releases import commit, make_repo
from tests.unit.test_step_traffic import Alb, alb, network  # noqa: F401  (the moto ALB fixtures)

ROOT = Path(__file__).resolve().parents[2]
DEV = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
SALT = str(DEV["encryptionsalt"])  # test-passphrase's
SECRET = str(DEV["config"]["webapp:dbPassword"]["secure"])
CHECKPOINT = {
    "version": 3,
    "deployment": {
        "manifest": {},
        "secrets_providers": {"type": "passphrase", "state": {"salt": SALT}},
        "resources": [
            {
                "urn": "urn:pulumi:dev::webapp::pulumi:pulumi:Stack::webapp-dev",
                "type": "pulumi:pulumi:Stack",
            }
        ],
    },
}
CONFIG = {
    "values": {"webapp:liveColor": "blue"},
    "secrets": {"webapp:dbPassword": SECRET},
    "encryption_salt": SALT,
}


def store_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# -- the checkpoint's shape ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (json.dumps(CHECKPOINT).encode(), None),
        (b"{not json", "not JSON"),
        (b'{"version": 2, "deployment": {}}', "version 3"),
        (b'{"version": 3}', "no `deployment`"),
        (b'{"version": 3, "deployment": {"resources": {}}}', "not a list"),
        (b'{"version": 3, "deployment": {"resources": [{"urn": "u"}]}}', "resource #0"),
        (
            b'{"version": 3, "deployment": {"resources": [{"urn": "u", "type": "t", "inputs": []}]}}',
            "`inputs`",
        ),
    ],
)
def test_checkpoint_problem(data: bytes, problem: str | None) -> None:
    found = pf.checkpoint_problem(data)
    assert (found is None) if problem is None else (found is not None and problem in found), found


# -- secrets -------------------------------------------------------------------------


class _Release:
    version = "1.0.0"


def test_secrets_missing_wrong_right_and_from_a_file(tmp_path: Path) -> None:
    release: Any = _Release()
    with pytest.raises(ConfigError) as missing:
        pf.check_secrets(release, CONFIG, "embedded", {})
    assert (
        "PULUMI_CONFIG_PASSPHRASE" in missing.value.message
        and missing.value.exit_code == ExitCode.USAGE
    )
    with pytest.raises(ConfigError) as wrong:
        pf.check_secrets(release, CONFIG, "pulumi", {"PULUMI_CONFIG_PASSPHRASE": "guess"})
    assert "does not decrypt" in wrong.value.message and "guess" not in wrong.value.message
    phrase = tmp_path / "phrase"
    phrase.write_text("test-passphrase\n")
    found = pf.check_secrets(
        release, CONFIG, "embedded", {"PULUMI_CONFIG_PASSPHRASE_FILE": str(phrase)}
    )
    assert [e.ok for e in found] == [True]
    with pytest.raises(ConfigError, match="PULUMI_CONFIG_PASSPHRASE_FILE"):
        pf.check_secrets(
            release, CONFIG, "embedded", {"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "nope")}
        )


def test_secrets_not_needed_or_of_another_provider() -> None:
    release: Any = _Release()
    assert pf.check_secrets(release, {"values": {}, "secrets": {}}, "embedded", {})[0].ok
    kms = {
        "secrets": {"k": "v1:x:y"},
        "encryption_salt": None,
        "secrets_provider": "awskms://alias/app",
    }
    assert pf.check_secrets(release, kms, "pulumi", {})[0].ok  # the CLI decrypts those
    with pytest.raises(ConfigError, match="awskms://alias/app"):
        pf.check_secrets(release, kms, "embedded", {})


# -- git -------------------------------------------------------------------------------


@pytest.fixture
def tagged(tmp_path: Path) -> tuple[git.Repo, Any]:
    repo = make_repo(tmp_path / "iac")
    sha = commit(repo, "main.py", "print('v1')\n", "feat: v1")
    repo.create_tag(
        "v1.0.0", ref=sha, message="rollback release v1.0.0\n\nmanifest-sha256: abc123\n"
    )

    class Rel:
        version, tag, commit = "1.0.0", "v1.0.0", sha
        repo = str(tmp_path / "iac")

    return repo, Rel()


def test_repository_ok(tagged: tuple[git.Repo, Any]) -> None:
    _, release = tagged
    found = pf.check_repository(release, "abc123")
    assert {e.api for e in found} == {"git.cat-file", "git.tag", "git.worktree"} and all(
        e.ok for e in found
    )


def test_repository_refusals(tagged: tuple[git.Repo, Any], tmp_path: Path) -> None:
    repo, release = tagged
    with pytest.raises(IntegrityError, match="does not match the sha256"):
        pf.check_repository(release, "def456")  # the manifest was edited
    gone = type("Gone", (), {**vars(type(release)), "commit": "1" * 40})()
    with pytest.raises(NotFound, match="is not in"):
        pf.check_repository(gone, None)
    nowhere = type("Nowhere", (), {**vars(type(release)), "repo": str(tmp_path / "nowhere")})()
    with pytest.raises(ConfigError, match="does not exist"):
        pf.check_repository(nowhere, None)
    # The tag moved to another commit.
    other = commit(repo, "main.py", "print('v2')\n", "feat: v2")
    repo.delete_tag(repo.tags["v1.0.0"])
    repo.create_tag("v1.0.0", ref=other, message="moved")
    with pytest.raises(IntegrityError, match="the tag moved") as moved:
        pf.check_repository(release, None)
    assert moved.value.exit_code == ExitCode.INTEGRITY
    # A commit without Pulumi.yaml.
    repo.index.remove(["Pulumi.yaml"], working_tree=True)
    bare = repo.index.commit("chore: no project")
    no_project = type(
        "NoProject", (), {**vars(type(release)), "commit": bare.hexsha, "tag": "v9"}
    )()
    with pytest.raises(ConfigError, match="no Pulumi.yaml"):
        pf.check_repository(no_project, None)


def test_tagger_falls_back_without_an_identity(
    tagged: tuple[git.Repo, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _ = tagged
    here = Path(repo.working_dir)
    assert pf.tagger_environment(here) == {}
    with repo.config_writer() as config:
        config.remove_section("user")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    env = pf.tagger_environment(here)
    assert env["GIT_COMMITTER_EMAIL"].endswith("@rollback.invalid"), env
    # And git accepts it.
    done = subprocess.run(
        ["git", "-C", str(here), "var", "GIT_COMMITTER_IDENT"],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "rollback.invalid" in done.stdout


# -- the database ------------------------------------------------------------------------


def test_database_unset_answering_and_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ROLLBACK_DATABASE_URL is not set"):
        pf.check_database("ROLLBACK_DATABASE_URL", {})
    ok = pf.check_database(
        "ROLLBACK_DATABASE_URL", {"ROLLBACK_DATABASE_URL": f"sqlite:///{tmp_path}/app.db"}
    )
    assert ok[0].ok and "sqlite" in ok[0].observed["database"]
    url = "postgresql://app:hunter2-secret@127.0.0.1:9/app"
    with pytest.raises(ConfigError) as down:
        pf.check_database("DB", {"DB": url})
    assert "does not answer SELECT 1" in down.value.message
    assert "hunter2-secret" not in down.value.message and "hunter2-secret" not in str(
        down.value.as_dict()
    )


# -- the store -----------------------------------------------------------------------------


def test_blobs_corrupt_or_missing(tmp_path: Path) -> None:
    import io

    store = open_store(str(tmp_path / "store"))
    ref = store.put_blob(io.BytesIO(b"checkpoint bytes"))

    class Rel:
        version = "1.0.0"
        checkpoint = ref

    assert pf.check_blobs(store, Rel(), ("checkpoint",))[0].ok
    path = tmp_path / "store" / "blobs" / "sha256" / ref.sha256[:2] / ref.sha256
    path.chmod(0o600)
    path.write_bytes(b"checkpoint bytez")
    with pytest.raises(IntegrityError, match="checkpoint of release 1.0.0 is corrupt"):
        pf.check_blobs(store, Rel(), ("checkpoint",))
    path.unlink()
    with pytest.raises(IntegrityError, match="missing from the store"):
        pf.check_blobs(store, Rel(), ("checkpoint",))


# -- preflight(bench, plan) over the planner's world ------------------------------------------


class _Refused:
    name = "embedded"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"preflight touched the engine ({name})")


def _bench(world: World, environ: dict[str, str], kind: str = "embedded") -> Workbench:
    clients = Clients(make_session("us-east-1"))

    def no_engine() -> Any:
        raise AssertionError("preflight built the engine")

    return Workbench(
        clients=clients,
        store=world.store,
        registry=world.registry,
        engine=no_engine,
        environ=environ,
        engine_kind=lambda: kind,
    )


@pytest.fixture
def world(alb: Alb, tmp_path: Path) -> Iterator[World]:  # noqa: F811
    w = World(alb, tmp_path)
    for version, colour in (("1.4.0", "green"), ("1.5.0", "blue")):
        commit(w.repo, "main.py", version, f"chore: {version}")
        from dataclasses import replace

        from rollback.releases import Attachments

        topology = replace(alb.topology, live_color=colour)
        w.registry.record(
            version,
            w.artifact,
            Path(w.repo.working_dir),
            attachments=Attachments(
                topology=json.dumps(topology.to_dict()).encode(),
                checkpoint=json.dumps(CHECKPOINT).encode(),
                config=json.dumps(CONFIG).encode(),
                color=colour,
                db_snapshot_id="db-v1-4-0" if version == "1.4.0" else None,
            ),
        )
    w.registry.mark("1.4.0", "stable", "baked")
    yield w


def test_preflight_of_a_traffic_first_plan_reads_only(world: World, tmp_path: Path) -> None:
    plan = world.planner().plan("last-stable", Options())
    kinds = [s.kind for s in plan.steps]
    assert kinds.index("traffic") < kinds.index("stack"), kinds
    before = store_files(tmp_path / "store")
    found = pf.preflight(_bench(world, {"PULUMI_CONFIG_PASSPHRASE": "test-passphrase"}), plan)
    apis = {e.api for e in found}
    assert {
        "secrets.passphrase",
        "git.tag",
        "elbv2.describe_target_health",
        "store.verify_blob",
    } <= apis
    assert all(e.ok for e in found)
    assert world.mutating == [] and store_files(tmp_path / "store") == before


def test_preflight_refuses_in_plan_order(world: World, alb: Alb) -> None:  # noqa: F811
    plan = world.planner().plan("last-stable", Options())
    bench = _bench(world, {})
    # No passphrase and an unroutable colour: the stack step comes first in the checks' order.
    with pytest.raises(ConfigError, match="PULUMI_CONFIG_PASSPHRASE"):
        pf.preflight(bench, plan)
    alb.client.deregister_targets(
        TargetGroupArn=alb.topology.target_groups["green"], Targets=[{"Id": alb.instances["green"]}]
    )
    traffic_only = [s for s in plan.steps if s.kind in ("traffic", "dns")]
    with pytest.raises(UsageError, match="colour green would receive traffic first"):
        pf.preflight(bench, plan, traffic_only)
    # The stack engine: an explicit pulumi choice without the CLI.
    with pytest.raises(ConfigError, match="Pulumi CLI"):
        pf.preflight(
            _bench(world, {"PULUMI_CONFIG_PASSPHRASE": "test-passphrase"}, "pulumi"),
            plan,
            [plan.step("stack")],
        )


def test_the_stack_check_started_with_the_plan_is_taken_once_for_its_release(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`start_stack_check` runs the stack step's checks while the plan is made; preflight takes
    that result once, for that release only, and a refusal it found is still preflight's."""
    calls: list[str] = []
    check = pf.check_stack_step

    def counted(bench: Workbench, release: Any, *args: Any) -> list[Evidence]:
        calls.append(release.version)
        return check(bench, release, *args)

    monkeypatch.setattr(pf, "check_stack_step", counted)
    plan = world.planner().plan("last-stable", Options())
    unlocks = pf.Unlocks()
    bench = _bench(world, {"PULUMI_CONFIG_PASSPHRASE": "test-passphrase"})
    unlocks.start_stack_check(bench, "last-stable")
    found = pf.preflight(bench, plan, unlocks=unlocks)
    assert calls == ["1.4.0"] and "git.tag" in {e.api for e in found}
    pf.preflight(bench, plan, unlocks=unlocks)  # taken already: checked again
    assert calls == ["1.4.0", "1.4.0"]
    unlocks.start_stack_check(bench, "1.5.0")  # another release's: not this plan's
    pf.preflight(bench, plan, unlocks=unlocks)
    other = unlocks.take_stack_check("1.5.0", world.registry.load("1.5.0")[1])
    assert other is not None and other()  # it was left for its own run
    assert sorted(calls) == ["1.4.0", "1.4.0", "1.4.0", "1.5.0"]

    wrong = _bench(world, {"PULUMI_CONFIG_PASSPHRASE": "not-it"})
    unlocks = pf.Unlocks()
    unlocks.start_stack_check(wrong, "last-stable")
    with pytest.raises(ConfigError, match="passphrase"):
        pf.preflight(wrong, plan, unlocks=unlocks)


def test_preflight_takes_the_planners_routable_read_only_while_it_is_fresh(
    world: World,
    alb: Alb,  # noqa: F811
) -> None:
    from dataclasses import replace as dc_replace
    from datetime import UTC, datetime, timedelta

    plan = world.planner().plan("last-stable", Options())
    traffic_only = [s for s in plan.steps if s.kind in ("traffic", "dns")]
    assert traffic_only[0].params["routable"]["green"] == 1  # what the planner read
    alb.client.deregister_targets(
        TargetGroupArn=alb.topology.target_groups["green"], Targets=[{"Id": alb.instances["green"]}]
    )
    bench = _bench(world, {})
    just_now = dc_replace(plan, created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    [found] = pf.preflight(bench, just_now, traffic_only)[-1:]
    assert found.ok and found.note == "read by the planner for this plan"
    # Older than PLANNED_READ_FRESH_S (a confirmation prompt sat between), or on resume: read again.
    old = datetime.now(UTC) - timedelta(seconds=pf.PLANNED_READ_FRESH_S + 2)
    for stale, planned_now in (
        (dc_replace(plan, created_at=old.isoformat(timespec="seconds")), True),
        (just_now, False),
    ):
        with pytest.raises(UsageError, match="colour green would receive traffic first"):
            pf.preflight(bench, stale, traffic_only, planned_now=planned_now)


def test_preflight_refuses_a_restore_whose_snapshot_went_away(world: World) -> None:
    from dataclasses import replace as dc_replace

    from rollback.plan import PlannedStep

    plan = world.planner().plan("last-stable", Options())
    restore = PlannedStep(
        name="db-restore",
        kind="db-restore",
        description=plan.step("stack").description,
        params={"instance_id": "db", "snapshot_id": "db-v1-4-0", "run_id": plan.run_id},
    )
    bench = _bench(world, {})
    assert pf.preflight(bench, dc_replace(plan, steps=(restore,)), [restore])[-1].ok
    world.rds.delete_db_snapshot(DBSnapshotIdentifier="db-v1-4-0")
    with pytest.raises(NotFound, match="db-v1-4-0.*missing"):
        pf.preflight(bench, plan, [restore])


def test_a_traffic_first_process_imports_no_engine_before_traffic() -> None:
    """Building the plan's steps (as the executor does before the lock) builds no engine."""
    code = (
        "import sys\n"
        "from rollback.orchestrate import Workbench\n"
        "from rollback.plan import PlannedStep\n"
        "from rollback.models import StepDescription\n"
        "bench = Workbench(clients=None, store=None, registry=type('R', (), {'stack': 'w/dev'})(),"
        " engine=lambda: (_ for _ in ()).throw(AssertionError('engine built')))\n"
        "step = bench.build(PlannedStep('stack', 'stack', StepDescription('stack', 's'), {'version': '1.0.0'}))\n"
        "heavy = [m for m in ('pulumi', 'rollback.engine.embedded.engine', 'rollback.engine.embedded.checkpoint', 'rollback.engine.pulumi_cli') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_lazy_clients_are_created_on_first_use() -> None:
    made: list[str] = []

    class Session:
        def client(self, service: str, **_: Any) -> Any:
            made.append(service)
            return boto3.client(service, region_name="us-east-1")

    clients = Clients(Session())  # type: ignore[arg-type]
    lazy = clients.lazy("route53")
    assert made == []
    assert lazy.meta.service_model.service_name == "route53" and made == ["route53"]
    assert clients("route53") is clients("route53") and made == ["route53"]


def test_resume_checks_the_steps_left_before_it_takes_the_lock(
    world: World, tmp_path: Path
) -> None:
    from rollback.journal import Journal
    from rollback.orchestrate import resume

    plan = world.planner().plan("last-stable", Options())
    Journal.create(world.store, plan, actor="ana", options={})  # a run whose process died
    before = store_files(tmp_path / "store")
    with pytest.raises(ConfigError, match="PULUMI_CONFIG_PASSPHRASE"):
        resume(_bench(world, {}), plan.run_id, actor="ana")
    assert store_files(tmp_path / "store") == before  # no lock, no event
    assert world.mutating == []
