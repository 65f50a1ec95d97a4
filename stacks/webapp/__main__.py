"""The reference blue/green web application stack.

Two colours (blue, green) of EC2 instances behind one application load
balancer, whose listener splits traffic between the colours' target groups by
weight; two weighted Route53 records for `app.<domain>`; one PostgreSQL RDS
instance; a versioned artifact bucket; a 5xx alarm per colour.

The program uses only the resource types the embedded engine supports and no
invokes (no data sources), so it runs unchanged under the Pulumi CLI and the
embedded engine. It exports one output, `rollback`, the topology contract read
by `rollback.models.Topology.from_dict`; docs/topology.md describes it and
every config key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from rollback.pulumi_topology import rollback_topology

COLORS = ("blue", "green")
TOPOLOGY_SCHEMA = 1
DEFAULT_AMI = "ami-04681a1dbd79675a5"  # Amazon Linux 2; in moto's default AMI list
DEFAULT_DOMAIN = "example.internal"
DEFAULT_REGION = "us-east-1"
MAX_TARGET_GROUP_NAME = 32  # an AWS limit


@dataclass(frozen=True)
class WebappSettings:
    """The stack config, parsed and checked before any resource is declared."""

    project: str
    stack: str
    region: str
    live_color: str
    versions: dict[str, str]
    weights: dict[str, int]
    counts: dict[str, int]
    domain: str
    ami: str
    db_username: str
    health_urls: dict[str, str | None]
    alarm_threshold: float
    artifact_bucket: str

    @property
    def tags(self) -> dict[str, str]:
        return {"Project": self.project, "Stack": self.stack, "ManagedBy": "rollback-webapp"}

    def name(self, suffix: str) -> str:
        """A physical name that is stable per stack and readable in the AWS console."""
        return f"webapp-{self.stack}-{suffix}"


def read_settings() -> WebappSettings:
    """Read the `webapp:*` and `aws:region` config; raise pulumi.RunError on bad values."""
    config = pulumi.Config("webapp")
    region = pulumi.Config("aws").get("region") or DEFAULT_REGION
    stack = pulumi.get_stack()

    live_color = config.get("liveColor") or "blue"
    if live_color not in COLORS:
        raise pulumi.RunError(f"webapp:liveColor is {live_color!r}; set it to blue or green.")
    weights = {
        color: _int_setting(config, f"{color}Weight", 100 if color == live_color else 0)
        for color in COLORS
    }
    for color, weight in weights.items():
        if not 0 <= weight <= 100:
            raise pulumi.RunError(
                f"webapp:{color}Weight is {weight}; weights are integers from 0 to 100."
            )
    if sum(weights.values()) != 100:
        raise pulumi.RunError(
            f"webapp:blueWeight ({weights['blue']}) and webapp:greenWeight "
            f"({weights['green']}) sum to {sum(weights.values())}; they must sum to 100."
        )
    counts = {color: _int_setting(config, f"{color}Count", 1) for color in COLORS}
    for color, count in counts.items():
        if count < 0:
            raise pulumi.RunError(f"webapp:{color}Count is {count}; it cannot be negative.")

    settings = WebappSettings(
        project=pulumi.get_project(),
        stack=stack,
        region=region,
        live_color=live_color,
        versions={color: config.require(f"{color}Version") for color in COLORS},
        weights=weights,
        counts=counts,
        domain=config.get("domain") or DEFAULT_DOMAIN,
        ami=config.get("ami") or DEFAULT_AMI,
        db_username=config.get("dbUsername") or "webapp",
        health_urls={color: config.get(f"healthUrl{color.capitalize()}") for color in COLORS},
        alarm_threshold=config.get_float("alarmThreshold") or 5.0,
        artifact_bucket=config.get("artifactBucket") or f"webapp-{stack}-artifacts",
    )
    longest = settings.name("green")
    if len(longest) > MAX_TARGET_GROUP_NAME:
        raise pulumi.RunError(
            f"stack name {stack!r} is too long: target group name {longest!r} exceeds "
            f"{MAX_TARGET_GROUP_NAME} characters; use a stack name of at most "
            f"{MAX_TARGET_GROUP_NAME - len('webapp--green')} characters."
        )
    return settings


def _int_setting(config: pulumi.Config, key: str, default: int) -> int:
    try:
        value = config.get_int(key)
    except pulumi.ConfigTypeError as exc:
        raise pulumi.RunError(f"webapp:{key} must be an integer: {exc}") from exc
    return default if value is None else value


def define_stack(settings: WebappSettings) -> dict[str, Any]:
    """Declare every resource and return the `rollback` topology (a dict of Outputs)."""
    tags = settings.tags
    vpc = aws.ec2.Vpc(
        "vpc",
        cidr_block="10.20.0.0/16",
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": settings.name("vpc")},
    )
    # Two AZs named from the region, not looked up: the embedded engine has no invokes.
    subnets = [
        aws.ec2.Subnet(
            f"subnet-{zone}",
            vpc_id=vpc.id,
            cidr_block=f"10.20.{index}.0/24",
            availability_zone=f"{settings.region}{zone}",
            tags={**tags, "Name": settings.name(f"subnet-{zone}")},
        )
        for index, zone in enumerate(("a", "b"))
    ]
    subnet_ids = [subnet.id for subnet in subnets]
    security_group = aws.ec2.SecurityGroup(
        "web-sg",
        name=settings.name("web"),
        description="HTTP to the load balancer and instances",
        vpc_id=vpc.id,
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=80, to_port=80, cidr_blocks=["0.0.0.0/0"]
            )
        ],
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"]
            )
        ],
        tags=tags,
    )
    # Internal: an internet-facing ALB needs an internet gateway, a type this
    # stack (and the embedded engine) does not declare.
    load_balancer = aws.lb.LoadBalancer(
        "alb",
        name=settings.name("alb"),
        internal=True,
        load_balancer_type="application",
        subnets=subnet_ids,
        security_groups=[security_group.id],
        tags=tags,
    )

    target_groups: dict[str, aws.lb.TargetGroup] = {}
    for color in COLORS:
        target_group = aws.lb.TargetGroup(
            f"tg-{color}",
            name=settings.name(color),
            port=80,
            protocol="HTTP",
            target_type="instance",
            vpc_id=vpc.id,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                path="/health", protocol="HTTP", matcher="200", interval=15
            ),
            tags={**tags, "Color": color, "AppVersion": settings.versions[color]},
        )
        target_groups[color] = target_group
        for index in range(settings.counts[color]):
            instance = aws.ec2.Instance(
                f"web-{color}-{index}",
                ami=settings.ami,
                instance_type="t3.micro",
                subnet_id=subnet_ids[index % len(subnet_ids)],
                vpc_security_group_ids=[security_group.id],
                tags={
                    **tags,
                    "Name": settings.name(f"{color}-{index}"),
                    "Color": color,
                    "AppVersion": settings.versions[color],
                },
            )
            aws.lb.TargetGroupAttachment(
                f"web-{color}-{index}-attachment",
                target_group_arn=target_group.arn,
                target_id=instance.id,
                port=80,
            )

    listener = aws.lb.Listener(
        "http",
        load_balancer_arn=load_balancer.arn,
        port=80,
        protocol="HTTP",
        default_actions=[
            aws.lb.ListenerDefaultActionArgs(
                type="forward",
                forward=aws.lb.ListenerDefaultActionForwardArgs(
                    target_groups=[
                        aws.lb.ListenerDefaultActionForwardTargetGroupArgs(
                            arn=target_groups[color].arn, weight=settings.weights[color]
                        )
                        for color in COLORS
                    ]
                ),
            )
        ],
        tags=tags,
        # After the first deploy the weights are the rollback toolkit's (cutover,
        # rollback): no `up` of this program may move users (docs/topology.md).
        opts=pulumi.ResourceOptions(ignore_changes=["default_actions"]),
    )

    zone = aws.route53.Zone("zone", name=settings.domain, tags=tags)
    record_name = f"app.{settings.domain}"
    for color in COLORS:
        aws.route53.Record(
            f"app-{color}",
            zone_id=zone.zone_id,
            name=record_name,
            type="CNAME",
            ttl=60,
            records=[load_balancer.dns_name],
            set_identifier=color,
            weighted_routing_policies=[
                aws.route53.RecordWeightedRoutingPolicyArgs(weight=settings.weights[color])
            ],
            opts=pulumi.ResourceOptions(ignore_changes=["weighted_routing_policies"]),
        )

    db_subnet_group = aws.rds.SubnetGroup(
        "db-subnets",
        name=settings.name("db"),
        subnet_ids=subnet_ids,
        tags=tags,
    )
    database = aws.rds.Instance(
        "db",
        identifier=settings.name("db"),
        engine="postgres",
        instance_class="db.t3.micro",
        allocated_storage=20,
        db_name="webapp",
        username=settings.db_username,
        password=pulumi.Config("webapp").require_secret("dbPassword"),
        db_subnet_group_name=db_subnet_group.name,
        publicly_accessible=False,
        # The toolkit snapshots the database for every release and before every
        # restore; a fixed final-snapshot name would collide on a second teardown.
        skip_final_snapshot=True,
        apply_immediately=True,
        tags=tags,
    )

    bucket = aws.s3.Bucket("artifacts", bucket=settings.artifact_bucket, tags=tags)
    aws.s3.BucketVersioning(
        "artifacts-versioning",
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
            status="Enabled"
        ),
    )

    alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
    for color in COLORS:
        alarms[color] = aws.cloudwatch.MetricAlarm(
            f"alarm-{color}-5xx",
            name=settings.name(f"{color}-5xx"),
            alarm_description=f"5xx responses from the {color} targets",
            namespace="AWS/ApplicationELB",
            metric_name="HTTPCode_Target_5XX_Count",
            statistic="Sum",
            period=60,
            evaluation_periods=1,
            threshold=settings.alarm_threshold,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            dimensions={
                "TargetGroup": target_groups[color].arn_suffix,
                "LoadBalancer": load_balancer.arn_suffix,
            },
            tags={**tags, "Color": color},
        )

    default_health_url = load_balancer.dns_name.apply(lambda dns: f"http://{dns}/health")
    return {
        "schema": TOPOLOGY_SCHEMA,
        "listener_arn": listener.arn,
        "load_balancer_arn": load_balancer.arn,
        "rule_arns": [],
        "target_groups": {color: target_groups[color].arn for color in COLORS},
        "zone_id": zone.zone_id,
        "record_name": record_name,
        "record_type": "CNAME",
        "set_identifiers": {color: color for color in COLORS},
        "db_instance_id": database.identifier,
        "health_urls": {
            color: [settings.health_urls[color] or default_health_url] for color in COLORS
        },
        "alarms": {color: [alarms[color].name] for color in COLORS},
        "live_color": settings.live_color,
        "versions": dict(settings.versions),
        "artifact_bucket": bucket.bucket,
        "artifact_key": f"releases/{settings.versions[settings.live_color]}/artifact",
        "artifact_keys": {
            color: f"releases/{settings.versions[color]}/artifact" for color in COLORS
        },
        "version_tag": "AppVersion",
    }


# The topology helper checks the colours now and the resolved output with the
# toolkit's own reader (docs/topology.md, "Adopting the toolkit").
pulumi.export("rollback", rollback_topology(**define_stack(read_settings())))
