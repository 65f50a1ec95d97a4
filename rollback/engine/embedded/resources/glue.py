"""Glue: catalog databases, connections, crawlers, jobs and triggers.

Follows terraform-provider-aws (internal/service/glue/catalog_database.go,
connection.go, crawler.go, job.go, trigger.go), which pulumi-aws bridges:
databases and connections have the id `<catalog id>:<name>`, crawlers, jobs
and triggers their name; ARNs are `arn:<partition>:glue:<region>:<account>:
<kind>/<name>`; tags go through TagResource/UntagResource on that ARN. Every
type is auto-named as pulumi-aws names any input `name` (provider/autonaming.go:
the logical name, "-", seven random hex characters).
Create and update outputs hold nested blocks whole (the job's command name,
defaults AWS filled in); `read` gives declared blocks only their declared
keys, so that AWS's additions are not drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.checking import AutoName
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import partition_of, physical_name
from rollback.engine.embedded.resources.tagging import tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = "EntityNotFoundException"


def _arn(clients: Clients, kind: str, name: str) -> str:
    region = clients("glue").meta.region_name
    return f"arn:{partition_of(region)}:glue:{region}:{clients.account()}:{kind}/{name}"


def _tags(inputs: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (inputs.get("tags") or {}).items()}


def _retag(glue: Any, arn: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        glue.tag_resource(ResourceArn=arn, TagsToAdd=to_set)
    if to_remove:
        glue.untag_resource(ResourceArn=arn, TagsToRemove=to_remove)


def _live_tags(glue: Any, arn: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in glue.get_tags(ResourceArn=arn).get("Tags", {}).items()}


def _camel(value: Any) -> Any:
    """An API structure with Pulumi's property names (PascalCase keys as camelCase)."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # numbers as the SDK sends them
    return value


