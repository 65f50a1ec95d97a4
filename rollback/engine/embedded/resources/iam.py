"""IAM: roles, managed and inline policies, attachments, instance profiles, users, access keys
and groups."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_json
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags
from rollback.engine.embedded.secrets import wrap_secret
from rollback.errors import EngineError

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = "NoSuchEntity"


def _document(value: Any) -> str:
    """A policy input as the text IAM takes (programs pass text; a dict is serialised)."""
    return value if isinstance(value, str) else json.dumps(value)


def _missing(call: Any, **kwargs: Any) -> Any:
    """The call's answer, or None when IAM says the entity does not exist."""
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if aws_code(exc) == _GONE:
            return None
        raise


@dataclass(frozen=True)
class Role:
    """aws:iam/role:Role; id is the role name. Trust policy, description, session length and tags change in place."""

    clients: Clients
    token = "aws:iam/role:Role"
    replace_on = frozenset({"name", "namePrefix", "path"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.clients("iam")
        role = physical_name(inputs, "name", name, 64)
        kwargs: dict[str, Any] = {
            "RoleName": role,
            "AssumeRolePolicyDocument": _document(inputs["assumeRolePolicy"]),
            "Path": inputs.get("path") or "/",
        }
        if inputs.get("description"):
            kwargs["Description"] = inputs["description"]
        if inputs.get("maxSessionDuration"):
            kwargs["MaxSessionDuration"] = int(inputs["maxSessionDuration"])
        if inputs.get("permissionsBoundary"):
            kwargs["PermissionsBoundary"] = inputs["permissionsBoundary"]
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            iam.create_role(**kwargs)
            for policy in inputs.get("inlinePolicies") or []:
                if policy.get("name") and policy.get("policy"):
                    iam.put_role_policy(
                        RoleName=role, PolicyName=policy["name"], PolicyDocument=policy["policy"]
                    )
            for arn in inputs.get("managedPolicyArns") or []:
                iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        return role, present(self.read(role, {**inputs, "name": role}), self.token, role)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        iam = self.clients("iam")
        with applying(self.token, id, "update"):
            if news.get("assumeRolePolicy") != olds.get("assumeRolePolicy"):
                iam.update_assume_role_policy(
                    RoleName=id, PolicyDocument=_document(news["assumeRolePolicy"])
                )
            if news.get("description") != olds.get("description") or news.get(
                "maxSessionDuration"
            ) != olds.get("maxSessionDuration"):
                kwargs: dict[str, Any] = {"RoleName": id}
                kwargs["Description"] = news.get("description") or ""
                if news.get("maxSessionDuration"):
                    kwargs["MaxSessionDuration"] = int(news["maxSessionDuration"])
                iam.update_role(**kwargs)
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                iam.tag_role(RoleName=id, Tags=aws_tags(to_set))
            if to_remove:
                iam.untag_role(RoleName=id, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        iam = self.clients("iam")
        with applying(self.token, id, "read"):
            answer = _missing(iam.get_role, RoleName=id)
        if answer is None:
            return None
        role = answer["Role"]
        outputs = {
            **inputs,
            "name": role["RoleName"],
            "arn": role["Arn"],
            "uniqueId": role["RoleId"],
            "path": role.get("Path", "/"),
            "createDate": str(role.get("CreateDate", "")),
            "assumeRolePolicy": declared_json(
                role["AssumeRolePolicyDocument"], inputs.get("assumeRolePolicy")
            ),
            "maxSessionDuration": float(role.get("MaxSessionDuration", 3600)),
        }
        if "description" in inputs or role.get("Description"):
            outputs["description"] = role.get("Description", "")
        return with_tags(outputs, pulumi_tags(role.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        """Delete inline policies and leave instance profiles first, as the provider does."""
        iam = self.clients("iam")
        with applying(self.token, id, "delete"), already_gone(_GONE):
            for policy in iam.list_role_policies(RoleName=id)["PolicyNames"]:
                iam.delete_role_policy(RoleName=id, PolicyName=policy)
            for profile in iam.list_instance_profiles_for_role(RoleName=id)["InstanceProfiles"]:
                iam.remove_role_from_instance_profile(
                    InstanceProfileName=profile["InstanceProfileName"], RoleName=id
                )
            if inputs.get("forceDetachPolicies") or inputs.get("managedPolicyArns"):
                for policy in iam.list_attached_role_policies(RoleName=id)["AttachedPolicies"]:
                    iam.detach_role_policy(RoleName=id, PolicyArn=policy["PolicyArn"])
            iam.delete_role(RoleName=id)


@dataclass(frozen=True)
class Policy:
    """aws:iam/policy:Policy; id is the ARN. A new document becomes the default version."""

    clients: Clients
    token = "aws:iam/policy:Policy"
    replace_on = frozenset({"name", "namePrefix", "path", "description"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.clients("iam")
        policy_name = physical_name(inputs, "name", name, 128)
        kwargs: dict[str, Any] = {
            "PolicyName": policy_name,
            "PolicyDocument": _document(inputs["policy"]),
            "Path": inputs.get("path") or "/",
        }
        if inputs.get("description"):
            kwargs["Description"] = inputs["description"]
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            arn = iam.create_policy(**kwargs)["Policy"]["Arn"]
        return arn, present(self.read(arn, {**inputs, "name": policy_name}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        iam = self.clients("iam")
        with applying(self.token, id, "update"):
            if news.get("policy") != olds.get("policy"):
                versions = iam.list_policy_versions(PolicyArn=id)["Versions"]
                if len(versions) >= 5:  # IAM keeps five versions: drop the oldest non-default
                    oldest = min(
                        (v for v in versions if not v["IsDefaultVersion"]),
                        key=lambda v: v["CreateDate"],
                    )
                    iam.delete_policy_version(PolicyArn=id, VersionId=oldest["VersionId"])
                iam.create_policy_version(
                    PolicyArn=id, PolicyDocument=_document(news["policy"]), SetAsDefault=True
                )
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                iam.tag_policy(PolicyArn=id, Tags=aws_tags(to_set))
            if to_remove:
                iam.untag_policy(PolicyArn=id, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        iam = self.clients("iam")
        with applying(self.token, id, "read"):
            answer = _missing(iam.get_policy, PolicyArn=id)
            if answer is None:
                return None
            policy = answer["Policy"]
            version = iam.get_policy_version(PolicyArn=id, VersionId=policy["DefaultVersionId"])[
                "PolicyVersion"
            ]
        outputs = {
            **inputs,
            "name": policy["PolicyName"],
            "arn": id,
            "path": policy.get("Path", "/"),
            "policyId": policy["PolicyId"],
            "attachmentCount": float(policy.get("AttachmentCount", 0)),
            "policy": declared_json(version["Document"], inputs.get("policy")),
        }
        return with_tags(outputs, pulumi_tags(policy.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        iam = self.clients("iam")
        with applying(self.token, id, "delete"), already_gone(_GONE):
            for version in iam.list_policy_versions(PolicyArn=id)["Versions"]:
                if not version["IsDefaultVersion"]:
                    iam.delete_policy_version(PolicyArn=id, VersionId=version["VersionId"])
            iam.delete_policy(PolicyArn=id)


@dataclass(frozen=True)
class RolePolicyAttachment:
    """aws:iam/rolePolicyAttachment:RolePolicyAttachment; id is `<role>/<policy arn>`. Nothing changes in place."""

    clients: Clients
    token = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    replace_on = frozenset({"role", "policyArn"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        role, arn = str(inputs["role"]), str(inputs["policyArn"])
        with applying(self.token, name, "create"):
            self.clients("iam").attach_role_policy(RoleName=role, PolicyArn=arn)
        return f"{role}/{arn}", dict(inputs)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return dict(news)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        iam = self.clients("iam")
        with applying(self.token, id, "read"):
            answer = _missing(iam.list_attached_role_policies, RoleName=str(inputs["role"]))
        if answer is None:
            return None
        attached = {p["PolicyArn"] for p in answer["AttachedPolicies"]}
        return dict(inputs) if inputs["policyArn"] in attached else None

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("iam").detach_role_policy(
                RoleName=str(inputs["role"]), PolicyArn=str(inputs["policyArn"])
            )


@dataclass(frozen=True)
class RolePolicy:
    """aws:iam/rolePolicy:RolePolicy (inline); id is `<role>:<name>`. The document changes in place."""

    clients: Clients
    token = "aws:iam/rolePolicy:RolePolicy"
    replace_on = frozenset({"role", "name", "namePrefix"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        policy_name = physical_name(inputs, "name", name, 128)
        role = str(inputs["role"])
        self._put(name, role, policy_name, inputs, "create")
        id = f"{role}:{policy_name}"
        return id, present(self.read(id, {**inputs, "name": policy_name}), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        role, policy_name = id.split(":", 1)
        self._put(id, role, policy_name, news, "update")
        return present(self.read(id, {**news, "name": policy_name}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        role, policy_name = id.split(":", 1)
        with applying(self.token, id, "read"):
            answer = _missing(
                self.clients("iam").get_role_policy, RoleName=role, PolicyName=policy_name
            )
        if answer is None:
            return None
        return {
            **inputs,
            "name": policy_name,
            "policy": declared_json(answer["PolicyDocument"], inputs.get("policy")),
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        role, policy_name = id.split(":", 1)
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("iam").delete_role_policy(RoleName=role, PolicyName=policy_name)

    def _put(
        self, name: str, role: str, policy_name: str, inputs: dict[str, Any], action: str
    ) -> None:
        with applying(self.token, name, action):
            self.clients("iam").put_role_policy(
                RoleName=role, PolicyName=policy_name, PolicyDocument=_document(inputs["policy"])
            )


@dataclass(frozen=True)
class InstanceProfile:
    """aws:iam/instanceProfile:InstanceProfile; id is the name. The role changes in place."""

    clients: Clients
    token = "aws:iam/instanceProfile:InstanceProfile"
    replace_on = frozenset({"name", "namePrefix", "path"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.clients("iam")
        profile = physical_name(inputs, "name", name, 128)
        kwargs: dict[str, Any] = {"InstanceProfileName": profile, "Path": inputs.get("path") or "/"}
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            iam.create_instance_profile(**kwargs)
            if inputs.get("role"):
                iam.add_role_to_instance_profile(
                    InstanceProfileName=profile, RoleName=inputs["role"]
                )
        return profile, present(
            self.read(profile, {**inputs, "name": profile}), self.token, profile
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        iam = self.clients("iam")
        with applying(self.token, id, "update"):
            if news.get("role") != olds.get("role"):
                if olds.get("role"):
                    with already_gone(_GONE):
                        iam.remove_role_from_instance_profile(
                            InstanceProfileName=id, RoleName=olds["role"]
                        )
                if news.get("role"):
                    iam.add_role_to_instance_profile(InstanceProfileName=id, RoleName=news["role"])
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        iam = self.clients("iam")
        with applying(self.token, id, "read"):
            answer = _missing(iam.get_instance_profile, InstanceProfileName=id)
        if answer is None:
            return None
        profile = answer["InstanceProfile"]
        roles = profile.get("Roles", [])
        outputs = {
            **inputs,
            "name": profile["InstanceProfileName"],
            "arn": profile["Arn"],
            "uniqueId": profile["InstanceProfileId"],
            "path": profile.get("Path", "/"),
            "createDate": str(profile.get("CreateDate", "")),
        }
        if roles or "role" in inputs:
            outputs["role"] = roles[0]["RoleName"] if roles else ""
        return with_tags(outputs, pulumi_tags(profile.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        iam = self.clients("iam")
        with applying(self.token, id, "delete"), already_gone(_GONE):
            for role in iam.get_instance_profile(InstanceProfileName=id)["InstanceProfile"][
                "Roles"
            ]:
                iam.remove_role_from_instance_profile(
                    InstanceProfileName=id, RoleName=role["RoleName"]
                )
            iam.delete_instance_profile(InstanceProfileName=id)


@dataclass(frozen=True)
class User:
    """aws:iam/user:User; id is the user name. Tags change in place."""

    clients: Clients
    token = "aws:iam/user:User"
    replace_on = frozenset({"name", "path"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        user = physical_name(inputs, "name", name, 64)
        kwargs: dict[str, Any] = {"UserName": user, "Path": inputs.get("path") or "/"}
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            self.clients("iam").create_user(**kwargs)
        return user, present(self.read(user, {**inputs, "name": user}), self.token, user)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        iam = self.clients("iam")
        to_set, to_remove = tag_changes(olds, news)
        with applying(self.token, id, "update"):
            if to_set:
                iam.tag_user(UserName=id, Tags=aws_tags(to_set))
            if to_remove:
                iam.untag_user(UserName=id, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(self.clients("iam").get_user, UserName=id)
        if answer is None:
            return None
        user = answer["User"]
        outputs = {
            **inputs,
            "name": user["UserName"],
            "arn": user["Arn"],
            "uniqueId": user["UserId"],
            "path": user.get("Path", "/"),
        }
        return with_tags(outputs, pulumi_tags(user.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("iam").delete_user(UserName=id)


def ses_smtp_password_v4(secret: str, region: str) -> str:
    """The SES SMTP password of a secret access key (AWS's SigV4 derivation for SMTP).

    As terraform-provider-aws computes `ses_smtp_password_v4`
    (internal/service/iam/access_key.go, `sesSMTPPasswordFromSecretKeySigV4`):
    HMAC-SHA256 chained over a fixed date, the region, "ses", "aws4_request"
    and "SendRawEmail", prefixed with version byte 4, base64.
    """
    signature = ("AWS4" + secret).encode()
    for part in ("11111111", region, "ses", "aws4_request", "SendRawEmail"):
        signature = hmac.new(signature, part.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"\x04" + signature).decode()


@dataclass(frozen=True)
class AccessKey:
    """aws:iam/accessKey:AccessKey; id is the access key id. Only `status` changes in place.

    IAM shows a secret access key once, in the answer to CreateAccessKey:
    `secret` and `sesSmtpPasswordV4` are outputs of the create, which the
    engine keeps on later updates (`create_only_outputs`). They are secret
    outputs whatever the program says, as pulumi-aws makes every Sensitive
    attribute of the Terraform schema secret (access_key.go marks both), so
    the checkpoint holds them encrypted. A `pgpKey` is refused: the provider
    would store only the PGP-encrypted secret, which the engine cannot make.
    """

    clients: Clients
    token = "aws:iam/accessKey:AccessKey"
    replace_on = frozenset({"user", "pgpKey"})
    create_only_outputs = frozenset({"secret", "sesSmtpPasswordV4"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if inputs.get("pgpKey"):
            raise EngineError(
                f"{self.token} {name!r} sets pgpKey; the embedded engine cannot encrypt the "
                "secret with PGP, so no key was created. Use --engine pulumi.",
                resource=name,
                type=self.token,
            )
        iam = self.clients("iam")
        with applying(self.token, name, "create"):
            key = iam.create_access_key(UserName=inputs["user"])["AccessKey"]
            id = str(key["AccessKeyId"])
            # The provider creates the key Active, then deactivates it when asked.
            if inputs.get("status") and inputs["status"] != key.get("Status", "Active"):
                iam.update_access_key(
                    UserName=inputs["user"], AccessKeyId=id, Status=inputs["status"]
                )
        secret = str(key["SecretAccessKey"])
        outputs = present(self.read(id, inputs), self.token, id)
        outputs["secret"] = wrap_secret(secret)
        outputs["sesSmtpPasswordV4"] = wrap_secret(
            ses_smtp_password_v4(secret, str(iam.meta.region_name or "us-east-1"))
        )
        return id, outputs

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        status = news.get("status") or "Active"
        if status != (olds.get("status") or "Active"):
            with applying(self.token, id, "update"):
                self.clients("iam").update_access_key(
                    UserName=news["user"], AccessKeyId=id, Status=status
                )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(self.clients("iam").list_access_keys, UserName=inputs["user"])
        found = [k for k in (answer or {}).get("AccessKeyMetadata", []) if k["AccessKeyId"] == id]
        if not found:
            return None
        created = found[0].get("CreateDate")
        return {
            **inputs,
            "user": found[0]["UserName"],
            "status": found[0].get("Status", "Active"),
            # RFC 3339, as the provider writes create_date.
            "createDate": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else "",
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("iam").delete_access_key(UserName=inputs["user"], AccessKeyId=id)


@dataclass(frozen=True)
class Group:
    """aws:iam/group:Group; id is the group name. Nothing changes in place."""

    clients: Clients
    token = "aws:iam/group:Group"
    replace_on = frozenset({"name", "path"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group = physical_name(inputs, "name", name, 128)
        with applying(self.token, name, "create"):
            self.clients("iam").create_group(GroupName=group, Path=inputs.get("path") or "/")
        return group, present(self.read(group, {**inputs, "name": group}), self.token, group)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(self.clients("iam").get_group, GroupName=id)
        if answer is None:
            return None
        group = answer["Group"]
        return {
            **inputs,
            "name": group["GroupName"],
            "arn": group["Arn"],
            "uniqueId": group["GroupId"],
            "path": group.get("Path", "/"),
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("iam").delete_group(GroupName=id)


def appliers(clients: Clients) -> list[ResourceType]:
    """The IAM appliers."""
    return [
        Role(clients),
        Policy(clients),
        RolePolicyAttachment(clients),
        RolePolicy(clients),
        InstanceProfile(clients),
        User(clients),
        AccessKey(clients),
        Group(clients),
    ]
