"""Reading the update locks of Pulumi's self-managed backends (pkg/backend/diy/lock.go)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from rollback.engine.pulumi_locks import is_diy_backend, read_locks
from rollback.errors import ConfigError

LOCK = {"pid": 4242, "username": "ci", "hostname": "build-1", "timestamp": "2026-11-30T15:00:00Z"}


def test_file_backend_locks_in_both_layouts(tmp_path: Path) -> None:
    project_lock = tmp_path / ".pulumi/locks/organization/webapp/dev/a1.json"
    legacy_lock = tmp_path / ".pulumi/locks/dev/b2.json"
    other_stack = tmp_path / ".pulumi/locks/organization/webapp/prod/c3.json"
    for path in (project_lock, legacy_lock, other_stack):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(LOCK))

    locks = read_locks(f"file://{tmp_path}", "webapp", "dev")

    assert sorted(Path(lock.key).name for lock in locks) == ["a1.json", "b2.json"]
    assert locks[0].describe() == "pid 4242 of ci@build-1 (since 2026-11-30T15:00:00Z)"


def test_s3_backend_locks_are_read_from_the_bucket() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="state")
        key = "pulumi/.pulumi/locks/organization/webapp/dev/9f.json"
        s3.put_object(Bucket="state", Key=key, Body=json.dumps(LOCK).encode())
        s3.put_object(
            Bucket="state", Key="pulumi/.pulumi/locks/organization/webapp/devx/1.json", Body=b"{}"
        )

        (lock,) = read_locks("s3://state/pulumi", "webapp", "dev", s3_client=s3)

    assert (lock.key, lock.pid, lock.hostname) == (f"s3://state/{key}", 4242, "build-1")


def test_unreadable_backends_and_locks_are_config_errors(tmp_path: Path) -> None:
    assert is_diy_backend("s3://b/p") and is_diy_backend("file:///x")
    assert not is_diy_backend("https://api.pulumi.com") and not is_diy_backend(None)
    with pytest.raises(ConfigError, match="gs:// backend"):
        read_locks("gs://bucket", "webapp", "dev")
    bad = tmp_path / ".pulumi/locks/organization/webapp/dev/x.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("not json")
    with pytest.raises(ConfigError, match="not a Pulumi lock file"):
        read_locks(f"file://{tmp_path}", "webapp", "dev")
