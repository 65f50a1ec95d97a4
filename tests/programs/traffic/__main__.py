"""A blue/green listener and weighted DNS records whose weights the toolkit owns after the first up.

Config (project `traffic`): `blueWeight` (default 100; green gets the rest),
`listenerIgnore` and `recordIgnore` (comma-separated property paths for
ignore_changes; empty = none), `port` (listener port, default 80).
"""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
blue = config.get_int("blueWeight")
weights = {"blue": 100 if blue is None else blue}
weights["green"] = 100 - weights["blue"]


def paths(key: str) -> list[str] | None:
    value = config.get(key)
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


vpc = aws.ec2.Vpc("vpc", cidr_block="10.9.0.0/16")
subnets = [
    aws.ec2.Subnet(f"subnet-{i}", vpc_id=vpc.id, cidr_block=f"10.9.{i}.0/24", availability_zone=az)
    for i, az in enumerate(["us-east-1a", "us-east-1b"])
]
lb = aws.lb.LoadBalancer("lb", load_balancer_type="application", subnets=[s.id for s in subnets])
groups = {
    color: aws.lb.TargetGroup(f"tg-{color}", port=80, protocol="HTTP", vpc_id=vpc.id)
    for color in weights
}
listener = aws.lb.Listener(
    "http",
    load_balancer_arn=lb.arn,
    port=config.get_int("port") or 80,
    protocol="HTTP",
    default_actions=[
        aws.lb.ListenerDefaultActionArgs(
            type="forward",
            forward=aws.lb.ListenerDefaultActionForwardArgs(
                target_groups=[
                    aws.lb.ListenerDefaultActionForwardTargetGroupArgs(
                        arn=groups[color].arn, weight=weight
                    )
                    for color, weight in weights.items()
                ]
            ),
        )
    ],
    opts=pulumi.ResourceOptions(ignore_changes=paths("listenerIgnore")),
)
zone = aws.route53.Zone("zone", name="traffic.example.com")
for color, weight in weights.items():
    aws.route53.Record(
        f"app-{color}",
        zone_id=zone.zone_id,
        name="app.traffic.example.com",
        type="CNAME",
        ttl=60,
        records=[lb.dns_name],
        set_identifier=color,
        weighted_routing_policies=[aws.route53.RecordWeightedRoutingPolicyArgs(weight=weight)],
        opts=pulumi.ResourceOptions(ignore_changes=paths("recordIgnore")),
    )
pulumi.export("listener", listener.arn)
pulumi.export("zone", zone.zone_id)
pulumi.export("groups", {color: tg.arn for color, tg in groups.items()})
