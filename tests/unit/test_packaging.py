"""The distribution's name and dependency floors: what `.ci/floors.py` pins is what
pyproject.toml declares, every runtime dependency has a floor, and the floors that
features need are there."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _floors_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("floors", ROOT / ".ci" / "floors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_runtime_dependency_has_a_floor_that_the_floors_job_pins(tmp_path: Path) -> None:
    floors = _floors_script()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = floors.floors()
    assert len(pinned) == len(declared)
    text = floors.constraints_file(tmp_path).read_text()
    assert "boto3==1.35.69\n" in text and "botocore==1.35.69\n" in text


def test_the_s3_lock_floor_is_the_first_botocore_with_conditional_put_and_delete() -> None:
    # PutObject's IfNoneMatch (taking the lock) arrived in botocore 1.35.2; PutObject's and
    # DeleteObject's IfMatch (renewing and releasing it, rollback/store/s3.py) in 1.35.69.
    pinned = _floors_script().floors()
    assert tuple(int(p) for p in pinned["botocore"].split(".")) >= (1, 35, 69)
    assert tuple(int(p) for p in pinned["boto3"].split(".")) >= (1, 35, 69)


def test_the_floors_job_tests_exist() -> None:
    floors = _floors_script()
    for test in floors.TESTS:
        assert (ROOT / test).is_file(), test


def test_the_distribution_is_not_named_like_the_unrelated_pypi_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "iac-rollback"
    assert project["scripts"] == {"rollback": "rollback.cli.main:main"}
