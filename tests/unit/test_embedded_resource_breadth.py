"""The appliers beyond stacks/webapp's types, and the data sources, against in-process moto.

Every type goes through one lifecycle: create, read back as declared (what
drift verification compares), a change behind the applier's back shows in
read, delete, gone on read, a second delete is a no-op. Updates that matter
to blue/green (listener rule weights, routes, service size) are checked in
the cloud with plain boto3.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine.embedded.engine import drifted
from rollback.engine.embedded.invokes import Invokes, policy_document
from rollback.engine.embedded.resources import ResourceType, resource_types
from rollback.errors import EngineError

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/breadth-role"
ROLE_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@dataclass(frozen=True)
class Cloud:
    session: boto3.Session
    types: dict[str, ResourceType]
    invokes: Invokes

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def applier(self, token: str) -> ResourceType:
        return self.types[token]


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        clients = Clients(session=session)
        yield Cloud(session, resource_types(clients), Invokes(clients))


@dataclass(frozen=True)
class Chain:
    vpc_id: str
    subnet_ids: list[str]
    group_id: str
    lb_arn: str
    tg_arns: dict[str, str]
    listener_arn: str
    bucket: str
    role: str
    cluster_arn: str


@pytest.fixture(scope="module")
def chain(cloud: Cloud) -> Chain:
    ec2 = cloud.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = [
        ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"{REGION}{z}"
        )["Subnet"]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    group_id = ec2.create_security_group(GroupName="breadth", Description="d", VpcId=vpc_id)[
        "GroupId"
    ]
    elbv2 = cloud.client("elbv2")
    lb_arn = elbv2.create_load_balancer(Name="breadth", Subnets=subnet_ids)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    tg_arns = {
        color: elbv2.create_target_group(
            Name=f"breadth-{color}", Protocol="HTTP", Port=80, VpcId=vpc_id, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        for color in ("blue", "green")
    }
    listener_arn = elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arns["blue"]}],
    )["Listeners"][0]["ListenerArn"]
    cloud.client("s3").create_bucket(Bucket="breadth-bucket")
    cloud.client("iam").create_role(RoleName="breadth-role", AssumeRolePolicyDocument=ROLE_TRUST)
    cluster_arn = cloud.client("ecs").create_cluster(clusterName="breadth")["cluster"]["clusterArn"]
    return Chain(
        vpc_id,
        subnet_ids,
        group_id,
        lb_arn,
        tg_arns,
        listener_arn,
        "breadth-bucket",
        "breadth-role",
        cluster_arn,
    )


def _forward(weights: dict[str, int], chain: Chain) -> list[dict[str, Any]]:
    return [
        {
            "type": "forward",
            "forward": {
                "targetGroups": [
                    {"arn": chain.tg_arns[c], "weight": float(w)} for c, w in weights.items()
                ]
            },
        }
    ]


# token -> inputs built from the chain. Numbers are floats, as the SDK sends them.
CASES: dict[str, Callable[[Chain], dict[str, Any]]] = {
    "aws:ec2/internetGateway:InternetGateway": lambda c: {"vpcId": c.vpc_id, "tags": {"a": "b"}},
    "aws:ec2/eip:Eip": lambda c: {"domain": "vpc", "tags": {"Name": "ip"}},
    "aws:ec2/natGateway:NatGateway": lambda c: {"subnetId": c.subnet_ids[0]},
    "aws:ec2/routeTable:RouteTable": lambda c: {"vpcId": c.vpc_id, "tags": {"Name": "rt"}},
    "aws:ec2/routeTableAssociation:RouteTableAssociation": lambda c: {
        "subnetId": c.subnet_ids[1],
        "routeTableId": _route_table(c),
    },
    "aws:ec2/securityGroupRule:SecurityGroupRule": lambda c: {
        "type": "ingress",
        "securityGroupId": c.group_id,
        "protocol": "tcp",
        "fromPort": 443.0,
        "toPort": 443.0,
        "cidrBlocks": ["10.0.0.0/8"],
    },
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": lambda c: {
        "securityGroupId": c.group_id,
        "ipProtocol": "tcp",
        "fromPort": 8080.0,
        "toPort": 8080.0,
        "cidrIpv4": "10.1.0.0/16",
        "description": "app",
    },
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": lambda c: {
        "securityGroupId": c.group_id,
        "ipProtocol": "tcp",
        "fromPort": 5432.0,
        "toPort": 5432.0,
        "cidrIpv4": "10.2.0.0/16",
    },
    "aws:ec2/launchTemplate:LaunchTemplate": lambda c: {
        "namePrefix": "web-",
        "imageId": "ami-12c6146b",
        "instanceType": "t3.micro",
        "vpcSecurityGroupIds": [c.group_id],
    },
    "aws:lb/listenerRule:ListenerRule": lambda c: {
        "listenerArn": c.listener_arn,
        "priority": 10.0,
        "actions": _forward({"blue": 100, "green": 0}, c),
        "conditions": [{"pathPattern": {"values": ["/app/*"]}}],
    },
    "aws:iam/role:Role": lambda c: {"assumeRolePolicy": ROLE_TRUST, "tags": {"t": "1"}},
    "aws:iam/policy:Policy": lambda c: {
        "policy": json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        )
    },
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": lambda c: {
        "role": c.role,
        "policyArn": "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    },
    "aws:iam/rolePolicy:RolePolicy": lambda c: {
        "role": c.role,
        "policy": json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    },
    "aws:iam/instanceProfile:InstanceProfile": lambda c: {"role": c.role},
    "aws:ecs/cluster:Cluster": lambda c: {"tags": {"team": "web"}},
    "aws:ecs/taskDefinition:TaskDefinition": lambda c: {
        "family": "breadth",
        "cpu": "256",
        "memory": "512",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": json.dumps(
            [{"name": "app", "image": "nginx", "portMappings": [{"containerPort": 80}]}]
        ),
    },
    "aws:ecr/repository:Repository": lambda c: {"imageTagMutability": "IMMUTABLE"},
    "aws:cloudwatch/logGroup:LogGroup": lambda c: {"retentionInDays": 7.0},
    "aws:s3/bucketPolicy:BucketPolicy": lambda c: {
        "bucket": c.bucket,
        "policy": json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{c.bucket}/*",
                    }
                ],
            }
        ),
    },
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": lambda c: {
        "bucket": c.bucket,
        "blockPublicAcls": True,
        "restrictPublicBuckets": True,
    },
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        lambda c: {
            "bucket": c.bucket,
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}],
        }
    ),
    "aws:s3/bucketWebsiteConfiguration:BucketWebsiteConfiguration": lambda c: {
        "bucket": c.bucket,
        "indexDocument": {"suffix": "index.html"},
        "errorDocument": {"key": "404.html"},
    },
    "aws:s3/bucketObject:BucketObject": lambda c: {
        "bucket": c.bucket,
        "key": "hello.txt",
        "content": "hello",
        "contentType": "text/plain",
    },
    "aws:acm/certificate:Certificate": lambda c: {
        "domainName": "app.example.com",
        "validationMethod": "DNS",
    },
    "aws:route53/healthCheck:HealthCheck": lambda c: {
        "type": "HTTP",
        "fqdn": "app.example.com",
        "port": 80.0,
        "resourcePath": "/health",
        "failureThreshold": 3.0,
        "requestInterval": 30.0,
    },
    "aws:sns/topic:Topic": lambda c: {"displayName": "alerts"},
    "aws:kms/key:Key": lambda c: {"description": "data key", "enableKeyRotation": True},
    "aws:secretsmanager/secret:Secret": lambda c: {
        "description": "db",
        "recoveryWindowInDays": 0.0,
    },
    "aws:ssm/parameter:Parameter": lambda c: {"type": "String", "value": "v1"},
    "aws:sqs/queue:Queue": lambda c: {"visibilityTimeoutSeconds": 45.0},
    "aws:dynamodb/table:Table": lambda c: {
        "attributes": [{"name": "Id", "type": "S"}],
        "hashKey": "Id",
        "billingMode": "PAY_PER_REQUEST",
    },
    "aws:rds/clusterParameterGroup:ClusterParameterGroup": lambda c: {
        "family": "aurora-postgresql15",
        "parameters": [{"name": "log_min_duration_statement", "value": "100"}],
    },
    "aws:rds/cluster:Cluster": lambda c: {
        "engine": "aurora-postgresql",
        "databaseName": "app",
        "masterUsername": "app",
        "masterPassword": "not-in-read-1",
        "skipFinalSnapshot": True,
    },
    "aws:lambda/function:Function": lambda c: {
        "role": ROLE_ARN,
        "runtime": "python3.12",
        "handler": "index.handler",
        "code": _archive({"index.py": "def handler(event, context):\n    return 1\n"}),
    },
    "aws:sfn/stateMachine:StateMachine": lambda c: {
        "roleArn": ROLE_ARN,
        "definition": json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}),
    },
    "aws:kinesis/stream:Stream": lambda c: {"shardCount": 1.0},
    "aws:ec2/keyPair:KeyPair": lambda c: {
        "publicKey": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3F6tyPEFEzV0LX3X8BsXdMsQz1x2cEikKDEY0aIj41qgxMCP/iteneqXSIFZBp5vizPvaoIR3Um9xK7PGoW8giupGn+EPuxIA4cDM4vzOqOkiMPhz5XK0whEjkVzTo4+S0puvDZuwIsdiW9mxhJc7tgBNL0cYlWSYVkz4G/fslNfRPW5mYAM49f4fhtxPb5ok4Q2Lg9dPKVHO/Bgeu5woMc7RY0p1ej6D4CKFE6lymSDJpW0YHX/wqE9+cfEauh7xZcG0q9t2ta6F6fmX0agvpFyZo8aFbXeUBr7osSCJNgvavWbM/06niWrOvYX2xwWdhXmXSrbX8ZbabVohBK41 test",
        "tags": {"Name": "deploy"},
    },
    "aws:cloudwatch/eventBus:EventBus": lambda c: {},
    "aws:ec2/launchConfiguration:LaunchConfiguration": lambda c: {
        "imageId": "ami-12c6146b",
        "instanceType": "t2.micro",
        "securityGroups": [c.group_id],
    },
    "aws:cloudwatch/eventRule:EventRule": lambda c: {
        "scheduleExpression": "rate(5 minutes)",
    },
}


def _archive(files: dict[str, str]) -> dict[str, Any]:
    """An AssetArchive of text files as the engine keeps it (Pulumi's wire object)."""
    from rollback.engine.embedded.assets import ARCHIVE_SIG, ASSET_SIG, SIG_KEY

    return {
        SIG_KEY: ARCHIVE_SIG,
        "assets": {name: {SIG_KEY: ASSET_SIG, "text": text} for name, text in files.items()},
    }


def _route_table(chain: Chain) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    table: str = ec2.create_route_table(VpcId=chain.vpc_id)["RouteTable"]["RouteTableId"]
    return table


@pytest.mark.parametrize("token", sorted(CASES))
def test_lifecycle_create_read_delete(cloud: Cloud, chain: Chain, token: str) -> None:
    applier = cloud.applier(token)
    inputs = CASES[token](chain)

    id, outputs = applier.create(token.rsplit(":", 1)[-1].lower(), inputs)
    read = applier.read(id, {**inputs, **{k: outputs[k] for k in ("name",) if k in outputs}})

    assert read is not None
    assert drifted(inputs, read) == ()
    assert drifted(inputs, outputs) == ()
    applier.delete(id, {**inputs, **outputs})
    assert applier.read(id, {**inputs, **outputs}) is None
    applier.delete(id, {**inputs, **outputs})  # already gone is fine


def test_listener_rule_weights_change_in_place_and_drift_shows(cloud: Cloud, chain: Chain) -> None:
    rule = cloud.applier("aws:lb/listenerRule:ListenerRule")
    olds = {
        "listenerArn": chain.listener_arn,
        "priority": 20.0,
        "actions": _forward({"blue": 100, "green": 0}, chain),
        "conditions": [{"hostHeader": {"values": ["app.example.com"]}}],
    }
    arn, _ = rule.create("app", olds)
    news = {**olds, "actions": _forward({"blue": 0, "green": 100}, chain)}

    rule.update(arn, olds, news)

    live = cloud.client("elbv2").describe_rules(RuleArns=[arn])["Rules"][0]
    weights = {
        g["TargetGroupArn"]: g["Weight"]
        for g in live["Actions"][0]["ForwardConfig"]["TargetGroups"]
    }
    assert weights == {chain.tg_arns["blue"]: 0, chain.tg_arns["green"]: 100}
    cloud.client("elbv2").modify_rule(
        RuleArn=arn,
        Actions=[{"Type": "forward", "TargetGroupArn": chain.tg_arns["blue"]}],
    )
    assert drifted(news, rule.read(arn, news) or {}) == ("actions",)
    rule.delete(arn, news)


def test_bucket_acl_reads_as_the_canned_acl_and_delete_leaves_it(
    cloud: Cloud, chain: Chain
) -> None:
    acl = cloud.applier("aws:s3/bucketAcl:BucketAcl")
    inputs = {"bucket": chain.bucket, "acl": "public-read"}
    id, outputs = acl.create("acl", inputs)

    assert id == f"{chain.bucket},public-read"
    assert drifted(inputs, outputs) == ()
    cloud.client("s3").put_bucket_acl(Bucket=chain.bucket, ACL="private")
    assert drifted(inputs, acl.read(id, inputs) or {}) == ("acl",)
    # As the provider: deleting the resource leaves the bucket's ACL alone.
    acl.delete(id, inputs)
    grants = cloud.client("s3").get_bucket_acl(Bucket=chain.bucket)["Grants"]
    assert all(g["Grantee"].get("Type") != "Group" for g in grants)


def test_route_table_routes_follow_the_program(cloud: Cloud, chain: Chain) -> None:
    ec2 = cloud.client("ec2")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=chain.vpc_id)
    table = cloud.applier("aws:ec2/routeTable:RouteTable")
    olds = {"vpcId": chain.vpc_id, "routes": [{"cidrBlock": "0.0.0.0/0", "gatewayId": igw}]}
    id, _ = table.create("rt", olds)
    news = {**olds, "routes": [{"cidrBlock": "10.50.0.0/16", "gatewayId": igw}]}

    outputs = table.update(id, olds, news)

    live = ec2.describe_route_tables(RouteTableIds=[id])["RouteTables"][0]["Routes"]
    assert sorted(r["DestinationCidrBlock"] for r in live if r.get("GatewayId") == igw) == [
        "10.50.0.0/16"
    ]
    assert drifted(news, outputs) == ()
    ec2.delete_route(RouteTableId=id, DestinationCidrBlock="10.50.0.0/16")
    assert drifted(news, table.read(id, news) or {}) == ("routes",)
    table.delete(id, news)


