"""Secrets Manager secrets and versions, SSM parameters, KMS keys and aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_json
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import partition_of, physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType


def _missing(call: Any, codes: tuple[str, ...], **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if aws_code(exc) in codes:
            return None
        raise


_NO_SECRET = ("ResourceNotFoundException",)


@dataclass(frozen=True)
class Secret:
    """aws:secretsmanager/secret:Secret; id is the ARN. Description, KMS key, policy and tags change in place.

    Delete schedules deletion after `recoveryWindowInDays` (30 by default;
    0 deletes at once), as the provider does.
    """

    clients: Clients
    token = "aws:secretsmanager/secret:Secret"
    replace_on = frozenset({"name", "namePrefix", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        secret = physical_name(inputs, "name", name, 512)
        kwargs: dict[str, Any] = {"Name": secret}
        if inputs.get("description"):
            kwargs["Description"] = inputs["description"]
        if inputs.get("kmsKeyId"):
            kwargs["KmsKeyId"] = inputs["kmsKeyId"]
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        sm = self.clients("secretsmanager")
        with applying(self.token, name, "create"):
            arn = sm.create_secret(**kwargs)["ARN"]
            if inputs.get("policy"):
                sm.put_resource_policy(SecretId=arn, ResourcePolicy=inputs["policy"])
        return arn, present(self.read(arn, {**inputs, "name": secret}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        sm = self.clients("secretsmanager")
        with applying(self.token, id, "update"):
            if (news.get("description"), news.get("kmsKeyId")) != (
                olds.get("description"),
                olds.get("kmsKeyId"),
            ):
                kwargs: dict[str, Any] = {
                    "SecretId": id,
                    "Description": news.get("description") or "",
                }
                if news.get("kmsKeyId"):
                    kwargs["KmsKeyId"] = news["kmsKeyId"]
                sm.update_secret(**kwargs)
            if news.get("policy") != olds.get("policy"):
                if news.get("policy"):
                    sm.put_resource_policy(SecretId=id, ResourcePolicy=news["policy"])
                else:
                    sm.delete_resource_policy(SecretId=id)
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                sm.tag_resource(SecretId=id, Tags=aws_tags(to_set))
            if to_remove:
                sm.untag_resource(SecretId=id, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        sm = self.clients("secretsmanager")
        with applying(self.token, id, "read"):
            secret = _missing(sm.describe_secret, _NO_SECRET, SecretId=id)
            if secret is None or secret.get("DeletedDate"):
                return None
            policy = None
            if "policy" in inputs:
                policy = sm.get_resource_policy(SecretId=id).get("ResourcePolicy")
        outputs = {**inputs, "name": secret["Name"], "arn": secret["ARN"]}
        if "description" in inputs or secret.get("Description"):
            outputs["description"] = secret.get("Description", "")
        if "kmsKeyId" in inputs:
            outputs["kmsKeyId"] = secret.get("KmsKeyId", "")
        if "policy" in inputs:
            outputs["policy"] = declared_json(policy, inputs.get("policy")) if policy else ""
        return with_tags(outputs, pulumi_tags(secret.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        window = inputs.get("recoveryWindowInDays")
        kwargs: dict[str, Any] = {"SecretId": id}
        if window is not None and int(window) == 0:
            kwargs["ForceDeleteWithoutRecovery"] = True
        else:
            kwargs["RecoveryWindowInDays"] = int(window if window is not None else 30)
        with applying(self.token, id, "delete"), already_gone(*_NO_SECRET):
            self.clients("secretsmanager").delete_secret(**kwargs)


@dataclass(frozen=True)
class SecretVersion:
    """aws:secretsmanager/secretVersion:SecretVersion; id is `<secret arn>|<version id>`.

    A new value makes a new version (replacement), as the provider does.
    """

    clients: Clients
    token = "aws:secretsmanager/secretVersion:SecretVersion"
    replace_on = frozenset({"secretId", "secretString", "secretBinary", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {"SecretId": inputs["secretId"]}
        if inputs.get("secretString") is not None:
            kwargs["SecretString"] = str(inputs["secretString"])
        if inputs.get("secretBinary"):
            import base64

            kwargs["SecretBinary"] = base64.b64decode(str(inputs["secretBinary"]))
        if inputs.get("versionStages"):
            kwargs["VersionStages"] = list(inputs["versionStages"])
        with applying(self.token, name, "create"):
            answer = self.clients("secretsmanager").put_secret_value(**kwargs)
        id = f"{answer['ARN']}|{answer['VersionId']}"
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        arn, version = id.split("|", 1)
        sm = self.clients("secretsmanager")
        with applying(self.token, id, "read"):
            answer = _missing(
                sm.get_secret_value,
                (*_NO_SECRET, "InvalidRequestException"),
                SecretId=arn,
                VersionId=version,
            )
        if answer is None:
            return None
        outputs = {
            **inputs,
            "arn": answer["ARN"],
            "versionId": answer["VersionId"],
            "versionStages": sorted(answer.get("VersionStages", [])),
        }
        if "secretString" in inputs:
            outputs["secretString"] = answer.get("SecretString", "")
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        """Take the version's stages away (a version cannot be deleted on its own)."""
        arn, version = id.split("|", 1)
        sm = self.clients("secretsmanager")
        with (
            applying(self.token, id, "delete"),
            already_gone(*_NO_SECRET, "InvalidRequestException"),
        ):
            described = sm.describe_secret(SecretId=arn)
            for stage in described.get("VersionIdsToStages", {}).get(version, []):
                if stage != "AWSCURRENT":
                    sm.update_secret_version_stage(
                        SecretId=arn, VersionStage=stage, RemoveFromVersionId=version
                    )


