"""Checkpoints of the embedded engine validate against Pulumi's published deployment schema.

The schemas are copies from pulumi/pulumi (tests/schemas/pulumi/ORIGIN.md).
The reference stack (stacks/webapp) is brought up with its dev config; a
failed create must leave a `pending_operations` entry that validates too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from rollback.aws.session import Clients
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.engine.embedded.stack_config import load_stack_config
from rollback.errors import EngineError
from rollback.store.local import LocalStore

ROOT = Path(__file__).parent.parent.parent
SCHEMAS = ROOT / "tests" / "schemas" / "pulumi"
# Fields sdk/go/common/apitype/core.go (ResourceV3) writes that resources.json does not list yet.
CORE_GO_FIELDS: dict[str, Any] = {
    "created": {"type": "string", "format": "date-time"},
    "modified": {"type": "string", "format": "date-time"},
    "retainOnDelete": {"type": "boolean"},
    "ignoreChanges": {"type": "array", "items": {"type": "string"}},
    "replaceOnChanges": {"type": "array", "items": {"type": "string"}},
}


def validator() -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    docs = {
        name: json.loads((SCHEMAS / f"{name}.json").read_text())
        for name in ("deployments", "resources", "property-values")
    }
    resources = copy.deepcopy(docs["resources"])
    resources["$defs"]["resourceV3"]["properties"].update(CORE_GO_FIELDS)
    registry = Registry().with_resources(
        [
            (doc["$id"], Resource.from_contents(doc))
            for doc in (docs["deployments"], resources, docs["property-values"])
        ]
    )
    return Draft202012Validator(docs["deployments"], registry=registry)


def errors(document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(document)]


def test_the_published_schema_rejects_what_it_should() -> None:
    """The validator is real: a resource without a URN or with an unknown field fails."""
    bad = {
        "version": 3,
        "deployment": {
            "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "m", "version": "v3"},
            "resources": [{"type": "x", "nonsense": 1}],
        },
    }
    assert errors(bad)


def test_the_reference_stack_checkpoint_validates(tmp_path: Path) -> None:
    import boto3

    with mock_aws():
        store = LocalStore(tmp_path / "store")
        engine = EmbeddedEngine(store, Clients(boto3.Session(region_name="us-east-1")), "webapp")
        config = load_stack_config(ROOT, "dev", "webapp")
        engine.up(ROOT / "stacks" / "webapp", "dev", config)
        document = json.loads(store.get_doc(checkpoint_key("webapp", "dev")))
        document.pop("rollback_sha256", None)  # the store's seal (releases.check_deployment)
    assert errors(document) == []
    resources = document["deployment"]["resources"]
    custom = [r for r in resources if r["custom"] and not r["type"].startswith("pulumi:providers:")]
    assert all(r["outputs"]["id"] == r["id"] for r in custom)
    assert all("__defaults" in r["inputs"] for r in custom)


def test_a_failed_create_leaves_a_pending_operation(tmp_path: Path) -> None:
    import boto3

    program = ROOT / "tests" / "programs" / "bucket"
    with mock_aws():
        store = LocalStore(tmp_path / "store")
        engine = EmbeddedEngine(store, Clients(boto3.Session(region_name="us-east-1")), "webapp")
        config = StackConfig(
            values={
                "webapp:bucketName": "artifacts-bucket",
                "webapp:token": "t",
                "webapp:versioningBucket": "no-such-bucket",
            }
        )
        with pytest.raises(EngineError):
            engine.up(program, "dev", config)
        document = json.loads(store.get_doc(checkpoint_key("webapp", "dev")))
        document.pop("rollback_sha256", None)  # the store's seal (releases.check_deployment)
    (pending,) = document["deployment"]["pending_operations"]
    assert pending["type"] == "creating"
    assert pending["resource"]["urn"].endswith("::artifacts-versioning")
    assert errors(document) == []
