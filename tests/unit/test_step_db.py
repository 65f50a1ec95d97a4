"""db-snapshot and db-restore against in-process moto: what RDS says after each step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.aws.rds import Rds, rds_identifier
from rollback.errors import AlreadyExists, CheckFailed, CloudError, NotFound, UsageError
from rollback.steps.db_restore import DbRestoreStep, data_loss_window, describe_window
from rollback.steps.db_snapshot import DbSnapshotStep
from rollback.waiting import Timing

DB = "app-db"
RUN = "run7"
RELEASE_SNAPSHOT = "app-db-v1-4-0"
ASIDE = f"{DB}-pre-{RUN}"
RESTORED = f"{DB}-restore-{RUN}"


class FakeClock:
    """Monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def timing() -> Timing:
    clock = FakeClock()
    return Timing(sleep=clock.sleep, clock=clock)


@pytest.fixture
def client() -> Iterator[Any]:
    """An RDS client in a moto account holding one postgres instance and a release snapshot."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}"
            )["Subnet"]["SubnetId"]
            for i, z in ((1, "a"), (2, "b"))
        ]
        sg = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
        rds = boto3.client("rds", region_name="us-east-1")
        rds.create_db_subnet_group(
            DBSubnetGroupName="app-db-subnets", DBSubnetGroupDescription="app", SubnetIds=subnets
        )
        rds.create_db_parameter_group(
            DBParameterGroupName="app-db-params",
            DBParameterGroupFamily="postgres16",
            Description="app",
        )
        rds.create_db_instance(
            DBInstanceIdentifier=DB,
            DBInstanceClass="db.t3.small",
            Engine="postgres",
            MasterUsername="app",
            MasterUserPassword="s3cret-password",
            AllocatedStorage=30,
            StorageType="gp3",
            DBSubnetGroupName="app-db-subnets",
            DBParameterGroupName="app-db-params",
            VpcSecurityGroupIds=[sg],
            MultiAZ=False,
            Port=5432,
            PubliclyAccessible=False,
            Tags=[{"Key": "Name", "Value": "app database"}],
        )
        rds.create_db_snapshot(DBSnapshotIdentifier=RELEASE_SNAPSHOT, DBInstanceIdentifier=DB)
        yield rds


def describe(client: Any, instance_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.describe_db_instances(DBInstanceIdentifier=instance_id)[
        "DBInstances"
    ][0]
    return found


def instance_ids(client: Any) -> list[str]:
    return sorted(i["DBInstanceIdentifier"] for i in client.describe_db_instances()["DBInstances"])


def tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("TagList", [])}


def settings(instance: dict[str, Any]) -> dict[str, Any]:
    """The settings a restore must carry over, read straight from the API response."""
    return {
        "class": instance["DBInstanceClass"],
        "subnet_group": instance["DBSubnetGroup"]["DBSubnetGroupName"],
        "parameter_groups": [p["DBParameterGroupName"] for p in instance["DBParameterGroups"]],
        "security_groups": [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]],
        "multi_az": instance["MultiAZ"],
        "storage": (instance["StorageType"], instance["AllocatedStorage"]),
        "port": instance["Endpoint"]["Port"],
        "public": instance["PubliclyAccessible"],
    }


def snapshot_step(client: Any, timing: Timing) -> DbSnapshotStep:
    return DbSnapshotStep(Rds(client), DB, RUN, timing)


def restore_step(client: Any, timing: Timing, **overrides: Any) -> DbRestoreStep:
    args: dict[str, Any] = {
        "rds": Rds(client),
        "instance_id": DB,
        "snapshot_id": RELEASE_SNAPSHOT,
        "run_id": RUN,
        "accept_data_loss": True,
        "snapshot_taken_at": "2026-01-01T09:00:00+00:00",
        "pre_snapshot_id": None,  # the name the db-snapshot step gives it
        "timing": timing,
        "now": lambda: datetime(2026, 1, 1, 12, 30, tzinfo=UTC),
    }
    args.update(overrides)
    return DbRestoreStep(**args)


# db-snapshot


def test_snapshot_apply_creates_an_available_snapshot_of_the_instance(
    client: Any, timing: Timing
) -> None:
    step = snapshot_step(client, timing)
    applied = step.apply()

    snap = client.describe_db_snapshots(DBSnapshotIdentifier=f"{DB}-pre-rollback-{RUN}")[
        "DBSnapshots"
    ][0]
    assert applied.changed
    assert snap["Status"] == "available"
    assert snap["DBInstanceIdentifier"] == DB
    [ev] = step.verify()
    assert ev.ok
    assert ev.observed["source_instance"] == DB
    assert ev.observed["status"] == "available"


def test_snapshot_apply_twice_reuses_the_snapshot(client: Any, timing: Timing) -> None:
    step = snapshot_step(client, timing)
    step.apply()
    before = client.describe_db_snapshots(DBInstanceIdentifier=DB, SnapshotType="manual")[
        "DBSnapshots"
    ]

    again = step.apply()

    after = client.describe_db_snapshots(DBInstanceIdentifier=DB, SnapshotType="manual")[
        "DBSnapshots"
    ]
    assert not again.changed
    assert [s["DBSnapshotIdentifier"] for s in after] == [s["DBSnapshotIdentifier"] for s in before]
    step.compensate(again.prior)  # nothing to undo: the snapshot stays
    assert client.describe_db_snapshots(DBSnapshotIdentifier=step.snapshot_id)["DBSnapshots"]


def test_snapshot_name_taken_by_another_instance_is_refused(client: Any, timing: Timing) -> None:
    client.create_db_instance(
        DBInstanceIdentifier="other-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="u",
        MasterUserPassword="password1",
        AllocatedStorage=20,
    )
    client.create_db_snapshot(
        DBSnapshotIdentifier=f"{DB}-pre-rollback-{RUN}", DBInstanceIdentifier="other-db"
    )

    with pytest.raises(AlreadyExists, match="other-db"):
        snapshot_step(client, timing).apply()


def test_snapshot_of_a_missing_instance_is_not_found(client: Any, timing: Timing) -> None:
    with pytest.raises(NotFound, match="no-such-db"):
        DbSnapshotStep(Rds(client), "no-such-db", RUN, timing).apply()


def test_identifiers_follow_rds_naming_rules() -> None:
    assert (
        rds_identifier("App_DB", "pre", "2026-01-01T12:00:00Z") == "app-db-pre-2026-01-01t12-00-00z"
    )
    long = rds_identifier("a" * 60, "restore", "run-1")
    assert len(long) <= 63 and "--" not in long and not long.endswith("-")
    assert long != rds_identifier("a" * 60, "restore", "run-2")
    assert rds_identifier("9db", "x") == "r-9db-x"


# db-restore: refusals


def test_data_loss_window_is_the_time_since_the_snapshot() -> None:
    taken = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    window = data_loss_window(taken, datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    assert window == timedelta(hours=3, minutes=30)
    assert describe_window(window) == "3h 30m"
    assert data_loss_window(taken, taken - timedelta(seconds=5)) == timedelta(0)


def test_restore_without_accepting_data_loss_refuses_and_changes_nothing(
    client: Any, timing: Timing
) -> None:
    snapshot_step(client, timing).apply()
    before = instance_ids(client)

    with pytest.raises(UsageError, match=r"last 3h 30m \(since 2026-01-01T09:00:00\+00:00\)"):
        restore_step(client, timing, accept_data_loss=False).apply()

    assert instance_ids(client) == before == [DB]
    assert not tags(describe(client, DB)).get("rollback:restored-from")


def test_restore_refuses_when_the_pre_restore_snapshot_is_missing(
    client: Any, timing: Timing
) -> None:
    with pytest.raises(CheckFailed, match="pre-restore snapshot did not verify"):
        restore_step(client, timing).apply()
    assert instance_ids(client) == [DB]


def test_restore_refuses_when_the_pre_restore_snapshot_is_not_available(
    client: Any, timing: Timing
) -> None:
    snapshot_step(client, timing).apply()
    _set_snapshot_status(f"{DB}-pre-rollback-{RUN}", "creating")

    with pytest.raises(CheckFailed, match="is creating"):
        restore_step(client, timing).apply()
    assert instance_ids(client) == [DB]


def test_restore_of_a_missing_snapshot_is_not_found(client: Any, timing: Timing) -> None:
    snapshot_step(client, timing).apply()
    with pytest.raises(NotFound, match="no-such-snapshot"):
        restore_step(client, timing, snapshot_id="no-such-snapshot").apply()
    assert instance_ids(client) == [DB]


def test_restore_of_an_unavailable_snapshot_is_refused(client: Any, timing: Timing) -> None:
    snapshot_step(client, timing).apply()
    _set_snapshot_status(RELEASE_SNAPSHOT, "creating")

    with pytest.raises(UsageError, match="not available"):
        restore_step(client, timing).apply()
    assert instance_ids(client) == [DB]


def test_restore_into_a_taken_identifier_is_refused(client: Any, timing: Timing) -> None:
    snapshot_step(client, timing).apply()
    client.create_db_instance(
        DBInstanceIdentifier=RESTORED,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="u",
        MasterUserPassword="password1",
        AllocatedStorage=20,
    )
    before = {i: describe(client, i)["InstanceCreateTime"] for i in instance_ids(client)}

    with pytest.raises(AlreadyExists, match=RESTORED):
        restore_step(client, timing).apply()

    after = {i: describe(client, i)["InstanceCreateTime"] for i in instance_ids(client)}
    assert after == before


def _set_snapshot_status(snapshot_id: str, status: str) -> None:
    """moto's API makes every snapshot available at once; set the state RDS would report."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    rds_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].database_snapshots[snapshot_id].status = status


