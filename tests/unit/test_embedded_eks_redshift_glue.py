"""The EKS, Redshift and Glue appliers against in-process moto.

Each type goes through its lifecycle: create, read back as declared (what
drift verification compares), an in-place update checked in the cloud with
plain boto3, delete, gone on read, and a second delete that is a no-op.
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
from rollback.engine.embedded.resources import ResourceType, resource_types

REGION = "us-east-1"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["eks.amazonaws.com", "ec2.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@dataclass(frozen=True)
class Cloud:
    session: boto3.Session
    types: dict[str, ResourceType]
    vpc_id: str
    subnet_ids: list[str]
    group_id: str
    role_arn: str

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def applier(self, token: str) -> ResourceType:
        return self.types[token]


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        ec2 = session.client("ec2")
        vpc_id = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        subnet_ids = [
            ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=f"10.7.{i}.0/24", AvailabilityZone=f"{REGION}{z}"
            )["Subnet"]["SubnetId"]
            for i, z in enumerate("ab")
        ]
        group_id = ec2.create_security_group(GroupName="g", Description="d", VpcId=vpc_id)[
            "GroupId"
        ]
        role_arn = session.client("iam").create_role(
            RoleName="cluster-role", AssumeRolePolicyDocument=TRUST
        )["Role"]["Arn"]
        types = resource_types(Clients(session=session))
        yield Cloud(session, types, vpc_id, subnet_ids, group_id, role_arn)


def _lifecycle_ends(applier: ResourceType, id: str, inputs: dict[str, Any]) -> None:
    applier.delete(id, inputs)
    assert applier.read(id, inputs) is None
    applier.delete(id, inputs)  # already gone is fine


def test_eks_cluster_and_node_group_lifecycle(cloud: Cloud) -> None:
    clusters = cloud.applier("aws:eks/cluster:Cluster")
    groups = cloud.applier("aws:eks/nodeGroup:NodeGroup")
    cluster_inputs: dict[str, Any] = {
        "roleArn": cloud.role_arn,
        "vpcConfig": {"subnetIds": cloud.subnet_ids, "securityGroupIds": [cloud.group_id]},
        "tags": {"team": "k8s"},
    }

    name, outputs = clusters.create("cluster", cluster_inputs)
    cluster_inputs["name"] = name

    eks = cloud.client("eks")
    live = eks.describe_cluster(name=name)["cluster"]
    assert name.startswith("cluster-") and live["status"] == "ACTIVE"
    assert outputs["endpoint"] == live["endpoint"]
    assert outputs["certificateAuthority"] == {"data": live["certificateAuthority"]["data"]}
    # The provider's state holds the whole VPC block: defaults and the VPC id.
    assert outputs["vpcConfig"]["vpcId"] == cloud.vpc_id
    assert outputs["vpcConfig"]["endpointPublicAccess"] is True
    read = clusters.read(name, cluster_inputs)
    assert read is not None and drifted(cluster_inputs, read) == ()

    group_inputs: dict[str, Any] = {
        "clusterName": name,
        "nodeGroupName": "workers",
        "nodeRoleArn": cloud.role_arn,
        "subnetIds": cloud.subnet_ids,
        "scalingConfig": {"desiredSize": 2.0, "maxSize": 3.0, "minSize": 1.0},
        "tags": {"Name": "workers"},
    }
    group_id, group_outputs = groups.create("workers", group_inputs)
    assert group_id == f"{name}:workers"
    assert group_outputs["resources"][0]["autoscalingGroups"]
    read = groups.read(group_id, group_inputs)
    assert read is not None and drifted(group_inputs, read) == ()

    scaled = {**group_inputs, "scalingConfig": {"desiredSize": 3.0, "maxSize": 3.0, "minSize": 1.0}}
    groups.update(group_id, group_inputs, scaled)
    live_group = eks.describe_nodegroup(clusterName=name, nodegroupName="workers")["nodegroup"]
    assert live_group["scalingConfig"]["desiredSize"] == 3

    retagged = {**cluster_inputs, "tags": {"team": "platform"}}
    clusters.update(name, cluster_inputs, retagged)
    assert eks.describe_cluster(name=name)["cluster"]["tags"] == {"team": "platform"}

    _lifecycle_ends(groups, group_id, scaled)
    _lifecycle_ends(clusters, name, retagged)
    assert eks.list_clusters()["clusters"] == []


def test_vpc_endpoint_policy_changes_in_place(cloud: Cloud) -> None:
    endpoints = cloud.applier("aws:ec2/vpcEndpoint:VpcEndpoint")
    ec2 = cloud.client("ec2")
    table = ec2.create_route_table(VpcId=cloud.vpc_id)["RouteTable"]["RouteTableId"]
    inputs: dict[str, Any] = {
        "vpcId": cloud.vpc_id,
        "serviceName": f"com.amazonaws.{REGION}.s3",
        "routeTableIds": [table],
        "tags": {"Name": "s3"},
    }

    id, outputs = endpoints.create("s3", inputs)

    assert id.startswith("vpce-") and outputs["vpcEndpointType"] == "Gateway"
    assert outputs["prefixListId"].startswith("pl-")
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    assert outputs["prefixListId"] in [r.get("DestinationPrefixListId") for r in routes]
    read = endpoints.read(id, inputs)
    assert read is not None and drifted(inputs, read) == ()
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}],
        }
    )
    restricted = {**inputs, "policy": policy}
    updated = endpoints.update(id, inputs, restricted)
    (live,) = ec2.describe_vpc_endpoints(VpcEndpointIds=[id])["VpcEndpoints"]
    assert json.loads(live["PolicyDocument"]) == json.loads(policy)
    assert updated["policy"] == policy  # the same document reads back as declared
    _lifecycle_ends(endpoints, id, restricted)


def test_redshift_cluster_keeps_the_password_out_of_read_and_refuses_a_delete_without_snapshot(
    cloud: Cloud,
) -> None:
    from rollback.errors import EngineError

    groups = cloud.applier("aws:redshift/subnetGroup:SubnetGroup")
    clusters = cloud.applier("aws:redshift/cluster:Cluster")
    group_inputs: dict[str, Any] = {"subnetIds": cloud.subnet_ids}
    group, group_outputs = groups.create("warehouse-subnets", group_inputs)
    assert group.startswith("warehouse-subnets-")  # auto-named
    assert group_outputs["description"] == "Managed by Pulumi"
    inputs: dict[str, Any] = {
        "clusterIdentifier": "warehouse",
        "nodeType": "ra3.xlplus",
        "clusterType": "single-node",
        "databaseName": "dev",
        "masterUsername": "admin",
        "masterPassword": "Not-in-read-1",
        "clusterSubnetGroupName": group,
        "vpcSecurityGroupIds": [cloud.group_id],
        "iamRoles": [cloud.role_arn],
    }

    id, outputs = clusters.create("warehouse", inputs)

    live = cloud.client("redshift").describe_clusters(ClusterIdentifier=id)["Clusters"][0]
    assert outputs["endpoint"] == f"{live['Endpoint']['Address']}:{live['Endpoint']['Port']}"
    assert outputs["masterPassword"] == "Not-in-read-1"
    read = clusters.read(id, inputs)
    assert read is not None and "masterPassword" not in read
    assert drifted(inputs, read) == ()  # the password is not compared: AWS never returns it
    clusters.update(id, inputs, {**inputs, "tags": {"team": "data"}})
    tags = cloud.client("redshift").describe_clusters(ClusterIdentifier=id)["Clusters"][0]["Tags"]
    assert tags == [{"Key": "team", "Value": "data"}]
    with pytest.raises(EngineError, match="finalSnapshotIdentifier"):
        clusters.delete(id, inputs)
    assert clusters.read(id, inputs) is not None  # refused before any change
    _lifecycle_ends(clusters, id, {**inputs, "skipFinalSnapshot": True})
    _lifecycle_ends(groups, group, {**group_inputs, "name": group})


def test_glue_database_crawler_job_and_trigger_lifecycle(cloud: Cloud) -> None:
    databases = cloud.applier("aws:glue/catalogDatabase:CatalogDatabase")
    crawlers = cloud.applier("aws:glue/crawler:Crawler")
    jobs = cloud.applier("aws:glue/job:Job")
    triggers = cloud.applier("aws:glue/trigger:Trigger")
    glue = cloud.client("glue")

    database_inputs: dict[str, Any] = {"name": "events_db"}
    database, _ = databases.create("events", database_inputs)
    assert database == "123456789012:events_db"
    described = {**database_inputs, "description": "raw events"}
    databases.update(database, database_inputs, described)
    assert glue.get_database(Name="events_db")["Database"]["Description"] == "raw events"

    crawler_inputs: dict[str, Any] = {
        "name": "events-crawler",
        "databaseName": "events_db",
        "role": cloud.role_arn,
        "schedule": "cron(0/15 * * * ? *)",
        "s3Targets": [{"path": "s3://events"}],
    }
    crawler, _ = crawlers.create("crawler", crawler_inputs)
    read = crawlers.read(crawler, crawler_inputs)
    assert read is not None and drifted(crawler_inputs, read) == ()

    job_inputs: dict[str, Any] = {
        "name": "load",
        "roleArn": cloud.role_arn,
        "glueVersion": "3.0",
        "numberOfWorkers": 2.0,
        "workerType": "G.1X",
        "command": {"scriptLocation": "s3://scripts/load.py", "pythonVersion": "3"},
        "defaultArguments": {"--TempDir": "s3://scripts/tmp"},
    }
    job, job_outputs = jobs.create("load", job_inputs)
    assert job_outputs["command"]["name"] == "glueetl"  # the provider's default command
    read = jobs.read(job, job_inputs)
    assert read is not None and drifted(job_inputs, read) == ()
    tagged = {**job_inputs, "tags": {"team": "data"}}
    jobs.update(job, job_inputs, tagged)
    assert glue.get_tags(ResourceArn=job_outputs["arn"])["Tags"] == {"team": "data"}

    trigger_inputs: dict[str, Any] = {
        "name": "every-15",
        "type": "SCHEDULED",
        "schedule": "cron(0/15 * * * ? *)",
        "actions": [{"jobName": "load"}],
    }
    trigger, trigger_outputs = triggers.create("trigger", trigger_inputs)
    assert trigger_outputs["enabled"] is True
    assert glue.get_trigger(Name="every-15")["Trigger"]["State"] == "ACTIVATED"
    read = triggers.read(trigger, trigger_inputs)
    assert read is not None and drifted(trigger_inputs, read) == ()

    _lifecycle_ends(triggers, trigger, trigger_inputs)
    _lifecycle_ends(jobs, job, tagged)
    _lifecycle_ends(crawlers, crawler, crawler_inputs)
    _lifecycle_ends(databases, database, described)


def test_glue_connection_and_job_change_in_place_and_delete_on_the_embedded_cloud(
    cloud: Cloud,
) -> None:
    from rollback import gluefidelity

    gluefidelity.install()  # moto lacks DeleteConnection and the Glue updates
    connections = cloud.applier("aws:glue/connection:Connection")
    jobs = cloud.applier("aws:glue/job:Job")
    triggers = cloud.applier("aws:glue/trigger:Trigger")
    glue = cloud.client("glue")
    inputs: dict[str, Any] = {
        "name": "warehouse",
        "connectionProperties": {
            "JDBC_CONNECTION_URL": "jdbc:redshift://warehouse:5439/dev",
            "USERNAME": "admin",
            "PASSWORD": "Secret-1",
        },
        "physicalConnectionRequirements": {
            "subnetId": cloud.subnet_ids[0],
            "securityGroupIdLists": [cloud.group_id],
            "availabilityZone": f"{REGION}a",
        },
    }

    id, outputs = connections.create("warehouse", inputs)

    assert id == "123456789012:warehouse" and outputs["connectionType"] == "JDBC"
    read = connections.read(id, inputs)
    assert read is not None and drifted(inputs, read) == ()
    rotated = {
        **inputs,
        "connectionProperties": {**inputs["connectionProperties"], "PASSWORD": "Secret-2"},
    }
    connections.update(id, inputs, rotated)
    live = glue.get_connection(Name="warehouse")["Connection"]["ConnectionProperties"]
    assert live["PASSWORD"] == "Secret-2"

    job_inputs: dict[str, Any] = {
        "name": "load",
        "roleArn": cloud.role_arn,
        "command": {"scriptLocation": "s3://scripts/v1.py"},
        "connections": ["warehouse"],
    }
    job, _ = jobs.create("load", job_inputs)
    moved = {**job_inputs, "command": {"scriptLocation": "s3://scripts/v2.py"}}
    jobs.update(job, job_inputs, moved)
    command = glue.get_job(JobName="load")["Job"]["Command"]
    assert command == {"Name": "glueetl", "ScriptLocation": "s3://scripts/v2.py"}

    trigger_inputs: dict[str, Any] = {
        "name": "nightly",
        "type": "SCHEDULED",
        "schedule": "cron(0 1 * * ? *)",
        "actions": [{"jobName": "load"}],
    }
    trigger, _ = triggers.create("nightly", trigger_inputs)
    later = {**trigger_inputs, "schedule": "cron(0 3 * * ? *)", "enabled": False}
    updated = triggers.update(trigger, trigger_inputs, later)
    live_trigger = glue.get_trigger(Name="nightly")["Trigger"]
    assert live_trigger["Schedule"] == "cron(0 3 * * ? *)"
    assert live_trigger["State"] == "DEACTIVATED" and updated["enabled"] is False

    _lifecycle_ends(triggers, trigger, later)
    _lifecycle_ends(jobs, job, moved)
    _lifecycle_ends(connections, id, rotated)


@pytest.mark.parametrize(
    ("token", "make"),
    [
        (
            "aws:glue/job:Job",
            lambda c: c.client("glue").create_job(
                Name="taken", Role=c.role_arn, Command={"Name": "glueetl"}
            ),
        ),
        (
            "aws:glue/trigger:Trigger",
            lambda c: c.client("glue").create_trigger(
                Name="taken", Type="ON_DEMAND", Actions=[{"JobName": "x"}]
            ),
        ),
        (
            "aws:redshift/subnetGroup:SubnetGroup",
            lambda c: c.client("redshift").create_cluster_subnet_group(
                ClusterSubnetGroupName="taken", Description="d", SubnetIds=c.subnet_ids
            ),
        ),
    ],
)
def test_a_name_moto_would_overwrite_is_refused_before_the_create(
    cloud: Cloud, token: str, make: Callable[[Cloud], Any]
) -> None:
    """moto's CreateJob, CreateTrigger and CreateClusterSubnetGroup replace an existing one."""
    from rollback.engine.embedded.claims import ensure_free
    from rollback.errors import EngineError

    make(cloud)
    urn = f"urn:pulumi:dev::p::{token}::mine"
    with pytest.raises(EngineError, match="'taken', which already exists outside this stack"):
        ensure_free(token, urn, {"name": "taken"}, cloud.applier(token))
    ensure_free(token, urn, {"name": "free"}, cloud.applier(token))


