"""The EKS, Redshift and Glue appliers against in-process moto.

Each type goes through its lifecycle: create, read back as declared (what
drift verification compares), an in-place update checked in the cloud with
plain boto3, delete, gone on read, and a second delete that is a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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