def _pascal(value: Any) -> Any:
    """A declared structure as the API takes it: PascalCase keys, integral numbers as ints, no nulls."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _shaped(live: Any, declared: Any, whole: bool) -> Any:
    """A live block in the declared shape for `read`, whole for create and update."""
    if whole or declared is None:
        return live
    if isinstance(live, dict) and isinstance(declared, dict):
        return {k: _shaped(live[k], declared[k], whole) for k in declared if k in live}
    if isinstance(live, list) and isinstance(declared, list) and len(live) == len(declared):
        return [_shaped(a, b, whole) for a, b in zip(live, declared, strict=True)]
    return live


@dataclass(frozen=True)
class CatalogDatabase:
    """aws:glue/catalogDatabase:CatalogDatabase; id is `<catalog id>:<name>`.

    Description, location, parameters and tags change in place.
    """

    clients: Clients
    token = "aws:glue/catalogDatabase:CatalogDatabase"
    autoname = AutoName("name", 255)
    replace_on = frozenset({"name", "catalogId", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        database = physical_name(inputs, "name", name, 255)
        catalog = str(inputs.get("catalogId") or self.clients.account())
        kwargs: dict[str, Any] = {
            "CatalogId": catalog,
            "DatabaseInput": self._input(database, inputs),
        }
        if inputs.get("tags"):
            kwargs["Tags"] = _tags(inputs)
        with applying(self.token, name, "create"):
            self.clients("glue").create_database(**kwargs)
        id = f"{catalog}:{database}"
        return id, present(self.read(id, {**inputs, "name": database}), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        catalog, database = id.split(":", 1)
        glue = self.clients("glue")
        with applying(self.token, id, "update"):
            keys = ("description", "locationUri", "parameters")
            if any(news.get(k) != olds.get(k) for k in keys):
                glue.update_database(
                    CatalogId=catalog, Name=database, DatabaseInput=self._input(database, news)
                )
            _retag(glue, _arn(self.clients, "database", database), olds, news)
        return present(self.read(id, {**news, "name": database}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        catalog, database = id.split(":", 1)
        glue = self.clients("glue")
        arn = _arn(self.clients, "database", database)
        with applying(self.token, id, "read"):
            try:
                found = glue.get_database(CatalogId=catalog, Name=database)["Database"]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
            tags = _live_tags(glue, arn)
        outputs = {
            **inputs,
            "name": found["Name"],
            "catalogId": found.get("CatalogId") or catalog,
            "arn": arn,
            "description": found.get("Description", ""),
            "locationUri": found.get("LocationUri", ""),
            "parameters": dict(found.get("Parameters") or {}),
        }
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        catalog, database = id.split(":", 1)
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("glue").delete_database(CatalogId=catalog, Name=database)

    @staticmethod
    def _input(database: str, inputs: dict[str, Any]) -> dict[str, Any]:
        declared: dict[str, Any] = {"Name": database}
        for key, parameter in (
            ("description", "Description"),
            ("locationUri", "LocationUri"),
            ("parameters", "Parameters"),
        ):
            if inputs.get(key):
                declared[parameter] = inputs[key]
        return declared


# physical_connection_requirements: Pulumi name -> API name (not a plain case change).
_REQUIREMENTS = {
    "availabilityZone": "AvailabilityZone",
    "securityGroupIdLists": "SecurityGroupIdList",
    "subnetId": "SubnetId",
}


@dataclass(frozen=True)
class Connection:
    """aws:glue/connection:Connection; id is `<catalog id>:<name>`.

    Everything but the name and catalog changes in place (UpdateConnection).
    The connection properties hold credentials: pulumi-aws marks them an
    additional secret output, and drift checks skip declared secrets.
    """

    clients: Clients
    token = "aws:glue/connection:Connection"
    autoname = AutoName("name", 255)
    replace_on = frozenset({"name", "catalogId", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        connection = physical_name(inputs, "name", name, 255)
        catalog = str(inputs.get("catalogId") or self.clients.account())
        kwargs: dict[str, Any] = {
            "CatalogId": catalog,
            "ConnectionInput": self._input(connection, inputs),
        }
        if inputs.get("tags"):
            kwargs["Tags"] = _tags(inputs)
        with applying(self.token, name, "create"):
            self.clients("glue").create_connection(**kwargs)
        id = f"{catalog}:{connection}"
        return id, present(self._outputs(id, {**inputs, "name": connection}, True), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        catalog, connection = id.split(":", 1)
        glue = self.clients("glue")
        with applying(self.token, id, "update"):
            if self._input(connection, olds) != self._input(connection, news):
                glue.update_connection(
                    CatalogId=catalog,
                    Name=connection,
                    ConnectionInput=self._input(connection, news),
                )
            _retag(glue, _arn(self.clients, "connection", connection), olds, news)
        return present(self._outputs(id, {**news, "name": connection}, True), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        return self._outputs(id, inputs, False)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        catalog, connection = id.split(":", 1)
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("glue").delete_connection(CatalogId=catalog, ConnectionName=connection)

    def _outputs(self, id: str, inputs: dict[str, Any], whole: bool) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        catalog, connection = id.split(":", 1)
        glue = self.clients("glue")
        arn = _arn(self.clients, "connection", connection)
        with applying(self.token, id, "read"):
            try:
                found = glue.get_connection(CatalogId=catalog, Name=connection, HidePassword=False)[
                    "Connection"
                ]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
            tags = _live_tags(glue, arn)
        live_requirements = found.get("PhysicalConnectionRequirements") or {}
        requirements = {
            key: (
                in_declared_order(
                    list(live_requirements.get(parameter) or []),
                    (inputs.get("physicalConnectionRequirements") or {}).get(key),
                )
                if key == "securityGroupIdLists"
                else live_requirements.get(parameter, "")
            )
            for key, parameter in _REQUIREMENTS.items()
        }
        outputs = {
            **inputs,
            "name": found["Name"],
            "catalogId": catalog,
            "arn": arn,
            "connectionType": found.get("ConnectionType") or inputs.get("connectionType") or "JDBC",
            "connectionProperties": dict(found.get("ConnectionProperties") or {}),
            "description": found.get("Description") or "",
            "matchCriterias": list(found.get("MatchCriteria") or []),
        }
        if live_requirements or "physicalConnectionRequirements" in inputs:
            outputs["physicalConnectionRequirements"] = _shaped(
                requirements, inputs.get("physicalConnectionRequirements"), whole
            )
        return with_tags(outputs, tags)

    @staticmethod
    def _input(connection: str, inputs: dict[str, Any]) -> dict[str, Any]:
        declared: dict[str, Any] = {
            "Name": connection,
            # The provider's default type.
            "ConnectionType": inputs.get("connectionType") or "JDBC",
            "ConnectionProperties": {
                str(k): str(v) for k, v in (inputs.get("connectionProperties") or {}).items()
            },
        }
        if inputs.get("description"):
            declared["Description"] = inputs["description"]
        if inputs.get("matchCriterias"):
            declared["MatchCriteria"] = list(inputs["matchCriterias"])
        requirements = inputs.get("physicalConnectionRequirements")
        if requirements:
            declared["PhysicalConnectionRequirements"] = {
                parameter: requirements[key]
                for key, parameter in _REQUIREMENTS.items()
                if requirements.get(key) is not None
            }
        return declared


# Crawler target lists: Pulumi input -> CreateCrawler Targets key.
_TARGETS = {
    "s3Targets": "S3Targets",
    "jdbcTargets": "JdbcTargets",
    "dynamodbTargets": "DynamoDBTargets",
    "catalogTargets": "CatalogTargets",
    "deltaTargets": "DeltaTargets",
}
# Plain crawler settings: Pulumi input -> API parameter.
_CRAWLER_SETTINGS = {
    "databaseName": "DatabaseName",
    "role": "Role",
    "description": "Description",
    "tablePrefix": "TablePrefix",
    "configuration": "Configuration",
    "securityConfiguration": "CrawlerSecurityConfiguration",
}


@dataclass(frozen=True)
class Crawler:
    """aws:glue/crawler:Crawler; id is the name. Everything but the name changes in place."""

    clients: Clients
    token = "aws:glue/crawler:Crawler"
    autoname = AutoName("name", 255)
    replace_on = frozenset({"name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        crawler = physical_name(inputs, "name", name, 255)
        kwargs = {"Name": crawler, **self._settings(inputs)}
        if inputs.get("tags"):
            kwargs["Tags"] = _tags(inputs)
        with applying(self.token, name, "create"):
            self.clients("glue").create_crawler(**kwargs)
        return crawler, present(
            self._outputs(crawler, {**inputs, "name": crawler}, True), self.token, crawler
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        glue = self.clients("glue")
        with applying(self.token, id, "update"):
            if self._settings(olds) != self._settings(news):
                glue.update_crawler(Name=id, **self._settings(news))
            _retag(glue, _arn(self.clients, "crawler", id), olds, news)
        return present(self._outputs(id, {**news, "name": id}, True), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        return self._outputs(id, inputs, False)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("glue").delete_crawler(Name=id)

    def _outputs(self, id: str, inputs: dict[str, Any], whole: bool) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        glue = self.clients("glue")
        arn = _arn(self.clients, "crawler", id)
        with applying(self.token, id, "read"):
            try:
                found = glue.get_crawler(Name=id)["Crawler"]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
            tags = _live_tags(glue, arn)
        targets = found.get("Targets") or {}
        outputs: dict[str, Any] = {
            **inputs,
            "name": found["Name"],
            "arn": arn,
            "schedule": (found.get("Schedule") or {}).get("ScheduleExpression", ""),
            "classifiers": list(found.get("Classifiers") or []),
        }
        for key, parameter in _CRAWLER_SETTINGS.items():
            if parameter in found:
                outputs[key] = found[parameter]
        for key, parameter in _TARGETS.items():
            if parameter in targets or key in inputs:
                outputs[key] = _shaped(_camel(targets.get(parameter) or []), inputs.get(key), whole)
        for key, parameter in (
            ("schemaChangePolicy", "SchemaChangePolicy"),
            ("recrawlPolicy", "RecrawlPolicy"),
            ("lineageConfiguration", "LineageConfiguration"),
        ):
            if parameter in found or key in inputs:
                outputs[key] = _shaped(_camel(found.get(parameter) or {}), inputs.get(key), whole)
        return with_tags(outputs, tags)

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {
            parameter: inputs[key]
            for key, parameter in _CRAWLER_SETTINGS.items()
            if inputs.get(key)
        }
        settings["Targets"] = {
            parameter: _pascal(inputs[key])
            for key, parameter in _TARGETS.items()
            if inputs.get(key)
        }
        if inputs.get("schedule"):
            settings["Schedule"] = inputs["schedule"]
        if inputs.get("classifiers"):
            settings["Classifiers"] = list(inputs["classifiers"])
        for key, parameter in (
            ("schemaChangePolicy", "SchemaChangePolicy"),
            ("recrawlPolicy", "RecrawlPolicy"),
            ("lineageConfiguration", "LineageConfiguration"),
        ):
            if inputs.get(key):
                settings[parameter] = _pascal(inputs[key])
        return settings


# Plain job settings: Pulumi input -> CreateJob / JobUpdate parameter.
_JOB_SETTINGS = {
    "roleArn": "Role",
    "description": "Description",
    "glueVersion": "GlueVersion",
    "workerType": "WorkerType",
    "numberOfWorkers": "NumberOfWorkers",
    "maxRetries": "MaxRetries",
    "timeout": "Timeout",
    "maxCapacity": "MaxCapacity",
    "securityConfiguration": "SecurityConfiguration",
    "executionClass": "ExecutionClass",
    "defaultArguments": "DefaultArguments",
    "nonOverridableArguments": "NonOverridableArguments",
}


@dataclass(frozen=True)
class Job:
    """aws:glue/job:Job; id is the name. Everything but the name changes in place (UpdateJob)."""

    clients: Clients
    token = "aws:glue/job:Job"
    autoname = AutoName("name", 255)
    replace_on = frozenset({"name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        job = physical_name(inputs, "name", name, 255)
        kwargs = {"Name": job, **self._settings(inputs)}
        if inputs.get("tags"):
            kwargs["Tags"] = _tags(inputs)
        with applying(self.token, name, "create"):
            self.clients("glue").create_job(**kwargs)
        return job, present(self._outputs(job, {**inputs, "name": job}, True), self.token, job)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        glue = self.clients("glue")
        with applying(self.token, id, "update"):
            if self._settings(olds) != self._settings(news):
                glue.update_job(JobName=id, JobUpdate=self._settings(news))
            _retag(glue, _arn(self.clients, "job", id), olds, news)
        return present(self._outputs(id, {**news, "name": id}, True), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        return self._outputs(id, inputs, False)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("glue").delete_job(JobName=id)

    def _outputs(self, id: str, inputs: dict[str, Any], whole: bool) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        glue = self.clients("glue")
        arn = _arn(self.clients, "job", id)
        with applying(self.token, id, "read"):
            try:
                found = glue.get_job(JobName=id)["Job"]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
            tags = _live_tags(glue, arn)
        outputs: dict[str, Any] = {**inputs, "name": found["Name"], "arn": arn}
        for key, parameter in _JOB_SETTINGS.items():
            if parameter in found:
                value = found[parameter]
                outputs[key] = float(value) if isinstance(value, int) else value
        outputs["command"] = _shaped(
            _camel(found.get("Command") or {}), inputs.get("command"), whole
        )
        outputs["connections"] = in_declared_order(
            list((found.get("Connections") or {}).get("Connections", [])),
            inputs.get("connections"),
        )
        if "ExecutionProperty" in found or "executionProperty" in inputs:
            outputs["executionProperty"] = _shaped(
                _camel(found.get("ExecutionProperty") or {}), inputs.get("executionProperty"), whole
            )
        return with_tags(outputs, tags)

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {
            parameter: _pascal(inputs[key]) if key not in _ARGUMENTS else dict(inputs[key])
            for key, parameter in _JOB_SETTINGS.items()
            if inputs.get(key) is not None and inputs.get(key) != {}
        }
        command = dict(inputs.get("command") or {})
        # The provider's default command: a Spark ETL job.
        command.setdefault("name", "glueetl")
        settings["Command"] = _pascal(command)
        if inputs.get("connections"):
            settings["Connections"] = {"Connections": list(inputs["connections"])}
        if inputs.get("executionProperty"):
            settings["ExecutionProperty"] = _pascal(inputs["executionProperty"])
        return settings


# Maps whose keys are the user's (argument names), not property names to re-case.
_ARGUMENTS = {"defaultArguments", "nonOverridableArguments"}


def _actions(actions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    aws = []
    for action in actions or []:
        entry: dict[str, Any] = {}
        for key, value in action.items():
            if value is None:
                continue
            if key == "arguments":
                entry["Arguments"] = dict(value)
            else:
                entry[key[:1].upper() + key[1:]] = _pascal(value)
        aws.append(entry)
    return aws


def _live_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pulumi = []
    for action in actions:
        entry: dict[str, Any] = {}
        for key, value in action.items():
            if key == "Arguments":
                entry["arguments"] = dict(value)
            else:
                entry[key[:1].lower() + key[1:]] = _camel(value)
        pulumi.append(entry)
    return pulumi


@dataclass(frozen=True)
class Trigger:
    """aws:glue/trigger:Trigger; id is the name.

    As the provider, an enabled trigger that is not ON_DEMAND starts on
    creation, and `enabled` follows the trigger's state (Start/StopTrigger).
    Actions, schedule, predicate and description change in place.
    """

    clients: Clients
    token = "aws:glue/trigger:Trigger"
    autoname = AutoName("name", 255)
    replace_on = frozenset({"name", "type", "workflowName", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        trigger = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {"Name": trigger, "Type": inputs["type"], **self._update(inputs)}
        if inputs.get("workflowName"):
            kwargs["WorkflowName"] = inputs["workflowName"]
        enabled = bool(inputs.get("enabled", True))
        kwargs["StartOnCreation"] = bool(
            inputs.get("startOnCreation") or (enabled and inputs["type"] != "ON_DEMAND")
        )
        if inputs.get("tags"):
            kwargs["Tags"] = _tags(inputs)
        with applying(self.token, name, "create"):
            self.clients("glue").create_trigger(**kwargs)
        return trigger, present(
            self.read(trigger, {**inputs, "name": trigger}), self.token, trigger
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        glue = self.clients("glue")
        with applying(self.token, id, "update"):
            if self._update(olds) != self._update(news):
                glue.update_trigger(Name=id, TriggerUpdate=self._update(news))
            old_enabled, new_enabled = (
                bool(olds.get("enabled", True)),
                bool(news.get("enabled", True)),
            )
            if new_enabled != old_enabled:
                if new_enabled:
                    glue.start_trigger(Name=id)
                else:
                    glue.stop_trigger(Name=id)
            _retag(glue, _arn(self.clients, "trigger", id), olds, news)
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        glue = self.clients("glue")
        arn = _arn(self.clients, "trigger", id)
        with applying(self.token, id, "read"):
            try:
                found = glue.get_trigger(Name=id)["Trigger"]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
            tags = _live_tags(glue, arn)
        state = found.get("State", "")
        outputs: dict[str, Any] = {
            **inputs,
            "name": found["Name"],
            "arn": arn,
            "type": found.get("Type", ""),
            "state": state,
            "enabled": state in ("ACTIVATED", "ACTIVATING")
            or (found.get("Type") == "ON_DEMAND" and bool(inputs.get("enabled", True))),
            "actions": _shaped(
                _live_actions(found.get("Actions") or []), inputs.get("actions"), False
            ),
            "description": found.get("Description", ""),
            "schedule": found.get("Schedule", ""),
            "workflowName": found.get("WorkflowName", ""),
        }
        if found.get("Predicate") or "predicate" in inputs:
            outputs["predicate"] = _shaped(
                _camel(found.get("Predicate") or {}), inputs.get("predicate"), False
            )
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(_GONE):
            self.clients("glue").delete_trigger(Name=id)

    @staticmethod
    def _update(inputs: dict[str, Any]) -> dict[str, Any]:
        """The settings UpdateTrigger's TriggerUpdate takes (CreateTrigger takes them too)."""
        update: dict[str, Any] = {"Actions": _actions(inputs.get("actions"))}
        for key, parameter in (("description", "Description"), ("schedule", "Schedule")):
            if inputs.get(key):
                update[parameter] = inputs[key]
        if inputs.get("predicate"):
            update["Predicate"] = _pascal(inputs["predicate"])
        return update


def appliers(clients: Clients) -> list[ResourceType]:
    """The Glue appliers."""
    return [
        CatalogDatabase(clients),
        Connection(clients),
        Crawler(clients),
        Job(clients),
        Trigger(clients),
    ]