# db-restore: end to end


def test_restore_puts_the_snapshot_under_the_original_identifier(
    client: Any, timing: Timing
) -> None:
    original = describe(client, DB)
    snapshot_step(client, timing).apply()
    step = restore_step(client, timing)

    applied = step.apply()

    assert applied.changed
    assert instance_ids(client) == sorted([DB, ASIDE])
    restored, aside = describe(client, DB), describe(client, ASIDE)
    assert tags(restored)["rollback:restored-from"] == RELEASE_SNAPSHOT
    assert tags(restored)["Name"] == "app database"
    assert restored["InstanceCreateTime"] > original["InstanceCreateTime"]
    assert restored["Endpoint"]["Address"] == original["Endpoint"]["Address"]
    assert aside["InstanceCreateTime"] == original["InstanceCreateTime"]
    assert "rollback:restored-from" not in tags(aside)
    assert settings(restored) == settings(aside) == settings(original)

    evidence = step.verify()
    assert [e.ok for e in evidence] == [True, True, True], [e.note for e in evidence]
    assert evidence[0].observed["restored_from"] == RELEASE_SNAPSHOT
    assert evidence[2].observed["differences"] == {}
    assert "s3cret-password" not in repr(evidence)


def test_restore_twice_is_a_no_op(client: Any, timing: Timing) -> None:
    snapshot_step(client, timing).apply()
    restore_step(client, timing).apply()
    before = {i: describe(client, i)["InstanceCreateTime"] for i in instance_ids(client)}

    again = restore_step(client, timing).apply()

    assert not again.changed
    assert {i: describe(client, i)["InstanceCreateTime"] for i in instance_ids(client)} == before


