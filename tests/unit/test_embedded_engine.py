"""The embedded engine against in-process moto: what `up` leaves in the cloud and in the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.engine.embedded.secrets import SecretsKeyring, encrypt_config_value
from rollback.errors import ConfigError, EngineError, NotFound
from rollback.store.local import LocalStore

PROGRAMS = Path(__file__).parent.parent / "programs"
BUCKET_URN = "urn:pulumi:dev::webapp::tests:index:Artifacts$aws:s3/bucket:Bucket::artifacts"
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Head")
PASSPHRASE = "test-passphrase"
TOKEN = "s3cr3t-token-value"


@dataclass
class MutationCounter:
    """Counts AWS operations that can change something (not Describe/List/Get/Head)."""

    operations: list[str] = field(default_factory=list)

    def __call__(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_ONLY_PREFIXES):
            self.operations.append(model.name)


@dataclass
class Cloud:
    clients: Clients
    mutations: MutationCounter

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.clients("s3").list_buckets()["Buckets"])


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    import boto3

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        counter = MutationCounter()
        # Registered on the session, so every client built from it inherits the hook.
        session.events.register("before-call.*.*", counter)
        yield Cloud(Clients(session), counter)


@pytest.fixture(scope="module")
def secrets_state() -> str:
    state, _ = SecretsKeyring().new_state(PASSPHRASE)
    return state


def bucket_config(secrets_state: str, **values: str) -> StackConfig:
    plain = {
        "webapp:bucketName": "artifacts-bucket",
        **{f"webapp:{k}": v for k, v in values.items()},
    }
    return StackConfig(
        values=plain,
        secrets={"webapp:token": encrypt_config_value(TOKEN, secrets_state)},
        encryption_salt=secrets_state,
    )


def engine_for(cloud: Cloud, tmp_path: Path) -> EmbeddedEngine:
    return EmbeddedEngine(LocalStore(tmp_path / "store"), cloud.clients, "webapp")


def test_up_creates_resources_and_stores_a_pulumi_checkpoint(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)

    checkpoint = engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))

    assert cloud.buckets() == ["artifacts-bucket"]
    versioning = cloud.clients("s3").get_bucket_versioning(Bucket="artifacts-bucket")
    assert versioning["Status"] == "Enabled"
    stored = json.loads((tmp_path / "store" / checkpoint_key("webapp", "dev")).read_bytes())
    assert len(stored.pop("rollback_sha256")) == 64  # sealed: edits outside the toolkit are exit 4
    assert stored == checkpoint.to_dict()
    deployment = stored["deployment"]
    assert deployment["secrets_providers"] == {
        "type": "passphrase",
        "state": {"salt": secrets_state},
    }
    by_type = {r["type"]: r for r in deployment["resources"]}
    assert by_type["pulumi:pulumi:Stack"]["custom"] is False
    provider = by_type["pulumi:providers:aws"]
    assert provider["urn"].startswith("urn:pulumi:dev::webapp::pulumi:providers:aws::default_7_")
    bucket = by_type["aws:s3/bucket:Bucket"]
    assert bucket["urn"] == BUCKET_URN
    assert bucket["id"] == "artifacts-bucket"
    assert bucket["provider"] == f"{provider['urn']}::{provider['id']}"
    assert bucket["parent"] == "urn:pulumi:dev::webapp::tests:index:Artifacts::site"
    assert bucket["outputs"]["arn"] == "arn:aws:s3:::artifacts-bucket"
    urns = [r["urn"] for r in deployment["resources"]]
    versioning_res = by_type["aws:s3/bucketVersioning:BucketVersioning"]
    assert urns.index(BUCKET_URN) < urns.index(versioning_res["urn"])  # dependencies first
    assert engine.outputs("dev") == {
        "bucket": "artifacts-bucket",
        "arn": "arn:aws:s3:::artifacts-bucket",
        "token": "[secret]",
    }


def test_secrets_are_encrypted_in_the_checkpoint_and_decrypt_back(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)

    checkpoint = engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))

    raw = (tmp_path / "store" / checkpoint_key("webapp", "dev")).read_text()
    assert TOKEN not in raw
    token = checkpoint.outputs()["token"]
    assert token["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    crypter = SecretsKeyring().crypter(secrets_state, PASSPHRASE)
    assert json.loads(crypter.decrypt(token["ciphertext"])) == TOKEN


def test_a_second_up_of_an_unchanged_program_makes_no_mutating_call(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)
    first = engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))
    assert cloud.mutations.operations  # the first up did create things
    cloud.mutations.operations.clear()

    again = EmbeddedEngine(engine.store, cloud.clients, "webapp")
    second = again.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))

    assert cloud.mutations.operations == []
    assert {c.op for c in again.last_changes} == {"same"}
    assert [r.get("id") for r in second.resources] == [r.get("id") for r in first.resources]


def test_a_changed_tag_is_updated_in_place(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)
    engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))

    engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state, env="prod"))

    tags = cloud.clients("s3").get_bucket_tagging(Bucket="artifacts-bucket")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"env": "prod"}
    assert {c.urn: c.op for c in engine.last_changes}[BUCKET_URN] == "update"


def test_a_renamed_bucket_is_replaced(cloud: Cloud, tmp_path: Path, secrets_state: str) -> None:
    engine = engine_for(cloud, tmp_path)
    engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))

    engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state, bucketName="artifacts-two"))

    assert cloud.buckets() == ["artifacts-two"]
    assert engine.export("dev").outputs()["bucket"] == "artifacts-two"


def test_a_resource_removed_from_the_program_is_deleted_from_the_cloud(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)
    engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))

    engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state, withVersioning="false"))

    # Deleting a BucketVersioning suspends versioning, as the AWS provider does.
    versioning = cloud.clients("s3").get_bucket_versioning(Bucket="artifacts-bucket")
    assert versioning["Status"] == "Suspended"
    types = {r["type"] for r in engine.export("dev").resources}
    assert "aws:s3/bucketVersioning:BucketVersioning" not in types
    assert [c.op for c in engine.last_changes if c.type.endswith("BucketVersioning")] == ["delete"]


def test_a_failing_aws_call_leaves_a_checkpoint_of_what_was_done(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)

    with pytest.raises(EngineError):
        engine.up(
            PROGRAMS / "bucket",
            "dev",
            bucket_config(secrets_state, versioningBucket="no-such-bucket"),
        )

    assert cloud.buckets() == ["artifacts-bucket"]
    assert [r["urn"] for r in engine.export("dev").resources if r["type"].startswith("aws:")] == [
        BUCKET_URN
    ]
    cloud.mutations.operations.clear()
    engine.up(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))
    # The bucket made before the failure is kept, not made again.
    assert "CreateBucket" not in cloud.mutations.operations
    assert (
        cloud.clients("s3").get_bucket_versioning(Bucket="artifacts-bucket")["Status"] == "Enabled"
    )


def test_an_unsupported_type_is_refused_before_anything_changes(
    cloud: Cloud, tmp_path: Path
) -> None:
    engine = engine_for(cloud, tmp_path)

    with pytest.raises(EngineError) as caught:
        engine.up(PROGRAMS / "queue", "dev", StackConfig())

    # Every unsupported type is named in the one sentence, not only the first.
    assert (
        "aws:cloudfront/originAccessIdentity:OriginAccessIdentity, aws:sfn/activity:Activity;"
        in caught.value.message
    )
    assert "--engine pulumi" in caught.value.message
    assert cloud.buckets() == []
    assert cloud.mutations.operations == []
    with pytest.raises(NotFound):
        engine.export("dev")


@pytest.mark.parametrize(
    ("crash", "named"),
    [
        (
            "false",
            "cannot apply resource type(s) aws:sfn/activity:Activity and cannot answer "
            "function(s) aws:ec2/getVpcEndpointService:getVpcEndpointService;",
        ),
        (
            "true",
            "cannot answer function(s) aws:ec2/getVpcEndpointService:getVpcEndpointService, "
            "aws:kms/getAlias:getAlias;",
        ),
    ],
)
def test_unanswered_functions_are_named_with_the_unsupported_types(
    cloud: Cloud, tmp_path: Path, crash: str, named: str
) -> None:
    engine = EmbeddedEngine(LocalStore(tmp_path / "store"), cloud.clients, "unanswered")

    with pytest.raises(EngineError) as caught:
        engine.up(PROGRAMS / "unanswered", "dev", StackConfig(values={"unanswered:crash": crash}))

    assert named in caught.value.message
    assert "nothing was changed" in caught.value.message
    assert cloud.buckets() == []
    assert cloud.mutations.operations == []


def test_a_failing_program_is_an_engine_error_and_changes_nothing(
    cloud: Cloud, tmp_path: Path
) -> None:
    engine = engine_for(cloud, tmp_path)

    with pytest.raises(EngineError, match="the blue weight must be between 0 and 100"):
        engine.up(PROGRAMS / "failing", "dev", StackConfig())

    assert cloud.buckets() == []


def test_preview_lists_changes_and_changes_nothing(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)

    changes = engine.preview(PROGRAMS / "bucket", "dev", bucket_config(secrets_state))

    assert {(c.type, c.op) for c in changes} == {
        ("aws:s3/bucket:Bucket", "create"),
        ("aws:s3/bucketVersioning:BucketVersioning", "create"),
    }
    assert cloud.buckets() == []
    assert cloud.mutations.operations == []


def test_read_live_reports_a_resource_deleted_outside_the_stack(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    engine = engine_for(cloud, tmp_path)
    checkpoint = engine.up(
        PROGRAMS / "bucket", "dev", bucket_config(secrets_state, withVersioning="false")
    )
    cloud.clients("s3").delete_bucket(Bucket="artifacts-bucket")

    live = engine.read_live(checkpoint)

    assert live == {BUCKET_URN: None}


def test_secret_config_without_a_passphrase_is_a_config_error(
    cloud: Cloud, tmp_path: Path, secrets_state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = bucket_config(secrets_state)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")

    with pytest.raises(ConfigError, match="set PULUMI_CONFIG_PASSPHRASE"):
        engine_for(cloud, tmp_path).up(PROGRAMS / "bucket", "dev", config)

    assert cloud.buckets() == []
