"""A bucket beside two types the embedded engine does not apply: all are refused at once."""

import pulumi_aws as aws

aws.s3.Bucket("artifacts", bucket="queue-program-bucket")
aws.cloudfront.OriginAccessIdentity("cdn")
aws.sfn.Activity("jobs")
