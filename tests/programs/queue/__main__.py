"""A bucket and a queue: the embedded engine supports the first, not the second."""

import pulumi_aws as aws

aws.s3.Bucket("artifacts", bucket="queue-program-bucket")
aws.sqs.Queue("jobs")
