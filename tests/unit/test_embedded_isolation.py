"""Stacks sharing one embedded cloud never touch each other (tests/programs/tenant).

Two projects, and two stacks of one project, run the same auto-named program
in one cloud: up, up again (changing one stack), destroy one. After each
step every other stack's resources are read back with boto3, one call per
resource, and must be exactly as they were.
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
from rollback.errors import EngineError
from rollback.store.local import LocalStore
from tests.unit.test_embedded_options import Calls

PROGRAM = Path(__file__).parent.parent / "programs" / "tenant"
STACKS = [("alpha", "dev"), ("beta", "dev"), ("beta", "prod")]


@dataclass
class Cloud:
    clients: Clients
    calls: Calls
    store: LocalStore

    def engine(self, project: str) -> EmbeddedEngine:
        return EmbeddedEngine(self.store, self.clients, project)

    def up(self, project: str, stack: str, **values: str) -> None:
        config = StackConfig(values={f"{project}:{k}": v for k, v in values.items()})
        self.engine(project).up(PROGRAM, stack, config)

    def resources(self, project: str, stack: str) -> dict[str, dict[str, Any]]:
        raw = json.loads(self.store.get_doc(checkpoint_key(project, stack)))
        return {
            r["urn"]: r
            for r in raw["deployment"]["resources"]
            if r.get("custom") and not r["type"].startswith("pulumi:providers:")
        }

    def read(self, res: dict[str, Any]) -> Any:
        """One boto3 read of one resource, by what the checkpoint recorded."""
        kind, out = res["type"], res["outputs"]
        if kind == "aws:ec2/vpc:Vpc":
            return self.clients("ec2").describe_vpcs(VpcIds=[res["id"]])["Vpcs"]
        if kind == "aws:ec2/subnet:Subnet":
            return self.clients("ec2").describe_subnets(SubnetIds=[res["id"]])["Subnets"]
        if kind == "aws:ec2/securityGroup:SecurityGroup":
            return self.clients("ec2").describe_security_groups(GroupIds=[res["id"]])[
                "SecurityGroups"
            ]
        if kind == "aws:rds/subnetGroup:SubnetGroup":
            return self.clients("rds").describe_db_subnet_groups(DBSubnetGroupName=res["id"])[
                "DBSubnetGroups"
            ]
        if kind == "aws:rds/instance:Instance":
            (db,) = self.clients("rds").describe_db_instances(
                DBInstanceIdentifier=out["identifier"]
            )["DBInstances"]
            return {
                k: db[k]
                for k in (
                    "DBInstanceIdentifier",
                    "EngineVersion",
                    "VpcSecurityGroups",
                    "DBSubnetGroup",
                )
            } | {"Tags": db.get("TagList")}
        if kind == "aws:s3/bucket:Bucket":
            return self.clients("s3").get_bucket_tagging(Bucket=res["id"])["TagSet"]
        if kind == "aws:lb/targetGroup:TargetGroup":
            return self.clients("elbv2").describe_target_groups(TargetGroupArns=[res["id"]])[
                "TargetGroups"
            ]
        raise AssertionError(f"no reader for {kind}")

    def inventory(self, project: str, stack: str) -> dict[str, Any]:
        return {urn: self.read(res) for urn, res in self.resources(project, stack).items()}


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    import boto3

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        calls = Calls()
        session.events.register("before-parameter-build.*.*", calls)
        yield Cloud(Clients(session), calls, LocalStore(tmp_path / "store"))


def test_stacks_in_one_cloud_never_touch_each_other(cloud: Cloud) -> None:
    for project, stack in STACKS:
        cloud.up(project, stack)

    ids = [res["id"] for p, s in STACKS for res in cloud.resources(p, s).values()]
    assert len(ids) == len(set(ids)), "two physical resources share an id"
    names = [
        cloud.resources(p, s)[f"urn:pulumi:{s}::{p}::aws:rds/instance:Instance::db"]
        for p, s in STACKS
    ]
    for db in names:
        assert db["inputs"]["identifier"].startswith("db-") and db["inputs"]["__defaults"] == [
            "identifier"
        ]
        assert db["outputs"]["id"] == db["id"]
    before = {(p, s): cloud.inventory(p, s) for p, s in STACKS}

    cloud.calls.made.clear()
    for project, stack in STACKS:
        cloud.up(project, stack)
    assert cloud.calls.made == [], "an unchanged up changed something"
    assert {(p, s): cloud.inventory(p, s) for p, s in STACKS} == before

    # One stack changes: nothing of the others moves.
    cloud.up("beta", "prod", engineVersion="16.4", env="prod")
    for key in [("alpha", "dev"), ("beta", "dev")]:
        assert cloud.inventory(*key) == before[key]
    changed = cloud.inventory("beta", "prod")
    db = changed["urn:pulumi:prod::beta::aws:rds/instance:Instance::db"]
    assert db["EngineVersion"] == "16.4"

    # Destroy one: it is gone, the others are exactly as they were.
    gone = cloud.resources("alpha", "dev")
    cloud.engine("alpha").destroy("dev")
    assert cloud.resources("alpha", "dev") == {}
    for key in [("beta", "dev")]:
        assert cloud.inventory(*key) == before[key]
    assert cloud.inventory("beta", "prod") == changed
    alpha_db = next(r for r in gone.values() if r["type"] == "aws:rds/instance:Instance")
    remaining = [
        d["DBInstanceIdentifier"]
        for d in cloud.clients("rds").describe_db_instances()["DBInstances"]
    ]
    assert alpha_db["outputs"]["identifier"] not in remaining and len(remaining) == 2


def test_a_shared_dbi_resource_id_never_finds_another_stacks_database(cloud: Cloud) -> None:
    """moto gives every instance one DbiResourceId: a state holding only that id must not guess."""
    from rollback.engine.embedded.resources.rds import DbInstance
    from rollback.errors import EngineError

    rds = cloud.clients("rds")
    for name in ("theirs", "ours"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="app",
            MasterUserPassword="not-a-real-password",
        )
    shared = rds.describe_db_instances(DBInstanceIdentifier="ours")["DBInstances"][0][
        "DbiResourceId"
    ]
    applier = DbInstance(cloud.clients)
    with pytest.raises(EngineError, match="names 2 DB instances"):
        applier.read(shared, {})
    assert applier.read("ours", {})["identifier"] == "ours"  # an identifier id finds its own


def test_a_name_another_stack_owns_is_refused_not_taken_over(cloud: Cloud) -> None:
    """CreateBucket in us-east-1 answers 200 for an existing bucket: the engine checks first."""
    engine = cloud.engine("other")
    options = Path(__file__).parent.parent / "programs" / "options"
    cloud.clients("s3").create_bucket(Bucket="owned-elsewhere")
    with pytest.raises(
        EngineError, match="'owned-elsewhere', which already exists outside this stack"
    ):
        engine.up(options, "dev", StackConfig(values={"other:bucket": "owned-elsewhere"}))
    assert (
        not cloud.store.has_doc(checkpoint_key("other", "dev"))
        or cloud.resources("other", "dev") == {}
    )
    assert [b["Name"] for b in cloud.clients("s3").list_buckets()["Buckets"]] == ["owned-elsewhere"]


def test_names_checked_before_any_change_share_one_listing(cloud: Cloud, tmp_path: Path) -> None:
    """Every bucket name is checked with one ListBuckets, not a HeadBucket each; a taken one
    among them still refuses the run before any bucket is created."""
    program = tmp_path / "named"
    program.mkdir()
    (program / "Pulumi.yaml").write_text("name: named\nruntime: python\n")
    (program / "__main__.py").write_text(
        "import pulumi\n"
        "import pulumi_aws as aws\n"
        "prefix = pulumi.Config().require('prefix')\n"
        "for i in range(3):\n"
        "    aws.s3.Bucket(f'b{i}', bucket=f'{prefix}-{i}')\n"
    )
    s3_calls: list[str] = []
    cloud.clients.session.events.register(
        "before-call.s3.*", lambda model, **_: s3_calls.append(model.name)
    )

    cloud.engine("named").up(program, "dev", StackConfig(values={"named:prefix": "free"}))
    assert sorted(s3_calls) == ["CreateBucket"] * 3 + ["ListBuckets"]

    cloud.clients("s3").create_bucket(Bucket="taken-2")
    s3_calls.clear()
    with pytest.raises(EngineError, match="'taken-2', which already exists outside this stack"):
        cloud.engine("named").up(program, "prod", StackConfig(values={"named:prefix": "taken"}))
    assert s3_calls == ["ListBuckets"]
