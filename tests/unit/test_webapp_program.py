"""The reference stack program (stacks/webapp), run under Pulumi's mock runtime.

Pulumi's documented unit-testing way: `pulumi.runtime.set_mocks` replaces the
engine, the program registers its resources against the mocks, and the test
reads back what was registered and what the program exported.
"""

from __future__ import annotations

import base64
import inspect
import os
import runpy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
import yaml

from rollback.models import Topology

REPO = Path(__file__).resolve().parents[2]
PROGRAM_DIR = REPO / "stacks" / "webapp"
ACCOUNT = "123456789012"


def _supported_types() -> dict[str, type[pulumi.CustomResource]]:
    """The resource types the embedded engine supports, and the SDK class of each."""
    # Touching `aws.s3` imports every s3 module; the deprecated ones warn on import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return {
            "aws:ec2/vpc:Vpc": aws.ec2.Vpc,
            "aws:ec2/subnet:Subnet": aws.ec2.Subnet,
            "aws:ec2/securityGroup:SecurityGroup": aws.ec2.SecurityGroup,
            "aws:ec2/instance:Instance": aws.ec2.Instance,
            "aws:lb/loadBalancer:LoadBalancer": aws.lb.LoadBalancer,
            "aws:lb/targetGroup:TargetGroup": aws.lb.TargetGroup,
            "aws:lb/targetGroupAttachment:TargetGroupAttachment": aws.lb.TargetGroupAttachment,
            "aws:lb/listener:Listener": aws.lb.Listener,
            "aws:route53/zone:Zone": aws.route53.Zone,
            "aws:route53/record:Record": aws.route53.Record,
            "aws:rds/subnetGroup:SubnetGroup": aws.rds.SubnetGroup,
            "aws:rds/instance:Instance": aws.rds.Instance,
            "aws:s3/bucket:Bucket": aws.s3.Bucket,
            "aws:s3/bucketVersioning:BucketVersioning": aws.s3.BucketVersioning,
            "aws:cloudwatch/metricAlarm:MetricAlarm": aws.cloudwatch.MetricAlarm,
        }


SUPPORTED_TYPES = _supported_types()

