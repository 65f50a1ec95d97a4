"""A small blue/green shape whose `rollback` output comes from the topology helper.

Config `topology:liveColor` (default blue) and `topology:greenVersion`
(default 1.5.0; empty leaves green without a version, which the helper refuses).
"""

import pulumi
import pulumi_aws as aws

from rollback.pulumi_topology import rollback_topology

config = pulumi.Config()
alb = aws.lb.LoadBalancer("alb", subnets=["subnet-a", "subnet-b"])
groups = {
    color: aws.lb.TargetGroup(f"tg-{color}", port=80, protocol="HTTP", vpc_id="vpc-1")
    for color in ("blue", "green")
}
listener = aws.lb.Listener(
    "http",
    load_balancer_arn=alb.arn,
    port=80,
    default_actions=[{"type": "forward", "target_group_arn": groups["blue"].arn}],
)
zone = aws.route53.Zone("zone", name="example.internal")
db = aws.rds.Instance("db", engine="postgres", instance_class="db.t3.micro", allocated_storage=20)
alarms = {
    color: aws.cloudwatch.MetricAlarm(
        f"alarm-{color}",
        name=f"{color}-5xx",
        comparison_operator="GreaterThanOrEqualToThreshold",
        evaluation_periods=1,
        threshold=1,
    )
    for color in ("blue", "green")
}
bucket = aws.s3.Bucket("artifacts", bucket="topology-artifacts")
versions = {"blue": "1.4.0", "green": config.get("greenVersion") or "1.5.0"}
if config.get("greenVersion") == "none":
    del versions["green"]

pulumi.export(
    "rollback",
    rollback_topology(
        listener_arn=listener,
        load_balancer_arn=alb,
        target_groups=groups,
        zone_id=zone,
        record_name="app.example.internal",
        db_instance_id=db,
        health_urls={c: [alb.dns_name.apply(lambda d: f"http://{d}/health")] for c in groups},
        alarms={c: [a] for c, a in alarms.items()},
        live_color=config.get("liveColor") or "blue",
        versions=versions,
        artifact_bucket=bucket,
        artifact_key="releases/1.4.0/artifact",
    ),
)
