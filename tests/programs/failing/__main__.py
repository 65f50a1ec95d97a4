"""Declares a bucket, then fails."""

import pulumi_aws as aws

aws.s3.Bucket("artifacts", bucket="failing-program-bucket")
raise ValueError("the blue weight must be between 0 and 100")