@dataclass(frozen=True)
class Parameter:
    """aws:ssm/parameter:Parameter; id is the name. Value, description, tier and tags change in place."""

    clients: Clients
    token = "aws:ssm/parameter:Parameter"
    replace_on = frozenset({"name", "type", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        parameter = physical_name(inputs, "name", name, 2048)
        answer = self._put(name, parameter, inputs, "create", overwrite=False)
        # What a read would say, without one (a create of many parameters pays one
        # call each): the ARN as SSM forms it, `parameter/` then the name without its `/`.
        region = self.clients("ssm").meta.region_name
        arn = (
            f"arn:{partition_of(region)}:ssm:{region}:{self.clients.account()}:"
            f"parameter/{parameter.removeprefix('/')}"
        )
        outputs = {
            **inputs,
            "name": parameter,
            "arn": arn,
            "type": inputs.get("type") or "String",
            "version": float(answer.get("Version", 1)),
        }
        for key in ("value", "insecureValue"):
            if key in inputs:
                outputs[key] = str(inputs[key])
        return parameter, with_tags(
            outputs, {str(k): str(v) for k, v in (inputs.get("tags") or {}).items()}
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ssm = self.clients("ssm")
        self._put(id, id, news, "update", overwrite=True)
        to_set, to_remove = tag_changes(olds, news)
        with applying(self.token, id, "update"):
            if to_set:
                ssm.add_tags_to_resource(
                    ResourceType="Parameter", ResourceId=id, Tags=aws_tags(to_set)
                )
            if to_remove:
                ssm.remove_tags_from_resource(
                    ResourceType="Parameter", ResourceId=id, TagKeys=to_remove
                )
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ssm = self.clients("ssm")
        with applying(self.token, id, "read"):
            answer = _missing(
                ssm.get_parameter, ("ParameterNotFound",), Name=id, WithDecryption=True
            )
            if answer is None:
                return None
            tags = (
                ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=id).get(
                    "TagList", []
                )
                if inputs.get("tags")
                else []
            )
        live = answer["Parameter"]
        outputs = {
            **inputs,
            "name": live["Name"],
            "arn": live.get("ARN", ""),
            "type": live["Type"],
            "version": float(live.get("Version", 1)),
        }
        if "value" in inputs:
            outputs["value"] = live["Value"]
        if "insecureValue" in inputs:
            outputs["insecureValue"] = live["Value"]
        return with_tags(outputs, pulumi_tags(tags))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ParameterNotFound"):
            self.clients("ssm").delete_parameter(Name=id)

    def _put(
        self, name: str, parameter: str, inputs: dict[str, Any], action: str, *, overwrite: bool
    ) -> dict[str, Any]:
        value = inputs.get("value", inputs.get("insecureValue"))
        kwargs: dict[str, Any] = {
            "Name": parameter,
            "Value": str(value),
            "Type": inputs.get("type") or "String",
            "Overwrite": overwrite,
        }
        for key, aws_key in (
            ("description", "Description"),
            ("tier", "Tier"),
            ("keyId", "KeyId"),
            ("allowedPattern", "AllowedPattern"),
            ("dataType", "DataType"),
        ):
            if inputs.get(key):
                kwargs[aws_key] = inputs[key]
        if inputs.get("tags") and not overwrite:
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, action):
            answer: dict[str, Any] = self.clients("ssm").put_parameter(**kwargs)
        return answer


@dataclass(frozen=True)
class Key:
    """aws:kms/key:Key; id is the key id. Description, policy, rotation and tags change in place.

    Delete schedules deletion after `deletionWindowInDays` (30 by default).
    """

    clients: Clients
    token = "aws:kms/key:Key"
    replace_on = frozenset({"keyUsage", "customerMasterKeySpec", "multiRegion", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kms = self.clients("kms")
        kwargs: dict[str, Any] = {
            "KeyUsage": inputs.get("keyUsage") or "ENCRYPT_DECRYPT",
            "KeySpec": inputs.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT",
        }
        if inputs.get("description"):
            kwargs["Description"] = inputs["description"]
        if inputs.get("policy"):
            kwargs["Policy"] = inputs["policy"]
        if inputs.get("multiRegion"):
            kwargs["MultiRegion"] = True
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"], "TagKey", "TagValue")
        with applying(self.token, name, "create"):
            id = kms.create_key(**kwargs)["KeyMetadata"]["KeyId"]
            if inputs.get("enableKeyRotation"):
                kms.enable_key_rotation(KeyId=id)
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        kms = self.clients("kms")
        with applying(self.token, id, "update"):
            if news.get("description") != olds.get("description"):
                kms.update_key_description(KeyId=id, Description=news.get("description") or "")
            if news.get("policy") != olds.get("policy") and news.get("policy"):
                kms.put_key_policy(KeyId=id, PolicyName="default", Policy=news["policy"])
            if bool(news.get("enableKeyRotation")) != bool(olds.get("enableKeyRotation")):
                if news.get("enableKeyRotation"):
                    kms.enable_key_rotation(KeyId=id)
                else:
                    kms.disable_key_rotation(KeyId=id)
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                kms.tag_resource(KeyId=id, Tags=aws_tags(to_set, "TagKey", "TagValue"))
            if to_remove:
                kms.untag_resource(KeyId=id, TagKeys=to_remove)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        kms = self.clients("kms")
        with applying(self.token, id, "read"):
            answer = _missing(kms.describe_key, ("NotFoundException",), KeyId=id)
            if answer is None or answer["KeyMetadata"].get("KeyState") in (
                "PendingDeletion",
                "PendingReplicaDeletion",
            ):
                return None
            rotation = kms.get_key_rotation_status(KeyId=id).get("KeyRotationEnabled", False)
            tags = kms.list_resource_tags(KeyId=id).get("Tags", [])
            policy = (
                kms.get_key_policy(KeyId=id, PolicyName="default")["Policy"]
                if "policy" in inputs
                else None
            )
        metadata = answer["KeyMetadata"]
        outputs = {
            **inputs,
            "arn": metadata["Arn"],
            "keyId": metadata["KeyId"],
            "keyUsage": metadata.get("KeyUsage", "ENCRYPT_DECRYPT"),
            "isEnabled": bool(metadata.get("Enabled", True)),
            "enableKeyRotation": bool(rotation),
        }
        if "description" in inputs or metadata.get("Description"):
            outputs["description"] = metadata.get("Description", "")
        if policy is not None:
            outputs["policy"] = declared_json(policy, inputs.get("policy"))
        return with_tags(outputs, pulumi_tags(tags, "TagKey", "TagValue"))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        window = int(inputs.get("deletionWindowInDays") or 30)
        with (
            applying(self.token, id, "delete"),
            already_gone("NotFoundException", "KMSInvalidStateException"),
        ):
            self.clients("kms").schedule_key_deletion(KeyId=id, PendingWindowInDays=window)


@dataclass(frozen=True)
class Alias:
    """aws:kms/alias:Alias; id is the alias name (`alias/...`). The target key changes in place."""

    clients: Clients
    token = "aws:kms/alias:Alias"
    replace_on = frozenset({"name", "namePrefix", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        alias = str(inputs.get("name") or f"{inputs.get('namePrefix') or 'alias/'}{name}")
        with applying(self.token, name, "create"):
            self.clients("kms").create_alias(AliasName=alias, TargetKeyId=inputs["targetKeyId"])
        return alias, present(self.read(alias, {**inputs, "name": alias}), self.token, alias)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        with applying(self.token, id, "update"):
            self.clients("kms").update_alias(AliasName=id, TargetKeyId=news["targetKeyId"])
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        kms = self.clients("kms")
        with applying(self.token, id, "read"):
            aliases = [
                a
                for page in kms.get_paginator("list_aliases").paginate()
                for a in page["Aliases"]
                if a["AliasName"] == id
            ]
        if not aliases:
            return None
        alias = aliases[0]
        target = alias.get("TargetKeyId", "")
        declared = str(inputs.get("targetKeyId", ""))
        # Programs pass the key's id or its ARN; both name the same key.
        same = declared == target or declared.endswith(f"/{target}")
        return {
            **inputs,
            "name": id,
            "arn": alias.get("AliasArn", ""),
            "targetKeyId": declared if same else target,
            "targetKeyArn": declared if declared.startswith("arn:") and same else target,
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("NotFoundException"):
            self.clients("kms").delete_alias(AliasName=id)


def appliers(clients: Clients) -> list[ResourceType]:
    """The secret-keeping appliers."""
    return [
        Secret(clients),
        SecretVersion(clients),
        Parameter(clients),
        Key(clients),
        Alias(clients),
    ]
