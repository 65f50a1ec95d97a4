"""An artifact bucket with versioning, grouped in a component; exports a secret."""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()


class Artifacts(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tests:index:Artifacts", name, None, opts)
        self.bucket = aws.s3.Bucket(
            "artifacts",
            bucket=config.require("bucketName"),
            tags={"env": config.get("env") or "dev"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        if config.get_bool("withVersioning") is not False:
            aws.s3.BucketVersioning(
                "artifacts-versioning",
                # `versioningBucket` points it elsewhere: tests use it to make the apply fail.
                bucket=config.get("versioningBucket") or self.bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"bucket": self.bucket.id})


site = Artifacts("site")
pulumi.export("bucket", site.bucket.id)
pulumi.export("arn", site.bucket.arn)
pulumi.export("token", config.require_secret("token"))
