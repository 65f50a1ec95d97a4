"""The embedded engine's runner: a Pulumi program run in-process under the SDK's own runtime.

The handler here hands back ids and outputs derived from the registration
itself, so the test can follow values from one resource to the next.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from rollback.engine.embedded.program import Registration
from rollback.engine.embedded.runner import run_program
from rollback.engine.embedded.secrets import is_secret, reveal
from rollback.errors import CloudError, EngineError, UsageError

PROGRAMS = Path(__file__).parent.parent / "programs"
STACK = "urn:pulumi:dev::webapp::pulumi:pulumi:Stack::webapp-dev"
COMPONENT = "urn:pulumi:dev::webapp::tests:index:Artifacts::site"
BUCKET = "urn:pulumi:dev::webapp::tests:index:Artifacts$aws:s3/bucket:Bucket::artifacts"
VERSIONING = (
    "urn:pulumi:dev::webapp::tests:index:Artifacts$aws:s3/bucketVersioning:BucketVersioning"
    "::artifacts-versioning"
)


class RecordingHandler:
    """Answers each registration with id `<name>-id` and outputs = inputs plus an ARN."""

    def __init__(self) -> None:
        self.seen: list[Registration] = []
        self._lock = threading.Lock()

    def __call__(self, registration: Registration) -> tuple[str, dict[str, Any]]:
        with self._lock:
            self.seen.append(registration)
        physical = f"{registration.name}-id"
        return physical, {**reveal(registration.inputs), "arn": f"arn:test:{physical}"}


def run_bucket(handler: RecordingHandler, **config: str) -> Any:
    values = {"webapp:bucketName": "artifacts-bucket", "webapp:token": "s3cr3t-token"}
    values.update({f"webapp:{k}": v for k, v in config.items()})
    return run_program(
        PROGRAMS / "bucket",
        project="webapp",
        stack="dev",
        config=values,
        secret_keys=["webapp:token"],
        preview=False,
        handler=handler,
    )


def test_run_captures_resources_with_pulumi_urns_parents_and_dependencies() -> None:
    handler = RecordingHandler()
    run = run_bucket(handler)

    assert run.stack_urn == STACK
    resources = run.by_urn()
    assert set(resources) == {COMPONENT, BUCKET, VERSIONING}
    component = resources[COMPONENT].registration
    assert (component.custom, component.parent) == (False, STACK)
    bucket = resources[BUCKET].registration
    assert (bucket.type, bucket.name, bucket.parent) == (
        "aws:s3/bucket:Bucket",
        "artifacts",
        COMPONENT,
    )
    assert bucket.inputs == {"bucket": "artifacts-bucket", "tags": {"env": "dev"}}
    versioning = resources[VERSIONING].registration
    assert versioning.parent == COMPONENT
    assert BUCKET in versioning.dependencies
    assert versioning.property_dependencies["bucket"] == (BUCKET,)
    # The bucket's id reached the versioning's input: dependents get real values.
    assert versioning.inputs["bucket"] == "artifacts-id"
    assert resources[BUCKET].id == "artifacts-id"
    assert [r.urn for r in handler.seen] == [BUCKET, VERSIONING]  # custom resources only


def test_run_captures_exports_and_keeps_secret_config_secret() -> None:
    run = run_bucket(RecordingHandler())

    assert run.exports["bucket"] == "artifacts-id"
    assert run.exports["arn"] == "arn:test:artifacts-id"
    assert is_secret(run.exports["token"])
    assert reveal(run.exports["token"]) == "s3cr3t-token"
    assert run.component_outputs[COMPONENT] == {"bucket": "artifacts-id"}


def test_two_runs_in_one_process_each_see_their_own_config() -> None:
    first = run_bucket(RecordingHandler(), env="blue")
    second = run_bucket(RecordingHandler(), env="green", withVersioning="false")

    assert first.by_urn()[BUCKET].registration.inputs["tags"] == {"env": "blue"}
    assert second.by_urn()[BUCKET].registration.inputs["tags"] == {"env": "green"}
    assert VERSIONING in first.by_urn()
    assert VERSIONING not in second.by_urn()


def test_preview_run_marks_dependent_values_unknown_when_no_id_is_given() -> None:
    def pretend(registration: Registration) -> tuple[str, dict[str, Any]]:
        return "", dict(registration.inputs)

    run = run_as_webapp_dev(pretend, preview=True)

    versioning = run.by_urn()[VERSIONING].registration
    assert versioning.inputs["bucket"] == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def test_a_program_that_raises_is_an_engine_error_naming_program_and_message() -> None:
    with pytest.raises(EngineError) as caught:
        run_as_webapp_dev(RecordingHandler(), PROGRAMS / "failing", config={})

    assert "failing/__main__.py" in caught.value.message
    assert "the blue weight must be between 0 and 100" in caught.value.message


def test_a_failing_handler_error_reaches_the_caller_unchanged() -> None:
    def refuse(registration: Registration) -> tuple[str, dict[str, Any]]:
        raise CloudError(f"AWS refused {registration.name}")

    with pytest.raises(CloudError, match="AWS refused artifacts"):
        run_as_webapp_dev(refuse)


def test_a_directory_without_a_program_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no __main__.py"):
        run_as_webapp_dev(RecordingHandler(), tmp_path, preview=True, config={})


def run_as_webapp_dev(
    handler: Any,
    program_dir: Path = PROGRAMS / "bucket",
    *,
    preview: bool = False,
    config: dict[str, str] | None = None,
) -> Any:
    """`program_dir` run as webapp/dev; `config`: the bucket program's, with its secret token."""
    values = {"webapp:bucketName": "b", "webapp:token": "t"} if config is None else config
    return run_program(
        program_dir,
        project="webapp",
        stack="dev",
        config=values,
        secret_keys=[k for k in values if k == "webapp:token"],
        preview=preview,
        handler=handler,
    )


