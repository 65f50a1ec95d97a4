"""Errors that name the real cause: a stopped embedded cloud, a store or stack with no
releases (named by its absolute path), and which engine `auto` chose and why.

Each runs the console script's entry point in-process, error handler included.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from rollback.aws.session import Clients, make_session
from rollback.cli import main as root
from rollback.engine.select import select_engine
from rollback.store import open_store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        root.main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed once the socket is gone


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "argv",
    [["stack", "verify"], ["stack", "export"], ["watch", "--window", "1s"]],
    ids=" ".join,
)
def test_a_stopped_embedded_cloud_is_named_with_how_to_start_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    closed_port_url: str,
    argv: list[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed_port_url)
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert err.count("\n") == 1, err  # one sentence
    assert f"the embedded cloud at {closed_port_url} (AWS_ENDPOINT_URL) is not answering" in err
    assert 'eval "$(rollback cloud start)"' in err
    assert "no stack engine fits" not in err and "Could not connect" not in err


def test_a_stopped_embedded_cloud_in_json_is_a_usage_document(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, closed_port_url: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed_port_url)
    code, out, _ = run(capsys, "-o", "json", "stack", "verify")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and doc["error"] == "ConfigError"
    assert doc["endpoint_url"] == closed_port_url


@pytest.mark.parametrize(
    "argv",
    [["plan", "last-stable"], ["to", "last-stable", "--yes"], ["release", "show", "1.0.0"]],
    ids=" ".join,
)
def test_no_releases_names_the_stack_and_the_absolute_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    code, _, err = run(capsys, "--stack", "webap/prod", "--store", "artifacts", *argv)
    assert code == 2, err
    where = tmp_path / "artifacts"
    assert f"webap/prod has no releases in {where}; check --stack and --store" in err
    assert "mark one" not in err


def test_release_list_of_an_empty_store_says_where_it_looked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "release", "list")
    assert code == 0
    assert out.strip() == f"webapp/dev has no releases in {tmp_path / 'artifacts'}"


@pytest.fixture
def fake_pulumi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text("#!/bin/sh\necho v3.200.0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_auto_prefers_the_embedded_engine_against_the_embedded_cloud_and_says_so(
    fake_pulumi_on_path: None,
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rollback.engine.select")
    engine = select_engine(
        "auto",
        endpoint_url=moto_endpoint,
        store=open_store(str(tmp_path / "store")),
        clients=Clients(make_session("us-east-1"), endpoint_url=moto_endpoint),
    )
    assert engine.name == "embedded"
    assert f"engine: embedded ({moto_endpoint} is the embedded cloud" in caplog.text


def test_auto_picks_the_pulumi_cli_for_aws_and_says_so(
    fake_pulumi_on_path: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rollback.engine.select")
    engine = select_engine(
        "auto",
        endpoint_url=None,
        store=open_store(str(tmp_path / "store")),
        clients=Clients(make_session("us-east-1")),
    )
    assert engine.name == "pulumi"
    assert "engine: pulumi (the Pulumi CLI is on PATH" in caplog.text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["release", "mark", "1.0.0", "--stable", "--bad"],
            "say exactly one of --stable, --bad or --candidate (got --stable --bad).",
        ),
        (["release", "mark", "1.0.0"], "say exactly one of --stable, --bad or --candidate."),
        (
            [
                "release",
                "record",
                "1.0.0",
                "--artifact",
                "app.tgz",
                "--migration-command",
                "alembic downgrade {revision}",
            ],
            "--migration-command needs --schema-revision",
        ),
        (
            ["release", "record", "1.1\u0662.0", "--artifact", "app.tgz"],
            "version '1.1\u0662.0' is not a semantic version",
        ),
        (["release", "show", "1.\u0661.0"], "is not a semantic version"),
        (["resume", "../../x"], "'../../x' is not a run id; `rollback history` lists the runs."),
        (["report", "runs/webapp"], "is not a run id"),
        # Before the run id was checked, abort built the AWS clients and the engine first.
        (["abort", "../../x"], "'../../x' is not a run id; `rollback history` lists the runs."),
        (
            ["cutover", "green", "--max-p99-ms", "nan"],
            "'nan' is not a number of milliseconds above 0",
        ),
        (["cutover", "green", "--max-p99-ms", "inf"], "is not a number of milliseconds"),
        (["cutover", "green", "--bake", "1e9"], "is not a duration"),
        # click's int() and float() take non-ASCII digits and underscores, and float NaN.
        (["release", "prune", "--keep", "\u0661"], "'\u0661' is not a whole number such as 3"),
        (["release", "prune", "--keep", "1_0"], "'1_0' is not a whole number"),
        (["to", "1.4.0", "--parallel", "\uff13"], "is not a whole number"),
        (["cutover", "green", "--health-failures", "0"], "0 is not in the range x>=1"),
        (
            ["to", "1.4.0", "--via-queue", "https://q", "--wait-timeout", "nan"],
            "'nan' is not a finite number",
        ),
        (["--stack", "", "release", "list"], "--stack is empty"),
        # Not "store key 'releases/webapp/..' is not valid": the cause is the flag.
        (["--stack", "webapp/..", "release", "list"], "stack 'webapp/..' is not PROJECT/STACK"),
        (["lock", "show", "--stack", ".webapp/dev"], "stack '.webapp/dev' is not PROJECT/STACK"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_each_bad_input_is_one_sentence_and_exit_2_with_nothing_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], says: str
) -> None:
    (tmp_path / "app.tgz").write_text("build")
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert says in err
    assert "runs/webapp/dev" not in err and "store key" not in err  # no internals
    assert not (tmp_path / "artifacts" / "releases").exists()