def test_ecs_service_behind_a_target_group_scales_in_place(cloud: Cloud, chain: Chain) -> None:
    definition = cloud.applier("aws:ecs/taskDefinition:TaskDefinition")
    task_arn, _ = definition.create("task", CASES["aws:ecs/taskDefinition:TaskDefinition"](chain))
    service = cloud.applier("aws:ecs/service:Service")
    olds = {
        "cluster": chain.cluster_arn,
        "taskDefinition": task_arn,
        "desiredCount": 2.0,
        "launchType": "FARGATE",
        "networkConfiguration": {"subnets": chain.subnet_ids, "assignPublicIp": False},
        "loadBalancers": [
            {
                "targetGroupArn": chain.tg_arns["green"],
                "containerName": "app",
                "containerPort": 80.0,
            }
        ],
    }
    arn, outputs = service.create("svc", olds)
    assert drifted(olds, outputs) == ()

    service.update(arn, {**olds, **outputs}, {**olds, "desiredCount": 4.0})

    live = cloud.client("ecs").describe_services(cluster=chain.cluster_arn, services=[arn])[
        "services"
    ][0]
    assert live["desiredCount"] == 4
    assert live["loadBalancers"][0]["targetGroupArn"] == chain.tg_arns["green"]
    service.delete(arn, {**olds, **outputs})
    assert service.read(arn, {**olds, **outputs}) is None