def test_compensate_puts_the_previous_instance_back_under_its_name(
    client: Any, timing: Timing
) -> None:
    original = describe(client, DB)
    snapshot_step(client, timing).apply()
    step = restore_step(client, timing)
    applied = step.apply()

    step.compensate(applied.prior)

    assert instance_ids(client) == sorted([DB, RESTORED])
    back = describe(client, DB)
    assert back["InstanceCreateTime"] == original["InstanceCreateTime"]
    assert "rollback:restored-from" not in tags(back)
    assert tags(describe(client, RESTORED))["rollback:restored-from"] == RELEASE_SNAPSHOT
    assert not step.verify()[0].ok

    step.compensate(applied.prior)  # again: nothing left to move
    assert instance_ids(client) == sorted([DB, RESTORED])


@pytest.mark.parametrize("fail_on_rename", [1, 2])
def test_a_failure_between_the_steps_leaves_a_described_state_and_apply_resumes(
    client: Any, timing: Timing, monkeypatch: pytest.MonkeyPatch, fail_on_rename: int
) -> None:
    original = describe(client, DB)
    snapshot_step(client, timing).apply()
    real_rename = Rds.rename_instance
    calls: list[str] = []

    def flaky_rename(self: Rds, instance_id: str, new_id: str) -> None:
        calls.append(new_id)
        if len(calls) == fail_on_rename:
            raise CloudError("renaming failed (Throttling): rate exceeded")
        real_rename(self, instance_id, new_id)

    monkeypatch.setattr(Rds, "rename_instance", flaky_rename)

    with pytest.raises(CheckFailed) as failed:
        restore_step(client, timing).apply()

    state = failed.value.fields["state"]
    if fail_on_rename == 1:
        assert instance_ids(client) == sorted([DB, RESTORED])
        assert state[DB].startswith("previous")
        assert state[RESTORED].startswith("restored copy")
    else:
        assert instance_ids(client) == sorted([ASIDE, RESTORED])
        assert state == {
            DB: "absent",
            ASIDE: "previous or other instance (available)",
            RESTORED: "restored copy (available)",
        }
    assert "Running the step again continues" in failed.value.message

    monkeypatch.setattr(Rds, "rename_instance", real_rename)
    step = restore_step(client, timing)
    resumed = step.apply()

    assert resumed.changed
    assert instance_ids(client) == sorted([DB, ASIDE])
    assert describe(client, ASIDE)["InstanceCreateTime"] == original["InstanceCreateTime"]
    assert all(e.ok for e in step.verify())


def test_compensate_after_a_failure_between_the_renames_puts_the_names_back(
    client: Any, timing: Timing, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = describe(client, DB)
    snapshot_step(client, timing).apply()
    real_rename = Rds.rename_instance

    def second_rename_fails(self: Rds, instance_id: str, new_id: str) -> None:
        if new_id == DB:
            raise CloudError("renaming failed (InternalFailure)")
        real_rename(self, instance_id, new_id)

    monkeypatch.setattr(Rds, "rename_instance", second_rename_fails)
    step = restore_step(client, timing)
    with pytest.raises(CheckFailed):
        step.apply()
    monkeypatch.setattr(Rds, "rename_instance", real_rename)

    step.compensate({})  # a failed apply returns no prior: the step knows its names

    assert instance_ids(client) == sorted([DB, RESTORED])
    assert describe(client, DB)["InstanceCreateTime"] == original["InstanceCreateTime"]
