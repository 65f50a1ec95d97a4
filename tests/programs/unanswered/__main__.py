"""Functions and types the embedded engine does not handle, beside a bucket it does.

Config `unanswered:crash` (bool): use an unanswered function's result in a way
that fails when it is empty, as real programs often do.
"""

import pulumi
import pulumi_aws as aws

aws.s3.Bucket("artifacts", bucket="unanswered-bucket")
endpoint = aws.ec2.get_vpc_endpoint_service(service="s3")
aws.sfn.Activity("jobs", tags={"service": str(endpoint.service_name)})
if pulumi.Config().get_bool("crash"):
    alias = aws.kms.get_alias(name="alias/aws/s3")
    aws.s3.BucketObject("key", bucket="unanswered-bucket", content=alias.target_key_id.upper())
