"""One resource-option case per config `probes:case`, in the shape of config `probes:step` (0, 1, ...).

- `nested_ignore`: tags change every step; `ignore_changes` names only the map key `tags["env"]`.
- `protect_inherit`: a component with protect=True holds a bucket (step 0); step 1 drops both.
- `alias_urn`: bucket `old` (step 0) becomes `new` with an alias given as the old URN string.
- `alias_type`: a BucketV2 (step 0) becomes a Bucket with an alias of the old type.
- `provider_inherit`: a component's `providers=` (us-west-2) reaches its child bucket.
- `provider_half_keys`: a bucket, then a provider with an access key but no secret key.
"""

import pulumi
import pulumi_aws as aws
from pulumi import Alias, ResourceOptions

config = pulumi.Config()
case = config.require("case")
step = config.require_int("step")


class Holder(pulumi.ComponentResource):
    def __init__(self, name: str, bucket: str, opts: ResourceOptions | None = None) -> None:
        super().__init__("probes:index:Holder", name, None, opts)
        aws.s3.Bucket(f"{name}-bucket", bucket=bucket, opts=ResourceOptions(parent=self))
        self.register_outputs({})


if case == "nested_ignore":
    aws.s3.Bucket(
        "b",
        bucket="probe-nested",
        tags={"env": f"e{step}", "team": f"t{step}"},
        opts=ResourceOptions(ignore_changes=['tags["env"]']),
    )
elif case == "protect_inherit" and step == 0:
    Holder("holder", "probe-inherit", ResourceOptions(protect=True))
elif case == "alias_urn":
    if step == 0:
        aws.s3.Bucket("old", bucket="probe-alias-urn")
    else:
        old = f"urn:pulumi:{pulumi.get_stack()}::probes::aws:s3/bucket:Bucket::old"
        aws.s3.Bucket("new", bucket="probe-alias-urn", opts=ResourceOptions(aliases=[old]))
elif case == "alias_type":
    if step == 0:
        aws.s3.BucketV2("b", bucket="probe-alias-type")
    else:
        aws.s3.Bucket(
            "b",
            bucket="probe-alias-type",
            opts=ResourceOptions(aliases=[Alias(type_="aws:s3/bucketV2:BucketV2")]),
        )
elif case == "provider_inherit":
    west = aws.Provider("west", region="us-west-2")
    Holder("holder", "probe-west", ResourceOptions(providers=[west]))
elif case == "provider_half_keys":
    aws.s3.Bucket("first", bucket="probe-before-half")
    half = aws.Provider("half", region="us-east-1", access_key="AKIAONLYHALFAKEY0001")
    aws.s3.Bucket("b", bucket="probe-half", opts=ResourceOptions(provider=half))