def test_flags_a_program_sets_reach_the_cloud_and_are_not_just_echoed(
    cloud: Cloud, chain: Chain
) -> None:
    # Both were once read back from the inputs without ever being sent to AWS.
    ec2 = cloud.client("ec2")
    subnets = cloud.applier("aws:ec2/subnet:Subnet")
    olds = {"vpcId": chain.vpc_id, "cidrBlock": "10.9.20.0/24", "assignIpv6AddressOnCreation": True}
    subnet_id, outputs = subnets.create("flags", olds)
    live = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    assert live["AssignIpv6AddressOnCreation"] is True and drifted(olds, outputs) == ()
    news = {**olds, "assignIpv6AddressOnCreation": False, "mapPublicIpOnLaunch": True}
    subnets.update(subnet_id, olds, news)
    live = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    assert (live["AssignIpv6AddressOnCreation"], live["MapPublicIpOnLaunch"]) == (False, True)

    template_id, _ = cloud.applier("aws:ec2/launchTemplate:LaunchTemplate").create(
        "flags", CASES["aws:ec2/launchTemplate:LaunchTemplate"](chain)
    )
    groups = cloud.applier("aws:autoscaling/group:Group")
    inputs = {
        "minSize": 0.0,
        "maxSize": 1.0,
        "launchTemplate": {"id": template_id},
        "vpcZoneIdentifiers": [subnet_id],
        "protectFromScaleIn": True,
    }
    name, outputs = groups.create("flags", inputs)
    (live_group,) = cloud.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name]
    )["AutoScalingGroups"]
    assert live_group["NewInstancesProtectedFromScaleIn"] is True
    assert drifted(inputs, outputs) == ()
    groups.delete(name, outputs)
    subnets.delete(subnet_id, news)