def test_a_project_directory_runs_the_program_its_pulumi_yaml_names(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        f"name: webapp\nruntime: python\nmain: {PROGRAMS / 'bucket'}\n"
    )

    run = run_as_webapp_dev(RecordingHandler(), program_dir=tmp_path)

    assert BUCKET in run.by_urn()


def test_a_run_leaves_no_event_loop_for_the_garbage_collector() -> None:
    """An unclosed loop finalized after its self-pipe printed "Invalid file descriptor: -1"."""
    import gc
    import warnings

    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):
            run_bucket(RecordingHandler())
        gc.collect()
    unclosed = [w for w in caught if "unclosed event loop" in str(w.message)]
    assert unclosed == []


def test_objects_older_than_a_run_are_frozen_only_while_it_runs() -> None:
    """The collector skips them during the run (gc.freeze), and collects the young generation
    less often; afterwards nothing stays frozen, the thresholds are the process's again, and
    a process that froze objects itself keeps them frozen."""
    import gc

    frozen_during: list[int] = []
    young_during: list[int] = []
    thresholds = gc.get_threshold()

    class Watching(RecordingHandler):
        def __call__(self, registration: Registration) -> tuple[str, dict[str, Any]]:
            frozen_during.append(gc.get_freeze_count())
            young_during.append(gc.get_threshold()[0])
            return super().__call__(registration)

    run_bucket(Watching())
    assert frozen_during and min(frozen_during) > 0
    assert min(young_during) >= 10_000
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds

    gc.freeze()
    try:
        run_bucket(RecordingHandler())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_plain_outputs_are_sent_as_the_sdk_serializes_them() -> None:
    """The monitor's direct Struct equals serialize_properties' for plain JSON (top-level
    Nones left out, nested ones kept, secrets in wire form); anything else is left to the SDK."""
    import asyncio

    from pulumi.runtime import rpc

    from rollback.engine.embedded.monitor import plain_struct
    from rollback.engine.embedded.secrets import wrap_secret

    outputs: dict[str, Any] = {
        "name": "queue",
        "delaySeconds": 0.0,
        "maxSize": 262144,
        "fifo": False,
        "gone": None,
        "tags": {"team": "web", "empty": ""},
        "list": [1, "a", None, {"nested": None}, [True]],
        "policy": wrap_secret("{}"),
        "unknown": rpc.UNKNOWN,
    }
    loop = asyncio.new_event_loop()
    try:
        expected = loop.run_until_complete(rpc.serialize_properties(outputs, {}))
    finally:
        loop.close()
    assert plain_struct(outputs) == expected
    assert plain_struct({"when": (1, 2)}) is None  # a tuple: the SDK's own path
    assert plain_struct({"asset": object()}) is None


def test_a_programs_own_modules_are_imported_afresh_by_the_next_run(tmp_path: Path) -> None:
    """A second `up` in one process (the agent, a test) runs the program's files as they are now."""
    import sys

    program = tmp_path / "program"
    program.mkdir()
    (program / "__main__.py").write_text(
        "import pulumi\nimport naming\npulumi.export('name', naming.NAME)\n"
    )
    (program / "naming.py").write_text("NAME = 'first'\n")

    def run() -> Any:
        return run_as_webapp_dev(RecordingHandler(), program, config={})

    assert run().exports == {"name": "first"}
    assert "naming" not in sys.modules
    (program / "naming.py").write_text("NAME = 'second'\n")
    assert run().exports == {"name": "second"}
    assert "pulumi" in sys.modules  # what the program imported from elsewhere stays loaded
