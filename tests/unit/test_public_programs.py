"""Unmodified programs from Pulumi's public examples, `up` on the embedded engine.

Each program (copied under tests/programs/public/, origin and licence in its
README) is brought up against in-process moto; the cloud is then read back
with plain boto3, and a second `up` of the unchanged program must make no
mutating AWS call (counted with a botocore `before-call` hook on the session).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.engine.embedded.secrets import SecretsKeyring, encrypt_config_value
from rollback.store.local import LocalStore

PUBLIC = Path(__file__).parent.parent / "programs" / "public"
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Head")
PASSPHRASE = "test-passphrase"
DB_PASSWORD = "wp-Sup3r-s3cret"
ZONE = "rollbacktest.dev"  # made before the static site comes up, as its README asks
SITE = f"www.{ZONE}"


@dataclass
class MutationCounter:
    """AWS operations that can change something (anything but Describe/List/Get/Head)."""

    operations: list[str] = field(default_factory=list)

    def __call__(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_ONLY_PREFIXES):
            self.operations.append(model.name)


@dataclass
class Cloud:
    clients: Clients
    mutations: MutationCounter

    def __call__(self, service: str) -> Any:
        return self.clients(service)


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    import boto3

    # Real accounts hold AWS managed policies; programs attach them.
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        session = boto3.Session(region_name="us-east-1")
        counter = MutationCounter()
        session.events.register("before-call.*.*", counter)
        yield Cloud(Clients(session), counter)


def _check_s3_folder(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    bucket = outputs["bucket_name"]
    keys = sorted(o["Key"] for o in cloud("s3").list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["favicon.png", "index.html", "python.png"]
    index = cloud("s3").get_object(Bucket=bucket, Key="index.html")
    assert index["ContentType"] == "text/html"
    assert index["Body"].read() == (PUBLIC / "aws-py-s3-folder" / "www" / "index.html").read_bytes()
    website = cloud("s3").get_bucket_website(Bucket=bucket)
    assert website["IndexDocument"] == {"Suffix": "index.html"}
    policy = json.loads(cloud("s3").get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Resource"] == [f"arn:aws:s3:::{bucket}/*"]
    block = cloud("s3").get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block["BlockPublicAcls"] is False
    assert outputs["website_url"] == f"{bucket}.s3-website-us-east-1.amazonaws.com"


def _check_webserver(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    reservations = cloud("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
    )["Reservations"]
    (instance,) = [i for r in reservations for i in r["Instances"]]
    assert instance["PublicIpAddress"] == outputs["public_ip"]
    assert instance["InstanceType"] == "t2.micro"
    # The AMI came from the program's get_ami lookup: Amazon Linux 2 owned by Amazon.
    image = cloud("ec2").describe_images(ImageIds=[instance["ImageId"]])["Images"][0]
    assert image["Name"].startswith("amzn2-ami-hvm-")
    (group,) = cloud("ec2").describe_security_groups(
        GroupIds=[instance["SecurityGroups"][0]["GroupId"]]
    )["SecurityGroups"]
    assert group["IpPermissions"][0]["FromPort"] == 80


def _service(cloud: Cloud) -> dict[str, Any]:
    (cluster,) = cloud("ecs").list_clusters()["clusterArns"]
    (arn,) = cloud("ecs").list_services(cluster=cluster)["serviceArns"]
    service: dict[str, Any] = cloud("ecs").describe_services(cluster=cluster, services=[arn])[
        "services"
    ][0]
    return service


def _check_fargate(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    service = _service(cloud)
    assert service["desiredCount"] == 3 and service["launchType"] == "FARGATE"
    (target_group,) = cloud("elbv2").describe_target_groups()["TargetGroups"]
    assert service["loadBalancers"][0]["targetGroupArn"] == target_group["TargetGroupArn"]
    # Subnets of the default VPC, found by the program's get_vpc/get_subnets.
    default_vpc = cloud("ec2").describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])[
        "Vpcs"
    ][0]["VpcId"]
    subnets = service["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
    described = cloud("ec2").describe_subnets(SubnetIds=subnets)["Subnets"]
    assert {s["VpcId"] for s in described} == {default_vpc}
    (lb,) = cloud("elbv2").describe_load_balancers()["LoadBalancers"]
    assert outputs["url"] == lb["DNSName"]
    roles = [r["RoleName"] for r in cloud("iam").list_roles()["Roles"]]
    attached = cloud("iam").list_attached_role_policies(
        RoleName=next(r for r in roles if r.startswith("task-exec-role"))
    )["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonECSTaskExecutionRolePolicy"]


def _check_wordpress(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    (db,) = cloud("rds").describe_db_instances()["DBInstances"]
    assert db["Engine"] == "mysql" and db["DBName"] == "lampdb"
    assert outputs["DB Endpoint"] == db["Endpoint"]["Address"]
    service = _service(cloud)
    definition = cloud("ecs").describe_task_definition(taskDefinition=service["taskDefinition"])[
        "taskDefinition"
    ]
    environment = {
        e["name"]: e["value"] for e in definition["containerDefinitions"][0]["environment"]
    }
    assert environment["WORDPRESS_DB_PASSWORD"] == DB_PASSWORD
    assert environment["WORDPRESS_DB_HOST"] == f"{db['Endpoint']['Address']}:3306"
    (vpc,) = [v for v in cloud("ec2").describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.100.0.0/16"]
    tables = cloud("ec2").describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    )["RouteTables"]
    routes = [r for t in tables for r in t["Routes"] if r.get("GatewayId", "").startswith("igw-")]
    assert [r["DestinationCidrBlock"] for r in routes] == ["0.0.0.0/0"]
    assert sum(len(t.get("Associations", [])) for t in tables) >= 3  # main + two subnets
    # The password went into the task definition, yet the checkpoint holds it encrypted.
    assert DB_PASSWORD not in raw


def _check_secrets_manager(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    value = cloud("secretsmanager").get_secret_value(SecretId=outputs["secret_id"])
    assert value["SecretString"] == "mysecret"
    assert "mysecret" not in raw


def _check_resources(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    (queue_url,) = cloud("sqs").list_queues()["QueueUrls"]
    queue_arn = cloud("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    subscriptions = cloud("sns").list_subscriptions()["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("sqs", queue_arn)]
    assert len(cloud("sns").list_topics()["Topics"]) == 2
    (table,) = cloud("dynamodb").list_tables()["TableNames"]
    assert cloud("dynamodb").describe_table(TableName=table)["Table"]["KeySchema"] == [
        {"AttributeName": "Id", "KeyType": "HASH"}
    ]
    (stream,) = cloud("kinesis").list_streams()["StreamNames"]
    assert stream.startswith("mystream-")
    (rule,) = cloud("events").list_rules()["Rules"]
    (target,) = cloud("events").list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Id"] == "SendToSNS" and target["Arn"].startswith("arn:aws:sns:")
    (repository,) = cloud("ecr").describe_repositories()["repositories"]
    lifecycle = cloud("ecr").get_lifecycle_policy(repositoryName=repository["repositoryName"])
    assert json.loads(lifecycle["lifecyclePolicyText"])["rules"][0]["rulePriority"] == 1
    role = next(r for r in cloud("iam").list_roles()["Roles"] if r["RoleName"].startswith("myrole"))
    assert cloud("iam").list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    attached = cloud("iam").list_attached_role_policies(RoleName=role["RoleName"])
    assert [p["PolicyName"] for p in attached["AttachedPolicies"]][0].startswith("mypolicy")
    (group,) = cloud("logs").describe_log_groups()["logGroups"]
    filters = cloud("logs").describe_metric_filters(logGroupName=group["logGroupName"])
    assert filters["metricFilters"][0]["metricTransformations"][0]["metricName"] == "EventCount"
    assert len(cloud("ec2").describe_addresses()["Addresses"]) == 1


def _check_stepfunctions(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    import base64
    import hashlib
    import io
    import zipfile

    from rollback.engine.embedded.assets import archive_zip

    (function,) = cloud("lambda").list_functions()["Functions"]
    assert function["Handler"] == "hello.handler" and function["Runtime"] == "python3.12"
    # The package Lambda holds is the program's directory archive, zipped.
    (code,) = [
        r["inputs"]["code"]
        for r in json.loads(raw)["deployment"]["resources"]
        if r["type"] == "aws:lambda/function:Function"
    ]
    package = archive_zip(code, PUBLIC / "aws-py-stepfunctions")
    source = PUBLIC / "aws-py-stepfunctions" / "step_hello" / "hello.py"
    assert zipfile.ZipFile(io.BytesIO(package)).read("hello.py") == source.read_bytes()
    assert function["CodeSha256"] == base64.b64encode(hashlib.sha256(package).digest()).decode()
    machine = cloud("stepfunctions").describe_state_machine(
        stateMachineArn=outputs["state_machine_arn"]
    )
    assert (
        json.loads(machine["definition"])["States"]["HelloWorld"]["Resource"]
        == (function["FunctionArn"])
    )


def _check_apigateway_lambda(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    (function,) = cloud("lambda").list_functions()["Functions"]
    (rest,) = cloud("apigateway").get_rest_apis()["items"]
    resources = cloud("apigateway").get_resources(restApiId=rest["id"])["items"]
    (proxy,) = [r for r in resources if r["path"] == "/{proxy+}"]
    integration = next(iter(proxy["resourceMethods"].values()))["methodIntegration"]
    assert function["FunctionArn"] in integration["uri"]
    (stage,) = cloud("apigateway").get_stages(restApiId=rest["id"])["item"]
    assert stage["stageName"] == "example"
    assert outputs["apigateway-rest-endpoint"].startswith(f"https://{rest['id']}.execute-api.")
    (api,) = cloud("apigatewayv2").get_apis()["Items"]
    (route,) = cloud("apigatewayv2").get_routes(ApiId=api["ApiId"])["Items"]
    (http_integration,) = cloud("apigatewayv2").get_integrations(ApiId=api["ApiId"])["Items"]
    assert route["RouteKey"] == "ANY /{proxy+}"
    assert route["Target"] == f"integrations/{http_integration['IntegrationId']}"
    assert http_integration["IntegrationUri"] == function["FunctionArn"]
    policy = json.loads(cloud("lambda").get_policy(FunctionName=function["FunctionName"])["Policy"])
    assert len(policy["Statement"]) == 2  # the REST and the HTTP API may invoke it


def _check_ecs_instances(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    (group,) = cloud("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"]) == (1, 1)
    (configuration,) = cloud("autoscaling").describe_launch_configurations()["LaunchConfigurations"]
    assert group["LaunchConfigurationName"] == configuration["LaunchConfigurationName"]
    image = cloud("ec2").describe_images(ImageIds=[configuration["ImageId"]])["Images"][0]
    assert image["Name"].startswith("amzn2-ami-ecs-hvm-")  # the program's get_ami lookup
    profile = cloud("iam").get_instance_profile(
        InstanceProfileName=configuration["IamInstanceProfile"]
    )["InstanceProfile"]
    assert profile["Roles"][0]["RoleName"].startswith("ecs-instance-role")
    (provider_arn,) = [
        r["id"]
        for r in json.loads(raw)["deployment"]["resources"]
        if r["type"] == "aws:ecs/capacityProvider:CapacityProvider"
    ]
    providers = cloud("ecs").describe_capacity_providers(capacityProviders=[provider_arn])[
        "capacityProviders"
    ]
    assert group["AutoScalingGroupARN"] in [
        p.get("autoScalingGroupProvider", {}).get("autoScalingGroupArn") for p in providers
    ]
    service = _service(cloud)
    assert service["launchType"] == "EC2" and service["clusterArn"].endswith(
        "/my-fancy-new-ecs-cluster"
    )


def _check_apigatewayv2_eventbridge(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    (api,) = cloud("apigatewayv2").get_apis()["Items"]
    assert api["ProtocolType"] == "HTTP"
    (stage,) = cloud("apigatewayv2").get_stages(ApiId=api["ApiId"])["Items"]
    assert stage["StageName"] == "dev" and stage["AutoDeploy"] is True
    assert outputs["url"] == f"{api['ApiEndpoint']}/dev"
    (integration,) = cloud("apigatewayv2").get_integrations(ApiId=api["ApiId"])["Items"]
    assert integration["IntegrationSubtype"] == "EventBridge-PutEvents"
    (route,) = cloud("apigatewayv2").get_routes(ApiId=api["ApiId"])["Items"]
    assert route["RouteKey"] == "POST /uploads"
    assert route["Target"] == f"integrations/{integration['IntegrationId']}"
    # The target's id was left to the provider: found on the bus's rule, aimed at the function.
    bus = integration["RequestParameters"]["EventBusName"]
    (rule,) = cloud("events").list_rules(EventBusName=bus)["Rules"]
    (target,) = cloud("events").list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
    (function,) = cloud("lambda").list_functions()["Functions"]
    assert target["Arn"] == function["FunctionArn"]
    assert json.loads(rule["EventPattern"]) == {"source": ["my-event-source"]}


def _check_apigatewayv2_quickcreate(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    (api,) = cloud("apigatewayv2").get_apis()["Items"]
    assert api["ProtocolType"] == "HTTP" and outputs["endpoint"] == api["ApiEndpoint"]
    (function,) = cloud("lambda").list_functions()["Functions"]
    assert function["Runtime"] == "nodejs12.x" and function["Handler"] == "index.handler"
    policy = json.loads(cloud("lambda").get_policy(FunctionName=function["FunctionName"])["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}


def _check_slackbot(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    (table,) = cloud("dynamodb").list_tables()["TableNames"]
    described = cloud("dynamodb").describe_table(TableName=table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    (function,) = cloud("lambda").list_functions()["Functions"]
    assert function["Environment"]["Variables"]["SUBSCRIPTIONS_TABLE_NAME"] == table
    (api,) = cloud("apigateway").get_rest_apis()["items"]
    stage = cloud("apigateway").get_stage(restApiId=api["id"], stageName="slackbot-example")
    assert stage["deploymentId"]
    policy = json.loads(cloud("lambda").get_policy(FunctionName=function["FunctionName"])["Policy"])
    assert policy["Statement"][0]["Condition"]["ArnLike"]["AWS:SourceArn"].endswith("*/*")


def _check_static_website(cloud: Cloud, outputs: dict[str, Any], raw: str) -> None:
    s3, route53 = cloud("s3"), cloud("route53")
    content = outputs["content_bucket_url"].removeprefix("s3://")
    assert content.startswith(f"{SITE}-content-")
    website = s3.get_bucket_website(Bucket=content)
    assert website["IndexDocument"] == {"Suffix": "index.html"}
    assert website["ErrorDocument"] == {"Key": "404.html"}
    for key in ("index.html", "404.html"):
        page = s3.get_object(Bucket=content, Key=key)
        assert page["ContentType"] == "text/html"
        assert page["Body"].read() == (PUBLIC / "aws-py-static-website" / "www" / key).read_bytes()
    (logs,) = [
        b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"{SITE}-logs-")
    ]
    ownership = s3.get_bucket_ownership_controls(Bucket=logs)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    # The certificate, in us-east-1 through the program's explicit provider, was validated
    # by DNS: its record is in the zone, and it was issued before CloudFront got it.
    acm = cloud("acm")
    (summary,) = acm.list_certificates()["CertificateSummaryList"]
    certificate = acm.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
    assert certificate["DomainName"] == SITE and certificate["Status"] == "ISSUED"
    (zone,) = route53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"]
    records = {
        (r["Name"], r["Type"]): r
        for r in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    }
    validation = certificate["DomainValidationOptions"][0]["ResourceRecord"]
    cname = records[(validation["Name"], "CNAME")]
    assert cname["ResourceRecords"] == [{"Value": validation["Value"]}]
    (distribution,) = cloud("cloudfront").list_distributions()["DistributionList"]["Items"]
    config = cloud("cloudfront").get_distribution_config(Id=distribution["Id"])[
        "DistributionConfig"
    ]
    assert config["Aliases"]["Items"] == [SITE] and config["DefaultRootObject"] == "index.html"
    assert config["ViewerCertificate"]["ACMCertificateArn"] == certificate["CertificateArn"]
    assert config["Origins"]["Items"][0]["DomainName"] == outputs["content_bucket_website_endpoint"]
    assert config["CustomErrorResponses"]["Items"][0]["ResponsePagePath"] == "/404.html"
    assert config["Logging"]["Bucket"] == f"{logs}.s3.amazonaws.com"
    assert outputs["cloudfront_domain"] == distribution["DomainName"]
    # www points at the distribution through an alias record in CloudFront's zone.
    alias = records[(f"{SITE}.", "A")]["AliasTarget"]
    assert alias["DNSName"].rstrip(".") == distribution["DomainName"]
    assert alias["HostedZoneId"] == "Z2FDTNDATAQYW2"
    (validated,) = [
        r
        for r in json.loads(raw)["deployment"]["resources"]
        if r["type"] == "aws:acm/certificateValidation:CertificateValidation"
    ]
    assert validated["outputs"]["certificateArn"] == certificate["CertificateArn"]


PROGRAMS: dict[str, Callable[[Cloud, dict[str, Any], str], None]] = {
    "aws-py-s3-folder": _check_s3_folder,
    "aws-py-webserver": _check_webserver,
    "aws-py-fargate": _check_fargate,
    "aws-py-wordpress-fargate-rds": _check_wordpress,
    "aws-py-secrets-manager": _check_secrets_manager,
    "aws-py-resources": _check_resources,
    "aws-py-stepfunctions": _check_stepfunctions,
    "aws-py-apigateway-lambda-serverless": _check_apigateway_lambda,
    "aws-py-ecs-instances-autoapi": _check_ecs_instances,
    "aws-py-apigatewayv2-eventbridge": _check_apigatewayv2_eventbridge,
    "aws-py-apigatewayv2-http-api-quickcreate": _check_apigatewayv2_quickcreate,
    "aws-py-slackbot": _check_slackbot,
    "aws-py-static-website": _check_static_website,
}


def _prepare(name: str, cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a program expects to find in the account before it comes up."""
    if name == "aws-py-static-website":
        cloud("route53").create_hosted_zone(Name=ZONE, CallerReference="rollback-test")
        # ACM issues a DNS-validated certificate once it finds the record; moto's stand-in is
        # a delay after the request (60 s unless told), shortened so the test waits ~1 s.
        import moto.settings

        monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 1)


