"""Reads another stack's exports through a StackReference (config `consumer:ref`).

The referenced stack is tests/programs/bucket's: a bucket named after its
`bucket` export is created here, and its secret `token` is re-exported.
"""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
producer = pulumi.StackReference(config.require("ref"))
copy = aws.s3.Bucket("copy", bucket=producer.get_output("bucket").apply(lambda b: f"{b}-copy"))
pulumi.export("copy", copy.bucket)
pulumi.export("token", producer.get_output("token"))
