"""The CLI root: global options (flag > env > rollback.toml > default), the one error
handler and its exit codes, --help, --version and a light start-up.

Most tests call `main(argv)` in-process (the console script's own entry point,
error handler included); `probe` is a test command registered the way real
command groups are, printing the settings the root resolved.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import packages_distributions, version
from pathlib import Path
from typing import Any

import click
import pytest

from rollback import cloud
from rollback.cli import main as root
from rollback.cli.render import emit
from rollback.config import Settings

HEAVY = ("boto3", "botocore", "pulumi", "pulumi_aws", "moto", "git")


def in_fresh_interpreter(
    *argv: str, before: str = "", after: str = ""
) -> subprocess.CompletedProcess[str]:
    """`rollback ARGV` through main() in a new interpreter (this one has imported much
    already): Python `before` runs after the CLI's import, `after` once main() returns."""
    script = (
        "import sys\n"
        "from rollback.cli.main import main\n"
        f"{before}"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"{after}"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@click.command()
@click.pass_context
def probe(ctx: click.Context) -> None:
    """Print the resolved settings."""
    emit(ctx, ctx.find_root().obj.settings)


@pytest.fixture(autouse=True)
def probe_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(root.COMMANDS, "probe", (__name__, "probe", "Print settings."))
    monkeypatch.chdir(tmp_path)  # no stray rollback.toml; ./artifacts lands in tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the entry point; returns (exit code, stdout, stderr)."""
    try:
        root.main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def settings(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "--output", "json", *argv, "probe")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


OPTIONS = [
    ("--stack", "ROLLBACK_STACK", "stack", "shop/file", "shop/env", "shop/flag"),
    ("--store", "ROLLBACK_STORE", "store", "/srv/file", "/srv/env", "s3://bucket/flag"),
    ("--engine", "ROLLBACK_ENGINE", "engine", "pulumi", "embedded", "auto"),
]


@pytest.mark.parametrize(("flag", "var", "name", "file_value", "env_value", "flag_value"), OPTIONS)
def test_each_option_comes_from_flag_env_file_or_default(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    flag: str,
    var: str,
    name: str,
    file_value: str,
    env_value: str,
    flag_value: str,
) -> None:
    assert settings(capsys)[name] == getattr(Settings(), name)
    (tmp_path / "rollback.toml").write_text(f'{name} = "{file_value}"\n')
    assert settings(capsys)[name] == file_value  # the file beats the default
    monkeypatch.setenv(var, env_value)
    assert settings(capsys)[name] == env_value  # the environment beats the file
    assert settings(capsys, flag, flag_value)[name] == flag_value  # the flag beats both


def test_output_and_debug_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLBACK_OUTPUT", "json")
    monkeypatch.setenv("ROLLBACK_DEBUG", "1")
    code, out, err = run(capsys, "probe")  # no flags: JSON only because of the environment
    assert code == 0, err
    data = json.loads(out)
    assert (data["output"], data["debug"]) == ("json", True)
    code, out, _ = run(capsys, "--output", "text", "probe")
    # The flag beats the environment (a probe without a text form prints JSON either way).
    assert code == 0 and json.loads(out)["output"] == "text"


def test_a_bad_stack_is_one_sentence_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    code, out, err = run(capsys, "--store", str(store), "--stack", "no-slash", "cloud", "start")
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "error: stack 'no-slash' is not PROJECT/STACK; pass --stack webapp/prod, for example."
    ]
    assert not store.exists()  # nothing started, nothing recorded


@pytest.mark.parametrize(
    ("argv", "error", "exit_code"),
    [
        (("--stack", "bad", "probe"), "ConfigError", 2),
        (("--engine", "terraform", "probe"), "UsageError", 2),  # rejected by click itself
        (("no-such-command",), "UsageError", 2),
        (("cloud", "stop", "--now"), "UsageError", 2),
    ],
)
def test_json_errors_are_one_document_on_stdout(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], error: str, exit_code: int
) -> None:
    code, out, err = run(capsys, "--output", "json", *argv)
    assert code == exit_code
    document = json.loads(out)  # raises unless stdout is exactly one JSON document
    assert (document["error"], document["exit_code"]) == (error, exit_code)
    assert document["message"]
    assert "Traceback" not in err


def test_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "--stack", "bad", "probe")
    assert code == 2 and "Traceback" not in err
    code, _, err = run(capsys, "--debug", "--stack", "bad", "probe")
    assert code == 2
    assert "Traceback (most recent call last)" in err and "ConfigError" in err
    monkeypatch.setenv("ROLLBACK_DEBUG", "true")
    code, _, err = run(capsys, "--stack", "bad", "probe")
    assert code == 2 and "Traceback (most recent call last)" in err


