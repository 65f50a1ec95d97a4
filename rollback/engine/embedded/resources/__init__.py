"""Per-resource-type appliers of the embedded engine: make a Pulumi resource real with boto3.

The engine core runs the program under the Pulumi SDK's mock runtime; for each
registered resource it looks up the applier by type token and calls it.
Inputs and outputs are plain Python values with camelCase keys, exactly as
pulumi-aws v7 sends them on the wire (numbers arrive as floats, secrets are
already unwrapped). Outputs are the inputs plus the computed values under the
resource's output property names, so `read` output can be compared with the
outputs recorded at create time (drift detection).

Every AWS failure raises `rollback.errors.EngineError` naming the resource and
carrying AWS's message. `SUPPORTED` is importable without importing boto3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rollback.aws.session import Clients

SUPPORTED: frozenset[str] = frozenset(
    {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/instance:Instance",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:lb/targetGroupAttachment:TargetGroupAttachment",
        "aws:lb/listener:Listener",
        "aws:route53/zone:Zone",
        "aws:route53/record:Record",
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:rds/instance:Instance",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        # Beyond stacks/webapp: what production blue/green stacks and Pulumi's examples use.
        "aws:s3/bucketV2:BucketV2",
        "aws:s3/bucketVersioningV2:BucketVersioningV2",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
        "aws:s3/bucketWebsiteConfiguration:BucketWebsiteConfiguration",
        "aws:s3/bucketWebsiteConfigurationV2:BucketWebsiteConfigurationV2",
        "aws:s3/bucketObject:BucketObject",
        "aws:s3/bucketObjectv2:BucketObjectv2",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/route:Route",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:autoscaling/group:Group",
        "aws:lb/listenerRule:ListenerRule",
        "aws:lb/listenerCertificate:ListenerCertificate",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/user:User",
        "aws:iam/accessKey:AccessKey",
        "aws:iam/group:Group",
        "aws:ecs/cluster:Cluster",
        "aws:ecs/taskDefinition:TaskDefinition",
        "aws:ecs/service:Service",
        "aws:ecr/repository:Repository",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "aws:ecr/repositoryPolicy:RepositoryPolicy",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/logStream:LogStream",
        "aws:cloudwatch/logMetricFilter:LogMetricFilter",
        "aws:acm/certificate:Certificate",
        "aws:acm/certificateValidation:CertificateValidation",
        "aws:cloudfront/distribution:Distribution",
        "aws:route53/healthCheck:HealthCheck",
        "aws:sns/topic:Topic",
        "aws:sns/topicSubscription:TopicSubscription",
        "aws:kms/key:Key",
        "aws:kms/alias:Alias",
        "aws:secretsmanager/secret:Secret",
        "aws:secretsmanager/secretVersion:SecretVersion",
        "aws:ssm/parameter:Parameter",
        "aws:sqs/queue:Queue",
        "aws:dynamodb/table:Table",
        "aws:kinesis/stream:Stream",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:cloudwatch/eventTarget:EventTarget",
        "aws:rds/cluster:Cluster",
        "aws:rds/clusterInstance:ClusterInstance",
        "aws:rds/clusterParameterGroup:ClusterParameterGroup",
        "aws:lambda/function:Function",
        "aws:lambda/permission:Permission",
        "aws:sfn/stateMachine:StateMachine",
        "aws:apigateway/restApi:RestApi",
        "aws:apigateway/deployment:Deployment",
        "aws:apigateway/stage:Stage",
        "aws:apigatewayv2/api:Api",
        "aws:apigatewayv2/integration:Integration",
        "aws:apigatewayv2/route:Route",
        "aws:apigatewayv2/stage:Stage",
        "aws:s3/bucketAcl:BucketAcl",
        "aws:s3/bucketAclV2:BucketAclV2",
        "aws:ec2/keyPair:KeyPair",
        "aws:cloudwatch/eventBus:EventBus",
        "aws:ec2/launchConfiguration:LaunchConfiguration",
        "aws:ecs/capacityProvider:CapacityProvider",
    }
)


class ResourceType(Protocol):
    """Applies one Pulumi resource type to the cloud."""

    @property
    def token(self) -> str:
        """The type token, e.g. "aws:lb/listener:Listener"."""
        ...

    replace_on: frozenset[str]  # camelCase input names whose change forces replacement

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create the resource; return (physical id, outputs = inputs plus computed values)."""
        ...

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        """Change the resource in place from olds to news; return the new outputs."""
        ...

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The live outputs read from the cloud (same keys as create's); None when gone."""
        ...

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        """Delete the resource; idempotent (already gone is fine)."""
        ...


def resource_types(clients: Clients) -> dict[str, ResourceType]:
    """Type token -> applier, each using clients from `clients` (boto3 imported lazily)."""
    from rollback.engine.embedded.resources import (
        acm,
        apigateway,
        aurora,
        autoscaling,
        cloudfront,
        cloudwatch,
        data,
        ec2,
        ecr,
        ecs,
        elbv2,
        elbv2_rules,
        extras,
        iam,
        logs,
        messaging,
        network,
        rds,
        route53,
        s3,
        s3_bucket_config,
        secrets,
        serverless,
    )

    appliers: list[ResourceType] = [
        *s3.appliers(clients),
        *s3_bucket_config.appliers(clients),
        *ec2.appliers(clients),
        *network.appliers(clients),
        *autoscaling.appliers(clients),
        *elbv2.appliers(clients),
        *elbv2_rules.appliers(clients),
        *route53.appliers(clients),
        *rds.appliers(clients),
        *cloudwatch.appliers(clients),
        *logs.appliers(clients),
        *iam.appliers(clients),
        *ecs.appliers(clients),
        *ecr.appliers(clients),
        *messaging.appliers(clients),
        *secrets.appliers(clients),
        *data.appliers(clients),
        *aurora.appliers(clients),
        *serverless.appliers(clients),
        *apigateway.appliers(clients),
        *extras.appliers(clients),
        *acm.appliers(clients),
        *cloudfront.appliers(clients),
    ]
    return {a.token: a for a in appliers}