BASE_CONFIG = {
    "liveColor": "blue",
    "blueVersion": "1.4.0",
    "greenVersion": "1.5.0",
    "blueWeight": "100",
    "greenWeight": "0",
    "dbUsername": "webapp",
    "dbPassword": "correct-horse-battery",
}


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    """Answers each registration with the inputs plus the outputs AWS would compute."""

    registered: list[pulumi.runtime.MockResourceArgs] = field(default_factory=list)
    computed: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> outputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(args)
        outputs = _computed_outputs(args)
        self.computed[args.name] = outputs
        return f"{args.name}-id", {**args.inputs, **outputs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        raise AssertionError(
            f"the program invoked {args.token}; the embedded engine supports no invokes"
        )

    def by_type(self, type_token: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.registered if r.typ == type_token]

    def named(self, name: str) -> pulumi.runtime.MockResourceArgs:
        (match,) = [r for r in self.registered if r.name == name]
        return match


def _computed_outputs(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """The outputs the program reads that AWS (not the program) decides."""
    name = args.inputs.get("name") or args.name
    if args.typ == "aws:lb/loadBalancer:LoadBalancer":
        suffix = f"app/{name}/50dc6c495c0c9188"
        return {
            "arn": f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/{suffix}",
            "arnSuffix": suffix,
            "dnsName": f"internal-{name}-1234.us-east-1.elb.amazonaws.com",
        }
    if args.typ == "aws:lb/targetGroup:TargetGroup":
        suffix = f"targetgroup/{name}/{len(name):016x}"
        return {
            "arn": f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:{suffix}",
            "arnSuffix": suffix,
        }
    if args.typ == "aws:lb/listener:Listener":
        return {
            "arn": f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:listener/app/{args.name}/1"
        }
    if args.typ == "aws:route53/zone:Zone":
        return {"zoneId": "Z0123456789ABCDEFGHIJ"}
    return {"arn": f"arn:aws:mock:us-east-1:{ACCOUNT}:{args.name}"}


def resolve(value: Any) -> Any:
    """Wait for an Output (or a structure of Outputs) and return its plain value."""
    box: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[misc]
    def wait() -> pulumi.Output[Any]:
        return pulumi.Output.from_input(value).apply(lambda plain: box.setdefault("value", plain))

    wait()
    return box["value"]


@dataclass
class ProgramRun:
    mocks: RecordingMocks
    rollback: dict[str, Any]


@pytest.fixture
def run_program() -> Iterator[Callable[..., ProgramRun]]:
    """Run stacks/webapp as stack `dev` with BASE_CONFIG overridden by keyword arguments."""

    def run(**overrides: str | None) -> ProgramRun:
        config = {**BASE_CONFIG, **overrides}
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(mocks, project="webapp", stack="dev", preview=False)
        pulumi.runtime.set_all_config(
            {f"webapp:{k}": v for k, v in config.items() if v is not None}
            | {"aws:region": "us-east-1"},
            secret_keys=["webapp:dbPassword"],
        )
        runpy.run_path(str(PROGRAM_DIR), run_name="__main__")
        stack = pulumi.runtime.get_root_resource()
        assert stack is not None
        exported = resolve(stack.outputs["rollback"])  # type: ignore[attr-defined]
        return ProgramRun(mocks=mocks, rollback=exported)

    yield run
    pulumi.runtime.set_all_config({}, secret_keys=[])


def test_only_supported_types_and_no_invokes(run_program: Callable[..., ProgramRun]) -> None:
    run = run_program()
    types = {r.typ for r in run.mocks.registered}
    assert types <= set(SUPPORTED_TYPES), types - set(SUPPORTED_TYPES)
    # Every supported type is exercised, so the engine's list is not wider than needed.
    assert types == set(SUPPORTED_TYPES)


@pytest.mark.parametrize(("blue", "green"), [(100, 0), (30, 70), (0, 100)])
def test_listener_and_dns_weights_follow_config(
    run_program: Callable[..., ProgramRun], blue: int, green: int
) -> None:
    run = run_program(blueWeight=str(blue), greenWeight=str(green))
    tg_arns = {c: run.mocks.computed[f"tg-{c}"]["arn"] for c in ("blue", "green")}

    (listener,) = run.mocks.by_type("aws:lb/listener:Listener")
    (action,) = listener.inputs["defaultActions"]
    assert action["type"] == "forward"
    weights = {tg["arn"]: tg["weight"] for tg in action["forward"]["targetGroups"]}
    assert weights == {tg_arns["blue"]: blue, tg_arns["green"]: green}
    assert sum(weights.values()) == 100

    records = {
        r.inputs["setIdentifier"]: r.inputs for r in run.mocks.by_type("aws:route53/record:Record")
    }
    assert {k: v["weightedRoutingPolicies"][0]["weight"] for k, v in records.items()} == {
        "blue": blue,
        "green": green,
    }
    alb_dns = run.mocks.computed["alb"]["dnsName"]
    for record in records.values():
        assert (record["name"], record["type"], record["ttl"]) == (
            "app.example.internal",
            "CNAME",
            60,
        )
        assert record["records"] == [alb_dns]


def test_every_taggable_resource_carries_the_three_tags(
    run_program: Callable[..., ProgramRun],
) -> None:
    run = run_program()
    taggable = [
        r
        for r in run.mocks.registered
        if "tags" in inspect.signature(SUPPORTED_TYPES[r.typ]._internal_init).parameters
    ]
    assert len(taggable) >= 10  # vpc, subnets, sg, alb, tgs, instances, listener, zone, db...
    for resource in taggable:
        tags = resource.inputs.get("tags") or {}
        assert tags.get("Project") == "webapp", resource.name
        assert tags.get("Stack") == "dev", resource.name
        assert tags.get("ManagedBy") == "rollback-webapp", resource.name


def test_rollback_output_is_a_complete_topology(run_program: Callable[..., ProgramRun]) -> None:
    run = run_program(liveColor="green", blueWeight="0", greenWeight="100")
    topology = Topology.from_dict(run.rollback)

    for name, value in topology.to_dict().items():
        if name != "rule_arns":  # the stack routes by default action, not listener rules
            assert value not in ("", None, {}, []), f"{name} is empty"
    computed = run.mocks.computed
    assert topology.listener_arn == computed["http"]["arn"]
    assert topology.load_balancer_arn == computed["alb"]["arn"]
    assert topology.target_groups == {c: computed[f"tg-{c}"]["arn"] for c in ("blue", "green")}
    assert topology.zone_id == computed["zone"]["zoneId"]
    assert (topology.record_name, topology.record_type) == ("app.example.internal", "CNAME")
    assert topology.set_identifiers == {"blue": "blue", "green": "green"}
    assert topology.db_instance_id == "webapp-dev-db"
    assert topology.alarms == {"blue": ["webapp-dev-blue-5xx"], "green": ["webapp-dev-green-5xx"]}
    alb_dns = computed["alb"]["dnsName"]
    assert topology.health_urls == {
        "blue": [f"http://{alb_dns}/health"],
        "green": [f"http://{alb_dns}/health"],
    }
    assert topology.live_color == "green"
    assert topology.versions == {"blue": "1.4.0", "green": "1.5.0"}
    assert topology.artifact_bucket == "webapp-dev-artifacts"
    assert topology.artifact_key == "releases/1.5.0/artifact"
    assert topology.schema == 1


def test_health_url_from_config_overrides_the_default(
    run_program: Callable[..., ProgramRun],
) -> None:
    run = run_program(healthUrlGreen="https://green.example.test/health")
    topology = Topology.from_dict(run.rollback)
    assert topology.health_urls["green"] == ["https://green.example.test/health"]
    assert topology.health_urls["blue"][0].startswith("http://internal-webapp-dev-alb")


def test_instances_carry_their_colour_and_version(
    run_program: Callable[..., ProgramRun],
) -> None:
    run = run_program(blueCount="2", greenCount="1")
    instances = run.mocks.by_type("aws:ec2/instance:Instance")
    assert sorted(
        (i.inputs["tags"]["Color"], i.inputs["tags"]["AppVersion"]) for i in instances
    ) == [
        ("blue", "1.4.0"),
        ("blue", "1.4.0"),
        ("green", "1.5.0"),
    ]
    # Each instance is registered with its own colour's target group.
    tg_arn_of = {run.mocks.computed[f"tg-{c}"]["arn"]: c for c in ("blue", "green")}
    attachments = run.mocks.by_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")
    assert len(attachments) == 3
    for attachment in attachments:
        instance_name = attachment.name.removesuffix("-attachment")
        assert attachment.inputs["targetId"] == f"{instance_name}-id"
        color = run.mocks.named(instance_name).inputs["tags"]["Color"]
        assert tg_arn_of[attachment.inputs["targetGroupArn"]] == color
    # The instances are spread over both availability zones' subnets.
    assert {i.inputs["subnetId"] for i in instances} == {"subnet-a-id", "subnet-b-id"}


def test_database_and_bucket_are_named_and_versioned(
    run_program: Callable[..., ProgramRun],
) -> None:
    run = run_program()
    (db,) = run.mocks.by_type("aws:rds/instance:Instance")
    assert db.inputs["identifier"] == "webapp-dev-db"
    assert (db.inputs["engine"], db.inputs["instanceClass"], db.inputs["allocatedStorage"]) == (
        "postgres",
        "db.t3.micro",
        20,
    )
    assert db.inputs["dbSubnetGroupName"] == "webapp-dev-db"
    (versioning,) = run.mocks.by_type("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["bucket"] == "artifacts-id"
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    subnets = run.mocks.by_type("aws:ec2/subnet:Subnet")
    assert sorted(s.inputs["availabilityZone"] for s in subnets) == ["us-east-1a", "us-east-1b"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"blueWeight": "60", "greenWeight": "60"}, "sum to 120; they must sum to 100"),
        ({"blueWeight": "110", "greenWeight": "-10"}, "weights are integers from 0 to 100"),
        ({"blueWeight": "half"}, "webapp:blueWeight must be an integer"),
        ({"liveColor": "red"}, "set it to blue or green"),
    ],
)
def test_bad_config_raises_a_clear_error(
    run_program: Callable[..., ProgramRun], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(pulumi.RunError, match=message):
        run_program(**overrides)


def test_dev_stack_config_decrypts_with_the_passphrase_and_is_documented() -> None:
    """Pulumi.dev.yaml uses the passphrase provider's format (PBKDF2-SHA256, AES-256-GCM)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    stack_file = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    version, salt, check = stack_file["encryptionsalt"].split(":", 2)
    assert version == "v1"
    key = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=32, salt=base64.b64decode(salt), iterations=1_000_000
    ).derive(os.environ["PULUMI_CONFIG_PASSPHRASE"].encode())

    def decrypt(ciphertext: str) -> str:
        tag, nonce, sealed = ciphertext.split(":")
        assert tag == "v1"
        return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None).decode()

    assert decrypt(check) == "pulumi"
    config = stack_file["config"]
    assert len(decrypt(config["webapp:dbPassword"]["secure"])) >= 8  # RDS's minimum

    topology_doc = (REPO / "docs" / "topology.md").read_text()
    for key_name in config:
        assert f"`{key_name}`" in topology_doc, f"{key_name} is not documented"