def test_an_unexpected_exception_is_exit_70_and_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(state_dir: Path) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cloud, "status", broken)
    code, out, err = run(capsys, "cloud", "status")
    assert code == 70
    assert out == ""
    assert err.splitlines() == [
        "error: internal error: ZeroDivisionError: division by zero. "
        "Rerun with --debug and report it."
    ]
    code, out, err = run(capsys, "-o", "json", "cloud", "status")
    assert code == 70 and json.loads(out)["exit_code"] == 70
    code, _, err = run(capsys, "--debug", "cloud", "status")
    assert code == 70 and "Traceback (most recent call last)" in err


def test_a_command_exit_code_reaches_the_process(capsys: pytest.CaptureFixture[str]) -> None:
    # `cloud status` with nothing recorded ends with ctx.exit(1).
    code, out, _ = run(capsys, "cloud", "status")
    assert code == 1
    assert "no embedded cloud" in out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    commands = out.split("Commands:", 1)[1]
    for name, (_, _, short_help) in root.COMMANDS.items():
        assert f"{name}  " in commands and short_help[:40] in commands
    for option in ("--stack", "--store", "--engine", "--output", "--debug", "--version"):
        assert option in out


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    # The distribution that installed the `rollback` package (iac-rollback since it was renamed).
    installed = {version(name) for name in packages_distributions()["rollback"]}
    assert out.strip().removeprefix("rollback, version ") in installed


def test_installed_script_starts_without_heavy_modules(tmp_path: Path) -> None:
    # A fresh interpreter: in this one pytest fixtures have imported boto3 already.
    heavy = f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    for argv in (["--help"], ["--store", str(tmp_path), "cloud", "status"]):
        result = in_fresh_interpreter(*argv, after=heavy)
        assert result.stderr.strip().splitlines()[-1] == "[]", (argv, result.stderr)


def test_listing_releases_builds_no_run_records(tmp_path: Path) -> None:
    # What bench/cli.py times: the records of runs and upkeep, logging and hashlib
    # are for commands that use them, not for every command that opens the registry.
    unused = (
        "unused = ('rollback.models', 'rollback.release_upkeep', 'logging', 'hashlib')\n"
        "print(sorted(m for m in unused if m in sys.modules), file=sys.stderr)\n"
    )
    result = in_fresh_interpreter("--store", str(tmp_path), "release", "list", after=unused)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), ["token=*** reaches stderr"]),
        (("--quiet",), []),
        (("--verbose",), ["token=*** reaches stderr", "debug too"]),
    ],
)
def test_logging_is_configured_when_something_first_imports_it(
    tmp_path: Path, flags: tuple[str, ...], expected: list[str]
) -> None:
    # A fresh interpreter: `release list` on a local store imports nothing that logs,
    # so level, format and redaction are set up only once a module imports logging.
    after = (
        "assert 'logging' not in sys.modules\n"
        "import logging\n"
        "logging.getLogger('rollback.anything').info('token=abc123 reaches stderr')\n"
        "logging.getLogger('rollback.anything').debug('debug too')\n"
        "logging.getLogger('botocore.endpoint').info('never: botocore says only warnings')\n"
    )
    result = in_fresh_interpreter(*flags, "--store", str(tmp_path), "release", "list", after=after)
    assert result.returncode == 0, result.stderr
    assert "has no releases" in result.stdout
    assert result.stderr.splitlines() == expected


@pytest.mark.parametrize(
    ("command", "during"),
    [(("release", "list"), True), (("--help",), False)],
)
def test_the_collector_is_paused_for_start_up_and_runs_for_the_command(
    tmp_path: Path, command: tuple[str, ...], during: bool
) -> None:
    """rollback.collector in a fresh interpreter: off from the CLI's import, on again when
    the command's work starts, and on after main() returns, whatever ran."""
    spy = (
        "import gc\n"
        "import rollback.cli.release as release\n"
        "print('import', gc.isenabled())\n"
        "views = release._registry\n"
        "def spy(ctx):\n"
        "    print('command', gc.isenabled())\n"
        "    return views(ctx)\n"
        "release._registry = spy\n"
    )
    after = "print('after', gc.isenabled())\n"
    result = in_fresh_interpreter("--store", str(tmp_path), *command, before=spy, after=after)
    assert result.returncode == 0, result.stderr
    lines = [
        line
        for line in result.stdout.splitlines()
        if line.split()[:1] in (["import"], ["command"], ["after"])
    ]
    assert lines == ["import False", *(["command True"] if during else []), "after True"]
