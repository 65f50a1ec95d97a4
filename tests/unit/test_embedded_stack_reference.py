"""StackReference resolved from the checkpoints in the toolkit's store (tests/programs/consumer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine, checkpoint_key
from rollback.engine.embedded.secrets import SECRET_SIG, SIG_KEY
from rollback.errors import NotFound
from rollback.store.local import LocalStore
from tests.unit.test_embedded_engine import (
    PROGRAMS,
    TOKEN,
    Cloud,
    bucket_config,
    cloud,
    secrets_state,
)
from tests.unit.test_embedded_schema import errors

__all__ = ["cloud", "secrets_state"]  # fixtures shared with test_embedded_engine
REF_URN = "urn:pulumi:dev::consumer::pulumi:pulumi:StackReference::organization/webapp/dev"


def consumer_config(ref: str, secrets_state: str) -> StackConfig:
    return StackConfig(values={"consumer:ref": ref}, encryption_salt=secrets_state)


def test_a_stack_reference_reads_the_producers_exports_and_keeps_secrets_secret(
    cloud: Cloud, tmp_path: Path, secrets_state: str
) -> None:
    store = LocalStore(tmp_path / "store")
    EmbeddedEngine(store, cloud.clients, "webapp").up(
        PROGRAMS / "bucket", "dev", bucket_config(secrets_state)
    )
    consumer = EmbeddedEngine(store, cloud.clients, "consumer")
    consumer.up(
        PROGRAMS / "consumer", "dev", consumer_config("organization/webapp/dev", secrets_state)
    )

    assert "artifacts-bucket-copy" in cloud.buckets()
    document = json.loads(store.get_doc(checkpoint_key("consumer", "dev")))
    document.pop("rollback_sha256", None)  # the store's seal (releases.check_deployment)
    assert errors(document) == []
    resources = {r["urn"]: r for r in document["deployment"]["resources"]}
    ref = resources[REF_URN]
    assert ref["external"] is True and ref["id"] == "organization/webapp/dev"
    builtin = resources["urn:pulumi:dev::consumer::pulumi:providers:pulumi::default"]
    assert ref["provider"] == f"{builtin['urn']}::{builtin['id']}"
    assert ref["outputs"]["secretOutputNames"] == ["token"]
    assert ref["outputs"]["outputs"]["token"][SIG_KEY] == SECRET_SIG
    assert TOKEN not in json.dumps(document)
    assert consumer.outputs("dev")["token"] == "[secret]"

    # Up again: the read is repeated, nothing changes, the reference is never deleted.
    cloud.mutations.operations.clear()
    consumer.up(
        PROGRAMS / "consumer", "dev", consumer_config("organization/webapp/dev", secrets_state)
    )
    assert cloud.mutations.operations == []


def test_a_reference_to_a_stack_without_state_is_refused_before_any_change(
    cloud: Cloud, tmp_path: Path, secrets_state: str, capfd: pytest.CaptureFixture[str]
) -> None:
    consumer = EmbeddedEngine(LocalStore(tmp_path / "store"), cloud.clients, "consumer")
    with pytest.raises(NotFound, match="webapp/prod, which has no state"):
        consumer.up(PROGRAMS / "consumer", "dev", consumer_config("webapp/prod", secrets_state))
    assert cloud.mutations.operations == []
    assert "Traceback" not in capfd.readouterr().err
