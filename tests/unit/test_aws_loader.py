"""The session's model loader answers as botocore's own does, only faster."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.exceptions
import botocore.loaders
import pytest

from rollback.aws.session import _data_loader, make_session


def test_service_membership_matches_botocores_full_listing() -> None:
    ours, theirs = _data_loader(None), botocore.loaders.create_loader(None)
    for type_name in ("service-2", "endpoint-rule-set-1", "waiters-2"):
        full = theirs.list_available_services(type_name)
        known = ours.list_available_services(type_name)
        assert list(known) == full
        assert len(known) == len(full)
        for service in ("elbv2", "rds", "route53", "s3", "sqs", "not-a-service", "data"):
            assert (service in known) == (service in full), (type_name, service)


@pytest.mark.parametrize("service", ["elbv2", "rds", "route53", "s3"])
def test_models_load_equal_to_botocores(service: str) -> None:
    ours, theirs = _data_loader(None), botocore.loaders.create_loader(None)
    for type_name in ("service-2", "endpoint-rule-set-1"):
        assert ours.load_service_model(service, type_name) == theirs.load_service_model(
            service, type_name
        )
    assert ours.load_data("endpoints") == theirs.load_data("endpoints")


def test_unknown_service_is_botocores_error() -> None:
    with pytest.raises(botocore.exceptions.UnknownServiceError, match="elbv2"):
        make_session("us-east-1").client("elbv3")


def test_a_model_on_aws_data_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_DATA_PATH (botocore's `data_path`) adds model directories, as with botocore."""
    models = tmp_path / "models" / "widgets" / "2026-01-01"
    models.mkdir(parents=True)
    model = {
        "version": "2.0",
        "metadata": {
            "apiVersion": "2026-01-01",
            "endpointPrefix": "widgets",
            "protocol": "json",
            "jsonVersion": "1.1",
            "serviceId": "Widgets",
            "signatureVersion": "v4",
            "targetPrefix": "Widgets",
            "uid": "widgets-2026-01-01",
        },
        "operations": {},
        "shapes": {},
    }
    (models / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path / "models"))
    session = make_session("us-east-1")
    loader = session._session.get_component("data_loader")
    assert "widgets" in loader.list_available_services("service-2")
    assert loader.load_service_model("widgets", "service-2")["metadata"]["serviceId"] == "Widgets"
