"""Lambda functions and permissions, Step Functions state machines."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.assets import archive_zip, is_archive
from rollback.engine.embedded.resources.declared import declared_json
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import tag_changes, with_tags
from rollback.errors import EngineError

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_NO_FUNCTION = "ResourceNotFoundException"

# Pulumi function input -> Lambda configuration key, for plain values.
_SETTINGS = {
    "role": ("Role", str),
    "runtime": ("Runtime", str),
    "handler": ("Handler", str),
    "description": ("Description", str),
    "timeout": ("Timeout", int),
    "memorySize": ("MemorySize", int),
}


def _code(inputs: dict[str, Any]) -> dict[str, Any]:
    """The Code parameter: a zipped archive, an S3 object or an image."""
    code = inputs.get("code")
    if isinstance(code, dict) and is_archive(code):
        return {"ZipFile": archive_zip(code, Path.cwd())}
    if inputs.get("s3Bucket"):
        location = {"S3Bucket": inputs["s3Bucket"], "S3Key": inputs["s3Key"]}
        if inputs.get("s3ObjectVersion"):
            location["S3ObjectVersion"] = inputs["s3ObjectVersion"]
        return location
    if inputs.get("imageUri"):
        return {"ImageUri": inputs["imageUri"]}
    raise EngineError(
        "a Lambda function needs `code` (an archive), `s3Bucket`/`s3Key` or `imageUri`.",
        type="aws:lambda/function:Function",
    )


def _environment(inputs: dict[str, Any]) -> dict[str, Any]:
    variables = (inputs.get("environment") or {}).get("variables") or {}
    return {"Variables": {str(k): str(v) for k, v in variables.items()}}


@dataclass(frozen=True)
class Function:
    """aws:lambda/function:Function; id is the function name.

    A new archive (its content hash) updates the code; role, runtime,
    handler, timeout, memory, description and environment change in place.
    """

    clients: Clients
    token = "aws:lambda/function:Function"
    replace_on = frozenset({"name", "packageType", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        function = physical_name(inputs, "name", name, 64)
        kwargs: dict[str, Any] = {
            "FunctionName": function,
            "Code": _code(inputs),
            "Environment": _environment(inputs),
            "Publish": bool(inputs.get("publish")),
            **self._settings(inputs),
        }
        if inputs.get("tags"):
            kwargs["Tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
        if inputs.get("packageType"):
            kwargs["PackageType"] = inputs["packageType"]
        with applying(self.token, name, "create"):
            self.clients("lambda").create_function(**kwargs)
        return function, present(
            self.read(function, {**inputs, "name": function}), self.token, function
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        client = self.clients("lambda")
        with applying(self.token, id, "update"):
            if any(news.get(k) != olds.get(k) for k in ("code", "s3Bucket", "s3Key", "imageUri")):
                client.update_function_code(FunctionName=id, **_code(news))
            settings = self._settings(news)
            if any(news.get(k) != olds.get(k) for k in (*_SETTINGS, "environment")):
                client.update_function_configuration(
                    FunctionName=id, Environment=_environment(news), **settings
                )
            arn = client.get_function(FunctionName=id)["Configuration"]["FunctionArn"]
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                client.tag_resource(Resource=arn, Tags=to_set)
            if to_remove:
                client.untag_resource(Resource=arn, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        client = self.clients("lambda")
        with applying(self.token, id, "read"):
            try:
                answer = client.get_function(FunctionName=id)
            except ClientError as exc:
                if aws_code(exc) == _NO_FUNCTION:
                    return None
                raise
        configuration = answer["Configuration"]
        arn = configuration["FunctionArn"]
        region = client.meta.region_name
        outputs: dict[str, Any] = {
            **inputs,
            "name": configuration["FunctionName"],
            "arn": arn,
            "qualifiedArn": f"{arn}:{configuration.get('Version', '$LATEST')}",
            "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            "version": configuration.get("Version", "$LATEST"),
            "lastModified": configuration.get("LastModified", ""),
            "sourceCodeHash": configuration.get("CodeSha256", ""),
            "sourceCodeSize": float(configuration.get("CodeSize", 0)),
        }
        for key, (parameter, kind) in _SETTINGS.items():
            if key in inputs and parameter in configuration:
                outputs[key] = (
                    float(configuration[parameter]) if kind is int else configuration[parameter]
                )
        if "environment" in inputs:
            variables = configuration.get("Environment", {}).get("Variables", {})
            outputs["environment"] = {**(inputs.get("environment") or {}), "variables": variables}
        code = inputs.get("code")
        if isinstance(code, dict) and is_archive(code):
            # The deployed package differs from the declared archive: changed behind the stack.
            try:
                expected = base64.b64encode(
                    hashlib.sha256(archive_zip(code, Path.cwd())).digest()
                ).decode()
            except OSError:  # read outside a run: the program's files are not at hand
                expected = outputs["sourceCodeHash"]
            if expected != outputs["sourceCodeHash"]:
                outputs["code"] = {"sourceCodeHash": outputs["sourceCodeHash"]}
        return with_tags(outputs, {str(k): str(v) for k, v in (answer.get("Tags") or {}).items()})

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_NO_FUNCTION):
            self.clients("lambda").delete_function(FunctionName=id)

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        return {
            parameter: kind(inputs[key])
            for key, (parameter, kind) in _SETTINGS.items()
            if inputs.get(key) is not None
        }


@dataclass(frozen=True)
class Permission:
    """aws:lambda/permission:Permission; id is the statement id. Every input forces a new statement."""

    clients: Clients
    token = "aws:lambda/permission:Permission"
    replace_on = frozenset(
        {
            "action",
            "function",
            "principal",
            "sourceArn",
            "sourceAccount",
            "statementId",
            "statementIdPrefix",
            "qualifier",
            "eventSourceToken",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        statement = physical_name(
            {"sid": inputs.get("statementId"), "sidPrefix": inputs.get("statementIdPrefix")},
            "sid",
            name,
            100,
        )
        kwargs: dict[str, Any] = {
            "FunctionName": inputs["function"],
            "StatementId": statement,
            "Action": inputs["action"],
            "Principal": inputs["principal"],
        }
        for key, parameter in (
            ("sourceArn", "SourceArn"),
            ("sourceAccount", "SourceAccount"),
            ("qualifier", "Qualifier"),
            ("eventSourceToken", "EventSourceToken"),
        ):
            if inputs.get(key):
                kwargs[parameter] = inputs[key]
        with applying(self.token, name, "create"):
            self.clients("lambda").add_permission(**kwargs)
        outputs = {**inputs, "statementId": statement}
        return statement, present(self.read(statement, outputs), self.token, statement)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, {**news, "statementId": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                policy = self.clients("lambda").get_policy(FunctionName=inputs["function"])[
                    "Policy"
                ]
            except ClientError as exc:
                if aws_code(exc) == _NO_FUNCTION:
                    return None
                raise
        statements = json.loads(policy).get("Statement", [])
        if not any(s.get("Sid") == id for s in statements):
            return None
        return {**inputs, "statementId": id}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_NO_FUNCTION):
            self.clients("lambda").remove_permission(
                FunctionName=inputs["function"], StatementId=id
            )


@dataclass(frozen=True)
class StateMachine:
    """aws:sfn/stateMachine:StateMachine; id is the ARN. Definition, role and tags change in place."""

    clients: Clients
    token = "aws:sfn/stateMachine:StateMachine"
    replace_on = frozenset({"name", "namePrefix", "type", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        machine = physical_name(inputs, "name", name, 80)
        kwargs: dict[str, Any] = {
            "name": machine,
            "definition": inputs["definition"],
            "roleArn": inputs["roleArn"],
            "type": inputs.get("type") or "STANDARD",
        }
        if inputs.get("tags"):
            kwargs["tags"] = [{"key": str(k), "value": str(v)} for k, v in inputs["tags"].items()]
        with applying(self.token, name, "create"):
            arn = self.clients("stepfunctions").create_state_machine(**kwargs)["stateMachineArn"]
        return arn, present(self.read(arn, {**inputs, "name": machine}), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        client = self.clients("stepfunctions")
        with applying(self.token, id, "update"):
            if (news.get("definition"), news.get("roleArn")) != (
                olds.get("definition"),
                olds.get("roleArn"),
            ):
                client.update_state_machine(
                    stateMachineArn=id, definition=news["definition"], roleArn=news["roleArn"]
                )
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                client.tag_resource(
                    resourceArn=id, tags=[{"key": k, "value": v} for k, v in to_set.items()]
                )
            if to_remove:
                client.untag_resource(resourceArn=id, tagKeys=to_remove)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        client = self.clients("stepfunctions")
        with applying(self.token, id, "read"):
            try:
                machine = client.describe_state_machine(stateMachineArn=id)
            except ClientError as exc:
                if aws_code(exc) in ("StateMachineDoesNotExist", "InvalidArn"):
                    return None
                raise
            tags = client.list_tags_for_resource(resourceArn=id).get("tags", [])
        if machine.get("status") == "DELETING":
            return None
        outputs = {
            **inputs,
            "name": machine["name"],
            "arn": id,
            "roleArn": machine.get("roleArn", ""),
            "definition": declared_json(machine.get("definition", ""), inputs.get("definition")),
            "status": machine.get("status", ""),
            "creationDate": str(machine.get("creationDate", "")),
        }
        return with_tags(outputs, {str(t["key"]): str(t.get("value", "")) for t in tags})

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("StateMachineDoesNotExist"):
            self.clients("stepfunctions").delete_state_machine(stateMachineArn=id)


def appliers(clients: Clients) -> list[ResourceType]:
    """The Lambda and Step Functions appliers."""
    return [Function(clients), Permission(clients), StateMachine(clients)]
