"""One tenant's stack with nothing named by hand: every physical name is Pulumi's auto-name.

Several projects and stacks of this program share one cloud in the isolation
tests. Config: `engineVersion` (PostgreSQL, default "16"), `env` (a tag).
"""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
tags = {"env": config.get("env") or "dev", "stack": pulumi.get_stack()}

vpc = aws.ec2.Vpc("vpc", cidr_block="10.20.0.0/16", tags=tags)
subnets = [
    aws.ec2.Subnet(f"subnet-{i}", vpc_id=vpc.id, cidr_block=f"10.20.{i}.0/24", availability_zone=az)
    for i, az in enumerate(["us-east-1a", "us-east-1b"])
]
group = aws.ec2.SecurityGroup("db-sg", vpc_id=vpc.id, description="database", tags=tags)
subnet_group = aws.rds.SubnetGroup("db-subnets", subnet_ids=[s.id for s in subnets], tags=tags)
database = aws.rds.Instance(
    "db",
    engine="postgres",
    engine_version=config.get("engineVersion") or "16",
    instance_class="db.t3.micro",
    allocated_storage=20,
    username="app",
    password="not-a-real-password",
    db_subnet_group_name=subnet_group.name,
    vpc_security_group_ids=[group.id],
    skip_final_snapshot=True,
    tags=tags,
)
bucket = aws.s3.Bucket("assets", tags=tags)
target_group = aws.lb.TargetGroup("web", port=80, protocol="HTTP", vpc_id=vpc.id, tags=tags)
pulumi.export("db", database.identifier)
pulumi.export("bucket", bucket.bucket)