def _config(name: str, project: str) -> StackConfig:
    if name == "aws-py-static-website":
        return StackConfig(
            values={
                "aws:region": "us-east-1",
                f"{project}:targetDomain": SITE,
                f"{project}:pathToWebsiteContents": "./www",
            }
        )
    if name == "aws-py-ecs-instances-autoapi":
        return StackConfig(values={"aws:region": "us-east-1", "cfg:autoscalingGroupSize": "1"})
    if name != "aws-py-wordpress-fargate-rds":
        return StackConfig(values={"aws:region": "us-east-1"})
    state, _ = SecretsKeyring().new_state(PASSPHRASE)
    return StackConfig(
        values={"aws:region": "us-east-1"},
        secrets={f"{project}:db_password": encrypt_config_value(DB_PASSWORD, state)},
        encryption_salt=state,
    )


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_public_program_comes_up_and_a_second_up_changes_nothing(
    name: str, cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = PUBLIC / name
    project = yaml.safe_load((program / "Pulumi.yaml").read_text())["name"]
    engine = EmbeddedEngine(LocalStore(tmp_path / "store"), cloud.clients, project)
    config = _config(name, project)
    _prepare(name, cloud, monkeypatch)

    checkpoint = engine.up(program, "dev", config)

    assert cloud.mutations.operations
    raw = (tmp_path / "store" / checkpoint_key(project, "dev")).read_text()
    PROGRAMS[name](cloud, checkpoint.outputs(), raw)
    # Every resource the checkpoint holds is there when read back, type by type.
    live = engine.read_live(checkpoint)
    assert live and all(outputs is not None for outputs in live.values()), live

    cloud.mutations.operations.clear()
    engine.up(program, "dev", config)

    assert cloud.mutations.operations == []
    assert {c.op for c in engine.last_changes} == {"same"}


@dataclass
class AssumeRoleAudit:
    """STS AssumeRole requests and answers, and the access key that signed each CreateBucket."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    issued_keys: list[str] = field(default_factory=list)
    bucket_signers: list[str] = field(default_factory=list)

    def watch(self, session: Any) -> None:
        session.events.register(
            "provide-client-params.sts.AssumeRole",
            lambda params, **_: self.requests.append(dict(params)),
        )
        session.events.register(
            "after-call.sts.AssumeRole",
            lambda parsed, **_: self.issued_keys.append(parsed["Credentials"]["AccessKeyId"]),
        )
        # Last, so the request is signed already: `Credential=<access key id>/...`.
        session.events.register_last("request-created.s3", self._signed)

    def _signed(self, request: Any, operation_name: str, **_: Any) -> None:
        if operation_name == "CreateBucket":
            authorization = str(request.headers.get("Authorization", ""))
            credential = authorization.partition("Credential=")[2]
            self.bucket_signers.append(credential.split("/", 1)[0])


def _up_twice(
    program: Path, clients: Clients, counter: MutationCounter, store: Path, config: StackConfig
) -> tuple[EmbeddedEngine, dict[str, Any], str]:
    """`up`, every resource read back, then a second `up` that must change nothing."""
    project = yaml.safe_load((program / "Pulumi.yaml").read_text())["name"]
    engine = EmbeddedEngine(LocalStore(store), clients, project)
    checkpoint = engine.up(program, "dev", config)
    assert counter.operations
    live = engine.read_live(checkpoint)
    assert live and all(outputs is not None for outputs in live.values()), live
    counter.operations.clear()
    engine.up(program, "dev", config)
    assert counter.operations == []
    assert {c.op for c in engine.last_changes} == {"same"}
    raw = (store / checkpoint_key(project, "dev")).read_text()
    return engine, checkpoint.outputs(), raw


def test_assume_role_the_role_is_made_then_assumed_by_its_unprivileged_user(
    cloud: Cloud, tmp_path: Path
) -> None:
    """aws-py-assume-role, as its README runs it: create-role makes a user, its access key and
    a role the user may assume; assume-role then runs with that user's key, and its explicit
    provider assumes the role, with whose credentials the bucket is made."""
    import boto3

    from rollback.engine.embedded.checkpoint import read_deployment
    from rollback.engine.embedded.secrets import is_secret, reveal
    from rollback.models import Checkpoint

    iam = cloud("iam")
    create = PUBLIC / "aws-py-assume-role" / "create-role"
    _, outputs, raw = _up_twice(
        create,
        cloud.clients,
        cloud.mutations,
        tmp_path / "create",
        StackConfig(
            values={"aws:region": "us-east-1", "aws-py-create-role:unprivilegedUsername": "alice"}
        ),
    )
    user = iam.get_user(UserName="alice")["User"]
    (key,) = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    exports = reveal(
        read_deployment(Checkpoint.from_dict(json.loads(raw)), SecretsKeyring().crypter).exports()
    )
    assert exports["accessKeyId"] == key["AccessKeyId"] and key["Status"] == "Active"
    # The secret is a secret output: in the checkpoint only as ciphertext, in the state and
    # the stack's exports alike.
    secret = exports["secretAccessKey"]
    assert secret and secret not in raw
    assert is_secret(outputs["secretAccessKey"])
    (access_key,) = [
        r
        for r in json.loads(raw)["deployment"]["resources"]
        if r["type"] == "aws:iam/accessKey:AccessKey"
    ]
    for name in ("secret", "sesSmtpPasswordV4"):
        assert is_secret(access_key["outputs"][name]), name
        assert "ciphertext" in access_key["outputs"][name], name
    role_name = exports["roleArn"].rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"AWS": user["Arn"]}
    (policy,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role_name, PolicyName=policy)["PolicyDocument"]
    assert document["Statement"][0]["Action"] == "s3:*"

    # assume-role, with the unprivileged user's own key.
    as_user = boto3.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=secret, region_name="us-east-1"
    )
    counter, audit = MutationCounter(), AssumeRoleAudit()
    as_user.events.register("before-call.*.*", counter)
    audit.watch(as_user)
    _, outputs, _ = _up_twice(
        PUBLIC / "aws-py-assume-role" / "assume-role",
        Clients(as_user),
        counter,
        tmp_path / "assume",
        StackConfig(
            values={
                "aws:region": "us-east-1",
                "aws-py-assume-role:roleToAssumeARN": exports["roleArn"],
            }
        ),
    )
    assert audit.requests == [
        {
            "RoleArn": exports["roleArn"],
            "RoleSessionName": "PulumiSession",
            "ExternalId": "PulumiApplication",
        }
    ]
    # The bucket was made with the role's temporary credentials, not with the user's key.
    assert audit.bucket_signers == audit.issued_keys and audit.issued_keys[0] != key["AccessKeyId"]
    bucket = outputs["bucket_name"].removesuffix(".s3.amazonaws.com")
    assert bucket in [b["Name"] for b in cloud("s3").list_buckets()["Buckets"]]
