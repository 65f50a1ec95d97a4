"""ECR: repositories, their lifecycle policies and repository policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_json
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_NO_REPOSITORY = "RepositoryNotFoundException"


@dataclass(frozen=True)
class Repository:
    """aws:ecr/repository:Repository; id is the name. Tag mutability, scanning and tags change in place."""

    clients: Clients
    token = "aws:ecr/repository:Repository"
    replace_on = frozenset({"name", "encryptionConfigurations", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        repository = physical_name(inputs, "name", name.lower(), 256)
        kwargs: dict[str, Any] = {
            "repositoryName": repository,
            "imageTagMutability": inputs.get("imageTagMutability") or "MUTABLE",
        }
        scanning = inputs.get("imageScanningConfiguration")
        if scanning:
            kwargs["imageScanningConfiguration"] = {"scanOnPush": bool(scanning.get("scanOnPush"))}
        if inputs.get("tags"):
            kwargs["tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            self.clients("ecr").create_repository(**kwargs)
        return repository, present(
            self.read(repository, {**inputs, "name": repository}), self.token, repository
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ecr = self.clients("ecr")
        with applying(self.token, id, "update"):
            if news.get("imageTagMutability") != olds.get("imageTagMutability"):
                ecr.put_image_tag_mutability(
                    repositoryName=id,
                    imageTagMutability=news.get("imageTagMutability") or "MUTABLE",
                )
            scanning = news.get("imageScanningConfiguration")
            if scanning != olds.get("imageScanningConfiguration"):
                ecr.put_image_scanning_configuration(
                    repositoryName=id,
                    imageScanningConfiguration={
                        "scanOnPush": bool((scanning or {}).get("scanOnPush"))
                    },
                )
            arn = self._describe(id)["repositoryArn"]
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                ecr.tag_resource(resourceArn=arn, tags=aws_tags(to_set))
            if to_remove:
                ecr.untag_resource(resourceArn=arn, tagKeys=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        ecr = self.clients("ecr")
        with applying(self.token, id, "read"):
            try:
                repository = self._describe(id)
            except ClientError as exc:
                if aws_code(exc) == _NO_REPOSITORY:
                    return None
                raise
            tags = ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"]
        outputs = {
            **inputs,
            "name": repository["repositoryName"],
            "arn": repository["repositoryArn"],
            "registryId": repository["registryId"],
            "repositoryUrl": repository["repositoryUri"],
            "imageTagMutability": repository.get("imageTagMutability", "MUTABLE"),
        }
        if "imageScanningConfiguration" in inputs:
            outputs["imageScanningConfiguration"] = {
                "scanOnPush": bool(
                    repository.get("imageScanningConfiguration", {}).get("scanOnPush", False)
                )
            }
        return with_tags(outputs, pulumi_tags(tags))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_NO_REPOSITORY):
            self.clients("ecr").delete_repository(
                repositoryName=id, force=bool(inputs.get("forceDelete"))
            )

    def _describe(self, id: str) -> dict[str, Any]:
        repositories: list[dict[str, Any]] = self.clients("ecr").describe_repositories(
            repositoryNames=[id]
        )["repositories"]
        return repositories[0]


@dataclass(frozen=True)
class _RepositoryDocument:
    """A JSON policy attached to a repository; id is the repository name. The policy changes in place."""

    clients: Clients
    token: str
    put: str
    get: str
    remove: str
    missing: str
    replace_on = frozenset({"repository", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        repository = str(inputs["repository"])
        self._put(name, repository, inputs, "create")
        return repository, present(self.read(repository, inputs), self.token, repository)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._put(id, id, news, "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                answer = getattr(self.clients("ecr"), self.get)(repositoryName=id)
            except ClientError as exc:
                if aws_code(exc) in (_NO_REPOSITORY, self.missing):
                    return None
                raise
        text = answer.get("lifecyclePolicyText") or answer.get("policyText")
        return {
            **inputs,
            "repository": id,
            "registryId": answer.get("registryId", ""),
            "policy": declared_json(text, inputs.get("policy")),
        }

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_NO_REPOSITORY, self.missing):
            getattr(self.clients("ecr"), self.remove)(repositoryName=id)

    def _put(self, name: str, repository: str, inputs: dict[str, Any], action: str) -> None:
        text_key = "lifecyclePolicyText" if "lifecycle" in self.put else "policyText"
        with applying(self.token, name, action):
            getattr(self.clients("ecr"), self.put)(
                repositoryName=repository, **{text_key: str(inputs["policy"])}
            )


def appliers(clients: Clients) -> list[ResourceType]:
    """The ECR appliers."""
    return [
        Repository(clients),
        _RepositoryDocument(
            clients,
            "aws:ecr/lifecyclePolicy:LifecyclePolicy",
            "put_lifecycle_policy",
            "get_lifecycle_policy",
            "delete_lifecycle_policy",
            "LifecyclePolicyNotFoundException",
        ),
        _RepositoryDocument(
            clients,
            "aws:ecr/repositoryPolicy:RepositoryPolicy",
            "set_repository_policy",
            "get_repository_policy",
            "delete_repository_policy",
            "RepositoryPolicyNotFoundException",
        ),
    ]
