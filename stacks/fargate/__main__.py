"""The second reference stack: ECS Fargate blue/green behind a public ALB, with Aurora.

Two colours (blue, green), each an ECS Fargate service with its own task
definition (image tag = the colour's version), log group and target group.
A public (internet-facing) ALB in a VPC with an internet gateway; one
listener rule forwards `/*` to both target groups by weight, and the
listener's default action carries the same weights: the toolkit moves both. An Aurora
PostgreSQL cluster with one instance, reachable only from the services. A
weighted Route53 record per colour, a 5xx alarm per colour. It exports the
same `rollback` output as stacks/webapp, built with the topology helper.

Config (namespace `fargate`): liveColor, blueVersion, greenVersion (required),
blueWeight/greenWeight (default 100/0 following the live colour), domain,
image (repository, default `public.ecr.aws/nginx/nginx`), dbUsername,
dbPassword (secret, required), healthUrlBlue/healthUrlGreen.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from rollback.pulumi_topology import rollback_topology

COLORS = ("blue", "green")

config = pulumi.Config()
stack = pulumi.get_stack()
project = pulumi.get_project()
region = aws.config.region or "us-east-1"
live_color = config.get("liveColor") or "blue"
versions = {color: config.require(f"{color}Version") for color in COLORS}
weights = {
    color: config.get_int(f"{color}Weight")
    if config.get(f"{color}Weight") is not None
    else (100 if color == live_color else 0)
    for color in COLORS
}
if sum(weights.values()) != 100:
    raise ValueError(f"fargate:blueWeight + fargate:greenWeight must be 100, not {weights}.")
domain = config.get("domain") or "fargate.internal"
image = config.get("image") or "public.ecr.aws/nginx/nginx"
tags = {"Project": project, "Stack": stack, "ManagedBy": "rollback-fargate"}


def name(suffix: str) -> str:
    return f"{project}-{stack}-{suffix}"


# -- network: public subnets behind an internet gateway ------------------------
vpc = aws.ec2.Vpc(
    "vpc",
    cidr_block="10.30.0.0/16",
    enable_dns_hostnames=True,
    enable_dns_support=True,
    tags={**tags, "Name": name("vpc")},
)
gateway = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags=tags)
public = aws.ec2.RouteTable(
    "public",
    vpc_id=vpc.id,
    routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
    tags=tags,
)
subnets = []
for index, zone in enumerate("ab"):
    subnet = aws.ec2.Subnet(
        f"public-{zone}",
        vpc_id=vpc.id,
        cidr_block=f"10.30.{index}.0/24",
        availability_zone=f"{region}{zone}",
        map_public_ip_on_launch=True,
        tags={**tags, "Name": name(f"public-{zone}")},
    )
    aws.ec2.RouteTableAssociation(f"public-{zone}", subnet_id=subnet.id, route_table_id=public.id)
    subnets.append(subnet)
subnet_ids = [s.id for s in subnets]

# -- security groups: ALB from anywhere, services from the ALB, DB from services
alb_group = aws.ec2.SecurityGroup(
    "alb-sg",
    vpc_id=vpc.id,
    description="Public HTTP to the load balancer",
    ingress=[{"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"]}],
    egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
    tags=tags,
)
app_group = aws.ec2.SecurityGroup(
    "app-sg", vpc_id=vpc.id, description="The colours' tasks", tags=tags
)
aws.vpc.SecurityGroupIngressRule(
    "app-from-alb",
    security_group_id=app_group.id,
    referenced_security_group_id=alb_group.id,
    ip_protocol="tcp",
    from_port=80,
    to_port=80,
    description="HTTP from the load balancer",
)
aws.vpc.SecurityGroupEgressRule(
    "app-out", security_group_id=app_group.id, ip_protocol="-1", cidr_ipv4="0.0.0.0/0"
)
db_group = aws.ec2.SecurityGroup("db-sg", vpc_id=vpc.id, description="Aurora", tags=tags)
aws.ec2.SecurityGroupRule(
    "db-from-app",
    type="ingress",
    security_group_id=db_group.id,
    source_security_group_id=app_group.id,
    protocol="tcp",
    from_port=5432,
    to_port=5432,
)

# -- load balancer: default 404, one weighted rule ------------------------------
alb = aws.lb.LoadBalancer(
    "alb",
    name=name("alb")[:32],
    load_balancer_type="application",
    internal=False,
    subnets=subnet_ids,
    security_groups=[alb_group.id],
    tags=tags,
)
target_groups = {
    color: aws.lb.TargetGroup(
        f"tg-{color}",
        name=name(color)[:32],
        port=80,
        protocol="HTTP",
        target_type="ip",
        vpc_id=vpc.id,
        health_check={"path": "/health", "matcher": "200"},
        # ip targets have no instance to tag: the target group says what its colour runs.
        tags={**tags, "Color": color, "AppVersion": versions[color]},
    )
    for color in COLORS
}
listener = aws.lb.Listener(
    "http",
    load_balancer_arn=alb.arn,
    port=80,
    protocol="HTTP",
    # The default action forwards with the rule's weights: the toolkit's traffic
    # step moves the listener and every rule of the topology together.
    default_actions=[
        {
            "type": "forward",
            "forward": {
                "target_groups": [
                    {"arn": target_groups[c].arn, "weight": weights[c]} for c in COLORS
                ]
            },
        }
    ],
    tags=tags,
)
app_rule = aws.lb.ListenerRule(
    "app",
    listener_arn=listener.arn,
    priority=10,
    conditions=[{"path_pattern": {"values": ["/*"]}}],
    actions=[
        {
            "type": "forward",
            "forward": {
                "target_groups": [
                    {"arn": target_groups[c].arn, "weight": weights[c]} for c in COLORS
                ]
            },
        }
    ],
    tags=tags,
)

# -- IAM and logs ---------------------------------------------------------------
trust = json.dumps(
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
execution_role = aws.iam.Role("execution-role", assume_role_policy=trust, tags=tags)
aws.iam.RolePolicyAttachment(
    "execution-policy",
    role=execution_role.name,
    policy_arn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
)
task_role = aws.iam.Role("task-role", assume_role_policy=trust, tags=tags)
logs = {
    color: aws.cloudwatch.LogGroup(
        f"logs-{color}", name=f"/ecs/{name(color)}", retention_in_days=14, tags=tags
    )
    for color in COLORS
}

# -- Aurora PostgreSQL ------------------------------------------------------------
db_subnets = aws.rds.SubnetGroup("db-subnets", name=name("db"), subnet_ids=subnet_ids, tags=tags)
cluster = aws.rds.Cluster(
    "db",
    cluster_identifier=name("db"),
    engine="aurora-postgresql",
    engine_version="15.4",
    database_name="app",
    master_username=config.get("dbUsername") or "app",
    master_password=config.require_secret("dbPassword"),
    db_subnet_group_name=db_subnets.name,
    vpc_security_group_ids=[db_group.id],
    skip_final_snapshot=True,
    tags=tags,
)
aws.rds.ClusterInstance(
    "db-1",
    identifier=name("db-1"),
    cluster_identifier=cluster.cluster_identifier,
    instance_class="db.t4g.medium",
    engine="aurora-postgresql",
    db_subnet_group_name=db_subnets.name,
    tags=tags,
)

# -- the colours: one Fargate service each ----------------------------------------
ecs_cluster = aws.ecs.Cluster("cluster", name=name("cluster"), tags=tags)
for color in COLORS:
    definition = aws.ecs.TaskDefinition(
        f"task-{color}",
        family=name(color),
        cpu="256",
        memory="512",
        network_mode="awsvpc",
        requires_compatibilities=["FARGATE"],
        execution_role_arn=execution_role.arn,
        task_role_arn=task_role.arn,
        container_definitions=pulumi.Output.json_dumps(
            [
                {
                    "name": "app",
                    "image": f"{image}:{versions[color]}",
                    "essential": True,
                    "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
                    "environment": [
                        {"name": "APP_VERSION", "value": versions[color]},
                        {"name": "DB_HOST", "value": cluster.endpoint},
                    ],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": logs[color].name,
                            "awslogs-region": region,
                            "awslogs-stream-prefix": color,
                        },
                    },
                }
            ]
        ),
        tags={**tags, "Color": color},
    )
    aws.ecs.Service(
        f"service-{color}",
        name=name(color),
        cluster=ecs_cluster.arn,
        task_definition=definition.arn,
        desired_count=1,
        launch_type="FARGATE",
        network_configuration={
            "subnets": subnet_ids,
            "security_groups": [app_group.id],
            "assign_public_ip": True,
        },
        load_balancers=[
            {
                "target_group_arn": target_groups[color].arn,
                "container_name": "app",
                "container_port": 80,
            }
        ],
        tags={**tags, "Color": color},
        opts=pulumi.ResourceOptions(depends_on=[app_rule]),
    )

# -- DNS and alarms -----------------------------------------------------------------
zone = aws.route53.Zone("zone", name=domain, tags=tags)
record_name = f"app.{domain}"
for color in COLORS:
    aws.route53.Record(
        f"app-{color}",
        zone_id=zone.zone_id,
        name=record_name,
        type="CNAME",
        ttl=60,
        records=[alb.dns_name],
        set_identifier=color,
        weighted_routing_policies=[{"weight": weights[color]}],
    )
alarms = {
    color: aws.cloudwatch.MetricAlarm(
        f"alarm-{color}-5xx",
        name=name(f"{color}-5xx"),
        namespace="AWS/ApplicationELB",
        metric_name="HTTPCode_Target_5XX_Count",
        statistic="Sum",
        period=60,
        evaluation_periods=1,
        threshold=5,
        comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        dimensions={
            "TargetGroup": target_groups[color].arn_suffix,
            "LoadBalancer": alb.arn_suffix,
        },
        tags={**tags, "Color": color},
    )
    for color in COLORS
}

default_health = alb.dns_name.apply(lambda dns: f"http://{dns}/health")
pulumi.export(
    "rollback",
    rollback_topology(
        listener_arn=listener,
        load_balancer_arn=alb,
        rule_arns=[app_rule],
        target_groups=target_groups,
        zone_id=zone,
        record_name=record_name,
        record_type="CNAME",
        db_instance_id=cluster,
        health_urls={
            color: [config.get(f"healthUrl{color.capitalize()}") or default_health]
            for color in COLORS
        },
        alarms={color: [alarms[color]] for color in COLORS},
        live_color=live_color,
        versions=versions,
    ),
)
