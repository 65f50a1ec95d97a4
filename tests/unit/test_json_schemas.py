"""Every `-o json` document has a JSON Schema in docs/schemas/, every schema is valid, and
commands run here print documents that match theirs (functional tests check the rest:
their `parse_json` validates every document it reads). NaN and infinity never print."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import pytest

from rollback.cli import main as root
from rollback.cli.render import emit
from tests import jsonschemas
from tests.unit.test_cli_conventions import PATHS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        root.main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


LEAVES = [p for p in PATHS if p not in jsonschemas.GROUPS]


@pytest.mark.parametrize("path", LEAVES)
def test_every_command_has_a_valid_schema(path: str) -> None:
    jsonschemas.schema(path.replace(" ", "-"))


def test_every_schema_belongs_to_a_command() -> None:
    names = {p.stem for p in jsonschemas.SCHEMAS.glob("*.json")}
    assert names == {p.replace(" ", "-") for p in LEAVES} | {"error"}


@pytest.mark.parametrize(
    "argv",
    [
        ["release", "list"],
        ["history"],
        ["status"],
        ["lock", "show"],
        ["lock", "break"],
        ["cloud", "status"],
        ["cloud", "stop"],
        ["release", "prune", "--keep", "1", "--dry-run"],
        ["plan", "last-stable"],
        ["release", "show", "1.0.0"],
        ["report", "20261130T120000Z-ab12"],
        ["release", "mark", "1.0.0", "--stable", "--bad"],
        ["to", "1.0.0", "--yes", "--stack", "a/b", "--stack", "c/d"],
    ],
    ids=" ".join,
)
def test_documents_printed_here_match_their_schema(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    _, out, _ = run(capsys, *argv, "-o", "json")
    document = json.loads(out)
    jsonschemas.validate(argv, document)


def test_a_document_off_its_schema_is_caught() -> None:
    with pytest.raises(AssertionError, match="release-list: releases: .* is not of type 'array'"):
        jsonschemas.validate(["release", "list"], {"releases": {}})


def test_nan_never_reaches_json(capsys: pytest.CaptureFixture[str]) -> None:
    @click.command()
    @click.pass_context
    def nan(ctx: click.Context) -> None:
        emit(ctx, {"deadline_s": math.inf})

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(root.COMMANDS, "nan", (__name__, "nan_cmd", "x"))
        globals()["nan_cmd"] = nan
        code, out, err = run(capsys, "-o", "json", "nan")
    assert code == 70 and "Infinity" not in out
    assert json.loads(out)["error"] == "InternalError"