def test_two_stacks_of_the_eks_program_share_one_cloud_and_destroy_only_their_own(
    tmp_path: Any,
) -> None:
    """aws-py-eks twice (stacks dev and prod): destroying dev leaves prod's cluster whole."""
    from pathlib import Path

    from rollback.engine import StackConfig
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.store.local import LocalStore

    program = Path(__file__).parent.parent / "programs" / "public" / "aws-py-eks"
    config = StackConfig(values={"aws:region": REGION})
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        session = boto3.Session(region_name=REGION)
        engine = EmbeddedEngine(LocalStore(tmp_path), Clients(session), "aws-py-eks")
        dev = engine.up(program, "dev", config)
        prod = engine.up(program, "prod", config)
        eks = session.client("eks")
        names = {dev.outputs()["cluster-name"], prod.outputs()["cluster-name"]}
        assert sorted(eks.list_clusters()["clusters"]) == sorted(names) and len(names) == 2

        engine.destroy("dev")

        assert eks.list_clusters()["clusters"] == [prod.outputs()["cluster-name"]]
        assert eks.list_nodegroups(clusterName=prod.outputs()["cluster-name"])["nodegroups"] == [
            "pulumi-eks-nodegroup"
        ]
        live = engine.read_live(prod)
        assert all(outputs is not None for outputs in live.values()), live