def test_invokes_answer_from_the_cloud(cloud: Cloud, chain: Chain) -> None:
    invoke = cloud.invokes

    zones = invoke("aws:index/getAvailabilityZones:getAvailabilityZones", {})
    assert zones["names"][:2] == [f"{REGION}a", f"{REGION}b"]
    identity = invoke("aws:index/getCallerIdentity:getCallerIdentity", {})
    assert identity["accountId"] == cloud.client("sts").get_caller_identity()["Account"]
    assert invoke("aws:index/getRegion:getRegion", {})["name"] == REGION
    assert invoke("aws:index/getPartition:getPartition", {})["partition"] == "aws"
    default = invoke("aws:ec2/getVpc:getVpc", {"default": True})
    assert default["default"] is True and default["id"] != chain.vpc_id
    ours = invoke("aws:ec2/getVpc:getVpc", {"id": chain.vpc_id})
    assert ours["cidrBlock"] == "10.9.0.0/16"
    subnets = invoke(
        "aws:ec2/getSubnets:getSubnets", {"filters": [{"name": "vpc-id", "values": [chain.vpc_id]}]}
    )
    assert sorted(subnets["ids"]) == sorted(chain.subnet_ids)
    one = invoke("aws:ec2/getSubnet:getSubnet", {"id": chain.subnet_ids[0]})
    assert one["vpcId"] == chain.vpc_id
    ami = invoke(
        "aws:ec2/getAmi:getAmi",
        {
            "mostRecent": True,
            "owners": ["amazon"],
            "filters": [{"name": "name", "values": ["amzn2-ami-hvm-*"]}],
        },
    )
    image = cloud.client("ec2").describe_images(ImageIds=[ami["id"]])["Images"][0]
    assert image["Name"].startswith("amzn2-ami-hvm-")


