"""An explicit aws provider in another region, and the random provider's resources.

Config (project `prov`): `region` (the explicit provider's, default
us-west-2), `endpoint` (its s3 endpoint; empty = none), `keeper` (a keeper of
the pet name: changing it draws a new one).
"""

import pulumi
import pulumi_aws as aws
import pulumi_random as random

config = pulumi.Config()
endpoint = config.get("endpoint")
west = aws.Provider(
    "west",
    region=config.get("region") or "us-west-2",
    endpoints=[aws.ProviderEndpointArgs(s3=endpoint)] if endpoint else None,
)
pet = random.RandomPet("pet", keepers={"keeper": config.get("keeper") or "one"})
suffix = random.RandomString("suffix", length=6, special=False, upper=False)
password = random.RandomPassword("db-password", length=24, min_special=2)
token = random.RandomId("token", byte_length=8)
number = random.RandomInteger("number", min=1, max=6)

far = aws.s3.Bucket(
    "far",
    bucket=pulumi.Output.concat("far-", pet.id, "-", suffix.result),
    opts=pulumi.ResourceOptions(provider=west),
)
near = aws.s3.Bucket("near", bucket=pulumi.Output.concat("near-", suffix.result))
pulumi.export("far", far.bucket)
pulumi.export("near", near.bucket)
pulumi.export("password", password.result)
pulumi.export("pet", pet.id)
