"""Smaller types Pulumi's examples use: bucket ACLs, key pairs, event buses, launch
configurations and ECS capacity providers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
_AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def _canned(grants: list[dict[str, Any]]) -> str:
    """The canned ACL a set of grants amounts to ("" when it is none of them)."""
    others = {
        (g["Grantee"].get("URI", ""), g["Permission"])
        for g in grants
        if g["Grantee"].get("Type") == "Group"
    }
    if not others:
        return "private"
    if others == {(_ALL_USERS, "READ")}:
        return "public-read"
    if others == {(_ALL_USERS, "READ"), (_ALL_USERS, "WRITE")}:
        return "public-read-write"
    if others == {(_AUTHENTICATED, "READ")}:
        return "authenticated-read"
    return ""


@dataclass(frozen=True)
class BucketAcl:
    """aws:s3/bucketAcl:BucketAcl (canned `acl`); id is `<bucket>,<acl>`. The ACL changes in place.

    Delete leaves the bucket's ACL as it is, as the provider does.
    """

    clients: Clients
    token: str
    replace_on = frozenset({"bucket", "expectedBucketOwner", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._put(name, inputs, "create")
        id = f"{inputs['bucket']},{inputs.get('acl') or ''}".rstrip(",")
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, news, "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                acl = self.clients("s3").get_bucket_acl(Bucket=inputs["bucket"])
            except ClientError as exc:
                if aws_code(exc) in ("NoSuchBucket", "404"):
                    return None
                raise
        outputs = dict(inputs)
        if inputs.get("acl"):
            outputs["acl"] = _canned(acl.get("Grants", [])) or "custom"
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        return None

    def _put(self, name: str, inputs: dict[str, Any], action: str) -> None:
        with applying(self.token, name, action):
            self.clients("s3").put_bucket_acl(
                Bucket=inputs["bucket"], ACL=inputs.get("acl") or "private"
            )


@dataclass(frozen=True)
class KeyPair:
    """aws:ec2/keyPair:KeyPair (imported public key); id is the key name. Tags change in place."""

    clients: Clients
    token = "aws:ec2/keyPair:KeyPair"
    replace_on = frozenset({"keyName", "keyNamePrefix", "publicKey", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        key = physical_name(inputs, "keyName", name, 255)
        kwargs: dict[str, Any] = {
            "KeyName": key,
            "PublicKeyMaterial": str(inputs["publicKey"]).encode(),
        }
        if inputs.get("tags"):
            kwargs["TagSpecifications"] = [
                {"ResourceType": "key-pair", "Tags": aws_tags(inputs["tags"])}
            ]
        with applying(self.token, name, "create"):
            self.clients("ec2").import_key_pair(**kwargs)
        return key, present(self.read(key, {**inputs, "keyName": key}), self.token, key)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        from rollback.engine.embedded.resources.network import _retag

        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            pair_id = ec2.describe_key_pairs(KeyNames=[id])["KeyPairs"][0]["KeyPairId"]
            _retag(ec2, pair_id, olds, news)
        return present(self.read(id, {**news, "keyName": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            try:
                pair = ec2.describe_key_pairs(KeyNames=[id])["KeyPairs"][0]
            except ClientError as exc:
                if aws_code(exc) == "InvalidKeyPair.NotFound":
                    return None
                raise
        outputs = {
            **inputs,
            "keyName": pair["KeyName"],
            "keyPairId": pair.get("KeyPairId", ""),
            "fingerprint": pair.get("KeyFingerprint", ""),
            "arn": f"arn:aws:ec2:{ec2.meta.region_name}::key-pair/{pair.get('KeyPairId', id)}",
        }
        return with_tags(outputs, pulumi_tags(pair.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("InvalidKeyPair.NotFound"):
            self.clients("ec2").delete_key_pair(KeyName=id)


@dataclass(frozen=True)
class EventBus:
    """aws:cloudwatch/eventBus:EventBus; id is the name. Nothing but tags changes in place."""

    clients: Clients
    token = "aws:cloudwatch/eventBus:EventBus"
    replace_on = frozenset({"name", "eventSourceName", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bus = physical_name(inputs, "name", name, 256)
        kwargs: dict[str, Any] = {"Name": bus}
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            self.clients("events").create_event_bus(**kwargs)
        return bus, present(self.read(bus, {**inputs, "name": bus}), self.token, bus)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                bus = self.clients("events").describe_event_bus(Name=id)
            except ClientError as exc:
                if aws_code(exc) == "ResourceNotFoundException":
                    return None
                raise
        return {**inputs, "name": bus["Name"], "arn": bus["Arn"]}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ResourceNotFoundException"):
            self.clients("events").delete_event_bus(Name=id)


@dataclass(frozen=True)
class LaunchConfiguration:
    """aws:ec2/launchConfiguration:LaunchConfiguration; id is the name. Immutable: every change replaces it."""

    clients: Clients
    token = "aws:ec2/launchConfiguration:LaunchConfiguration"
    replace_on = frozenset(
        {
            "name",
            "namePrefix",
            "imageId",
            "instanceType",
            "iamInstanceProfile",
            "keyName",
            "securityGroups",
            "userData",
            "userDataBase64",
            "associatePublicIpAddress",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        configuration = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {
            "LaunchConfigurationName": configuration,
            "ImageId": inputs["imageId"],
            "InstanceType": inputs["instanceType"],
        }
        for key, parameter in (
            ("iamInstanceProfile", "IamInstanceProfile"),
            ("keyName", "KeyName"),
            ("userData", "UserData"),
        ):
            if inputs.get(key):
                kwargs[parameter] = inputs[key]
        if inputs.get("securityGroups"):
            kwargs["SecurityGroups"] = list(inputs["securityGroups"])
        if inputs.get("associatePublicIpAddress") is not None:
            kwargs["AssociatePublicIpAddress"] = bool(inputs["associatePublicIpAddress"])
        with applying(self.token, name, "create"):
            self.clients("autoscaling").create_launch_configuration(**kwargs)
        return configuration, present(
            self.read(configuration, {**inputs, "name": configuration}), self.token, configuration
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            found = self.clients("autoscaling").describe_launch_configurations(
                LaunchConfigurationNames=[id]
            )["LaunchConfigurations"]
        if not found:
            return None
        configuration = found[0]
        return {
            **inputs,
            "name": id,
            "arn": configuration.get("LaunchConfigurationARN", ""),
            "imageId": configuration["ImageId"],
            "instanceType": configuration["InstanceType"],
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "delete"):
            try:
                self.clients("autoscaling").delete_launch_configuration(LaunchConfigurationName=id)
            except ClientError as exc:
                if "not found" not in str(exc).lower():
                    raise


@dataclass(frozen=True)
class CapacityProvider:
    """aws:ecs/capacityProvider:CapacityProvider; id is the ARN. Managed scaling and tags change in place."""

    clients: Clients
    token = "aws:ecs/capacityProvider:CapacityProvider"
    replace_on = frozenset({"name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        provider = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {
            "name": provider,
            "autoScalingGroupProvider": self._group_provider(inputs),
        }
        if inputs.get("tags"):
            kwargs["tags"] = aws_tags(inputs["tags"], "key", "value")
        with applying(self.token, name, "create"):
            arn = self.clients("ecs").create_capacity_provider(**kwargs)["capacityProvider"][
                "capacityProviderArn"
            ]
        return arn, present(self.read(arn, {**inputs, "name": provider}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        group = self._group_provider(news)
        group.pop("autoScalingGroupArn", None)
        with applying(self.token, id, "update"):
            self.clients("ecs").update_capacity_provider(
                name=news.get("name") or olds["name"], autoScalingGroupProvider=group
            )
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            found = self.clients("ecs").describe_capacity_providers(capacityProviders=[id])[
                "capacityProviders"
            ]
        if not found or found[0].get("status") == "INACTIVE":
            return None
        provider = found[0]
        return {**inputs, "name": provider["name"], "arn": provider["capacityProviderArn"]}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "delete"):
            try:
                self.clients("ecs").delete_capacity_provider(capacityProvider=id)
            except ClientError as exc:
                if aws_code(exc) not in ("ClientException", "ClusterNotFoundException"):
                    raise

    @staticmethod
    def _group_provider(inputs: dict[str, Any]) -> dict[str, Any]:
        declared = inputs.get("autoScalingGroupProvider") or {}
        group: dict[str, Any] = {"autoScalingGroupArn": declared["autoScalingGroupArn"]}
        if declared.get("managedTerminationProtection"):
            group["managedTerminationProtection"] = declared["managedTerminationProtection"]
        scaling = declared.get("managedScaling")
        if scaling:
            group["managedScaling"] = {
                key: (int(value) if isinstance(value, float) else value)
                for key, value in scaling.items()
                if value is not None
            }
        return group


def appliers(clients: Clients) -> list[ResourceType]:
    """The appliers of the smaller types."""
    return [
        BucketAcl(clients, "aws:s3/bucketAcl:BucketAcl"),
        BucketAcl(clients, "aws:s3/bucketAclV2:BucketAclV2"),
        KeyPair(clients),
        EventBus(clients),
        LaunchConfiguration(clients),
        CapacityProvider(clients),
    ]