def test_a_lookup_that_finds_nothing_says_so(cloud: Cloud) -> None:
    with pytest.raises(EngineError) as caught:
        cloud.invokes(
            "aws:ec2/getAmi:getAmi",
            {"owners": ["amazon"], "filters": [{"name": "name", "values": ["no-such-*"]}]},
        )
    assert "no matching EC2 AMI found" in caught.value.message
    with pytest.raises(EngineError):
        cloud.invokes("aws:ec2/getVpc:getVpc", {"id": "vpc-00000000"})


def test_policy_document_is_the_providers_json() -> None:
    answer = policy_document(
        {
            "statements": [
                {
                    "sid": "Read",
                    "actions": ["s3:GetObject"],
                    "resources": ["arn:aws:s3:::b/*", "arn:aws:s3:::b"],
                    "principals": [{"type": "Service", "identifiers": ["ecs-tasks.amazonaws.com"]}],
                    "conditions": [
                        {"test": "StringEquals", "variable": "aws:SourceAccount", "values": ["1"]}
                    ],
                }
            ],
            "overridePolicyDocuments": [
                json.dumps({"Statement": [{"Sid": "Extra", "Effect": "Deny", "Action": "*"}]})
            ],
        }
    )

    assert json.loads(answer["json"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Read",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": ["arn:aws:s3:::b/*", "arn:aws:s3:::b"],
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Condition": {"StringEquals": {"aws:SourceAccount": "1"}},
            },
            {"Sid": "Extra", "Effect": "Deny", "Action": "*"},
        ],
    }
    assert answer["minifiedJson"] == json.dumps(json.loads(answer["json"]), separators=(",", ":"))
    assert answer["id"] == policy_document(dict(answer))["id"]  # a stable hash of the JSON
