"""`--debug` never prints a secret: botocore's wire log of a real call, our own log lines,
URLs with passwords; masked by the one filter on the root logger's handlers."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from rollback.redact import MASK, install_redaction, redact

PASSWORD = "hunter2-Very-Secret"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG through a root handler carrying the filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    # The CLI quiets botocore unless --debug; earlier tests may have run it.
    loggers = [root, logging.getLogger("botocore")]
    levels = [logger.level for logger in loggers]
    root.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    install_redaction()
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def test_botocores_wire_log_of_a_db_password_is_masked(debug_log: io.StringIO) -> None:
    with mock_aws():
        rds = boto3.client("rds", region_name="us-east-1")
        rds.create_db_instance(
            DBInstanceIdentifier="shop",
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="app",
            MasterUserPassword=PASSWORD,
            AllocatedStorage=20,
        )
    text = debug_log.getvalue()
    assert "MasterUserPassword" in text  # the wire log really ran at DEBUG
    assert PASSWORD not in text


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"connecting to postgresql://app:{PASSWORD}@db:5432/shop", PASSWORD),
        (f"params {{'MasterUserPassword': '{PASSWORD}', 'Engine': 'postgres'}}", PASSWORD),
        (f"body=b'Action=RestoreDBInstance&MasterUserPassword={PASSWORD}&Version=1'", PASSWORD),
        ('{"PULUMI_CONFIG_PASSPHRASE": "pass phrase words"}', "pass phrase words"),
        (
            "headers {'X-Amz-Security-Token': 'FQoGZXIvYXdz', 'Authorization': 'AWS4 Sig=ab'}",
            "FQoGZXIvYXdz",
        ),
        ("aws_secret_access_key=wJalrXUtnFEMI", "wJalrXUtnFEMI"),
    ],
)
def test_each_form_of_a_secret_is_masked(line: str, secret: str) -> None:
    masked = redact(line)
    assert secret not in masked and MASK in masked


def test_our_own_log_lines_at_every_level_are_masked(debug_log: io.StringIO) -> None:
    log = logging.getLogger("rollback.steps.migrate")
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        log.log(level, "running with %s", f"postgresql://app:{PASSWORD}@db/shop")
    text = debug_log.getvalue()
    assert PASSWORD not in text and text.count(f"app:{MASK}@db") == 4


def test_ordinary_lines_are_left_alone() -> None:
    line = "traffic: blue 100, green 0 (listener arn:aws:elasticloadbalancing:...)"
    assert redact(line) == line
