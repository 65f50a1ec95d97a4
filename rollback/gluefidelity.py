"""Glue actions moto 5.x lacks that the embedded engine's Glue appliers call.

moto creates, reads and deletes Glue crawlers, jobs and triggers, but has no
DeleteConnection (so a stack holding a connection could never be destroyed,
nor the connection replaced) and no UpdateConnection, UpdateCrawler,
UpdateJob or UpdateTrigger (so nothing could change in place). The embedded
cloud (`rollback.cloudserver`, and the test suite's moto server) adds them as
the Glue API reference describes them: each update replaces the definition
with the one given (UpdateJob: "overwrites all previous job definition
settings"), keeps the name, creation time and tags, and an unknown name is
moto's own EntityNotFoundException.
"""

from __future__ import annotations

from typing import Any

_installed = False


def _snake(name: str) -> str:
    from moto.core.utils import camelcase_to_underscores

    return str(camelcase_to_underscores(name))


def install() -> None:
    """Add the actions to moto's Glue responses once per process (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.core.responses import ActionResult, EmptyResult
    from moto.glue.exceptions import EntityNotFoundException
    from moto.glue.models import FakeConnection
    from moto.glue.responses import GlueResponse
    from moto.glue.utils import Action, Predicate

    def delete_connection(self: Any) -> Any:
        name = self.parameters.get("ConnectionName")
        if self.glue_backend.connections.pop(name, None) is None:
            raise EntityNotFoundException(f"Connection {name} not found")
        return EmptyResult()

    def update_connection(self: Any) -> Any:
        name = self.parameters.get("Name")
        old = self.glue_backend.connections.get(name)
        if old is None:
            raise EntityNotFoundException(f"Connection {name} not found")
        connection = FakeConnection(
            self.glue_backend,
            old.catalog_id,
            {**self.parameters.get("ConnectionInput", {}), "Name": name},
            self.glue_backend.get_tags(old.arn),
        )
        connection.created_time = old.created_time
        self.glue_backend.connections[name] = connection
        return EmptyResult()

    def update_job(self: Any) -> Any:
        name = self.parameters.get("JobName")
        job = self.glue_backend.get_job(name)
        update = self.parameters.get("JobUpdate", {})
        for attribute in (
            "description",
            "log_uri",
            "role",
            "command",
            "non_overridable_arguments",
            "connections",
            "max_retries",
            "allocated_capacity",
            "timeout",
            "max_capacity",
            "security_configuration",
            "notification_property",
            "glue_version",
            "number_of_workers",
            "worker_type",
            "code_gen_configuration_nodes",
            "source_control_details",
        ):
            setattr(job, attribute, None)
        job.execution_property, job.default_arguments = {}, {}
        job.execution_class = "STANDARD"
        for key, value in update.items():
            setattr(job, _snake(key), value)
        job.last_modified_on = _now()
        return ActionResult({"JobName": name})

    def update_crawler(self: Any) -> Any:
        crawler = self.glue_backend.get_crawler(self.parameters.get("Name"))
        for key, value in self.parameters.items():
            if key != "Name":
                setattr(crawler, _snake(key), value)
        crawler.version += 1
        crawler.last_updated = _now()
        return EmptyResult()

    def update_trigger(self: Any) -> Any:
        trigger = self.glue_backend.get_trigger(self.parameters.get("Name"))
        update = self.parameters.get("TriggerUpdate", {})
        trigger.description = update.get("Description")
        trigger.schedule = update.get("Schedule")
        trigger.actions = [Action(a) for a in update.get("Actions", [])]
        trigger.predicate = Predicate(update["Predicate"]) if update.get("Predicate") else None
        trigger.event_batching_condition = update.get("EventBatchingCondition")
        return ActionResult({"Trigger": trigger.as_dict()})

    GlueResponse.delete_connection = delete_connection  # type: ignore[attr-defined]
    GlueResponse.update_connection = update_connection  # type: ignore[attr-defined]
    GlueResponse.update_job = update_job  # type: ignore[attr-defined]
    GlueResponse.update_crawler = update_crawler  # type: ignore[attr-defined]
    GlueResponse.update_trigger = update_trigger  # type: ignore[attr-defined]
    _installed = True


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()
