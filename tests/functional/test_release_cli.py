"""`rollback release ...` as a user runs it: the installed command, local and S3 stores."""

from __future__ import annotations

from pathlib import Path

import boto3
import git
import pytest

from tests.functional.conftest import RunCli, describe, parse_json
from tests.unit.test_releases import commit, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    return make_repo(tmp_path / "iac")


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "app.tgz"
    path.write_bytes(b"build\n" * 1000)
    return path


def test_record_list_show_verify_mark_changelog_local(
    run_cli: RunCli, repo: git.Repo, artifact: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "artifacts")
    base = ("--store", store, "--stack", "webapp/prod", "--engine", "embedded")
    r = run_cli(
        *base,
        "release",
        "record",
        "v1.0.0",
        "--artifact",
        str(artifact),
        "--repo",
        repo.working_dir,
        "--color",
        "blue",
    )
    assert r.returncode == 0, describe(r)
    assert "recorded v1.0.0 of webapp/prod" in r.stdout
    commit(repo, "main.py", "x", "feat!: new listener")
    r = run_cli(
        *base, "release", "record", "1.1.0", "--artifact", str(artifact), "--repo", repo.working_dir
    )
    assert r.returncode == 0, describe(r)

    r = run_cli(*base, "release", "mark", "1.0.0", "--stable", "--reason", "baked")
    assert r.returncode == 0, describe(r)
    listed = parse_json(run_cli(*base, "--output", "json", "release", "list"))
    assert [(x["version"], x["status"], x["current"]) for x in listed["releases"]] == [
        ("1.1.0", "candidate", True),
        ("1.0.0", "stable", False),
    ]
    shown = parse_json(run_cli(*base, "-o", "json", "release", "show", "last-stable"))
    assert shown["color"] == "blue" and [h["status"] for h in shown["history"]] == [
        "candidate",
        "stable",
    ]
    r = run_cli(*base, "release", "verify", "1.1.0")
    assert r.returncode == 0 and "every hash and the tag match" in r.stdout, describe(r)
    r = run_cli(*base, "release", "changelog", "1.0.0", "1.1.0")
    assert r.stdout.startswith("BREAKING ") and "feat!: new listener" in r.stdout, describe(r)


def test_bad_input_exit_codes(
    run_cli: RunCli, repo: git.Repo, artifact: Path, tmp_path: Path
) -> None:
    store = tmp_path / "artifacts"
    base = ("--store", str(store), "--engine", "embedded")
    r = run_cli(*base, "release", "show", "2.0.0")
    # Nothing recorded at all: the message says where it looked (a mistyped --stack or --store).
    assert r.returncode == 2 and r.stderr.strip() == (
        f"error: release 2.0.0 is not recorded: webapp/dev has no releases in {store}; check --stack and --store "
        "(or record one with `rollback release record VERSION --artifact FILE`)."
    ), describe(r)
    r = run_cli(
        *base, "release", "record", "one", "--artifact", str(artifact), "--repo", repo.working_dir
    )
    assert r.returncode == 2 and "not a semantic version" in r.stderr, describe(r)
    r = run_cli(
        *base, "release", "record", "1.0.0", "--artifact", str(tmp_path), "--repo", repo.working_dir
    )
    assert r.returncode == 2 and "is a directory" in r.stderr, describe(r)
    assert not store.exists()  # nothing was written by refused commands
    r = run_cli(
        *base,
        "--output",
        "json",
        "release",
        "record",
        "1.0.0",
        "--artifact",
        str(artifact),
        "--repo",
        str(tmp_path),
    )
    assert r.returncode == 2 and parse_json(r)["error"] == "UsageError", describe(r)

    r = run_cli(
        *base, "release", "record", "1.0.0", "--artifact", str(artifact), "--repo", repo.working_dir
    )
    assert r.returncode == 0, describe(r)
    blobs = [p for p in (store / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    blobs[0].chmod(0o644)
    blobs[0].write_bytes(blobs[0].read_bytes()[:-1] + b"X")
    r = run_cli(*base, "release", "verify", "1.0.0")
    assert r.returncode == 4 and "failed verification" in r.stderr, describe(r)
    r = run_cli(*base, "--store", "ftp://host/x", "release", "list")
    assert r.returncode == 2 and "unknown scheme" in r.stderr, describe(r)


def test_s3_store_against_the_moto_server(
    run_cli: RunCli, moto_endpoint: str, repo: git.Repo, artifact: Path
) -> None:
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="releases")
    base = ("--store", "s3://releases/teams/web", "--engine", "embedded")
    r = run_cli(
        *base, "release", "record", "1.0.0", "--artifact", str(artifact), "--repo", repo.working_dir
    )
    assert r.returncode == 0, describe(r)
    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket="releases")[
            "Contents"
        ]
    ]
    assert "teams/web/releases/webapp/dev/1.0.0/manifest.json" in keys
    assert parse_json(run_cli(*base, "-o", "json", "release", "verify", "1.0.0"))["ok"] is True
    r = run_cli("--store", "s3://no-such-bucket/x", "release", "list")
    assert r.returncode == 2 and "does not exist" in r.stderr, describe(r)
