"""Interface conventions: global options before or after the command and shown in every
command's help, real examples at the end of every help (each one parsed by the CLI),
--quiet/--verbose, and shell completion."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
import pytest

from rollback.cli import main as root
from tests.unit.test_examples import resolve


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


def command_paths() -> list[str]:
    """Every command and group below the root, as `release record`."""
    ctx = click.Context(root.cli)
    found: list[str] = []

    def walk(command: click.Command, path: list[str]) -> None:
        if path:
            found.append(" ".join(path))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(root.cli, [])
    return found


PATHS = command_paths()


def example_args(example: str) -> list[str]:
    """The argument list after `rollback` of one documented example."""
    if example.startswith("eval "):
        example = shlex.split(example)[1][2:-1]  # eval "$(rollback ...)"
    words = shlex.split(example.split(" > ")[0])
    assert words[0] == "rollback", example
    return root.hoist_global_options(words[1:])


def test_every_command_has_examples() -> None:
    assert set(PATHS) | {""} == set(root.EXAMPLES), "EXAMPLES and the commands disagree"


@pytest.mark.parametrize("path", PATHS)
def test_every_help_shows_the_global_options_and_ends_with_parsable_examples(
    capsys: pytest.CaptureFixture[str], path: str
) -> None:
    code, out, _ = run(capsys, *path.split(), "--help")
    assert code == 0
    globals_at = out.index("Global options (before or after the command)")
    for option in ("--stack", "--store", "--engine", "--output", "--quiet", "--verbose", "--debug"):
        assert option in out[globals_at:]
    examples = out[out.index("Examples:") :].splitlines()[1:]
    assert examples and all(line.strip() for line in examples), out
    assert out.rstrip().endswith(root.EXAMPLES[path][-1].split()[-1])
    for example in root.EXAMPLES[path]:
        args = example_args(example)
        assert resolve(args)[1:][: len(path.split())] == path.split(), example


def test_root_help_has_examples_and_completion(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Examples:" in out and "_ROLLBACK_COMPLETE=bash_source" in out
    for example in root.EXAMPLES[""]:
        resolve(example_args(example))


def test_no_subcommand_has_an_option_named_like_a_global_one() -> None:
    # Hoisting moves these names to the root; a subcommand option of the same name would be lost.
    ctx = click.Context(root.cli)
    for path in PATHS:
        command: click.Command = root.cli
        for name in path.split():
            assert isinstance(command, click.Group)
            found = command.get_command(ctx, name)
            assert found is not None
            command = found
        names = {opt for param in command.params for opt in param.opts}
        assert not names & set(root.GLOBAL_OPTIONS), path


@pytest.mark.parametrize(
    "argv",
    [
        ["release", "list", "-o", "json", "--stack", "shop/prod"],
        ["release", "list", "--output=json", "--stack=shop/prod"],
        ["--stack", "shop/prod", "release", "list", "-o", "json"],
        ["release", "-o", "json", "list", "--stack", "shop/prod"],
    ],
    ids=" ".join,
)
def test_global_options_work_after_the_command(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert json.loads(out) == {"releases": []}


def test_options_after_a_double_dash_are_not_moved() -> None:
    assert root.hoist_global_options(["to", "1.0.0", "--", "-o", "json"]) == [
        "to",
        "1.0.0",
        "--",
        "-o",
        "json",
    ]


def test_quiet_drops_progress_but_not_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "release", "prune", "--keep", "1", "--dry-run", "-q")
    assert code == 0 and err == ""
    code, _, err = run(capsys, "release", "show", "1.0.0", "--quiet")
    assert code == 2 and err.startswith(
        "error: release 1.0.0 is not recorded: webapp/dev has no releases"
    )


def test_empty_store_option_is_one_sentence_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "release", "list", "--store", "")
    assert (code, err) == (2, "error: --store is empty; pass a value or leave the option out.\n")


def test_shell_completion_completes_lazy_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_ROLLBACK_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "rollback rel")
    monkeypatch.setenv("COMP_CWORD", "1")
    code, out, _ = run(capsys)
    assert code == 0 and out.split() == ["plain,release"]


@click.command()
def asks() -> None:
    """Ask, then work."""
    click.confirm("Roll back?", abort=True)
    raise KeyboardInterrupt


@pytest.mark.parametrize(("answer", "code"), [(KeyboardInterrupt, 130), (EOFError, 1), ("y", 130)])
def test_ctrl_c_is_130_at_a_prompt_and_after_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, answer: object, code: int
) -> None:
    monkeypatch.setitem(root.COMMANDS, "asks", (__name__, "asks", "Ask."))

    def reply(prompt: str = "") -> str:
        if isinstance(answer, str):
            return answer
        raise answer  # type: ignore[misc]

    monkeypatch.setattr("click.termui.visible_prompt_func", reply)
    got, _, err = run(capsys, "asks")
    assert got == code
    # Only an answer at the prompt may claim nothing changed; after it, work may have been done.
    said = "Interrupted." if answer == "y" else "Aborted; nothing was changed after the prompt."
    assert said in err, err


@pytest.mark.parametrize(
    ("flag", "level"), [("-v", "DEBUG"), ("--quiet", "WARNING"), (None, "INFO")]
)
def test_verbose_and_quiet_set_the_log_level_but_keep_aws_quiet(
    capsys: pytest.CaptureFixture[str], flag: str | None, level: str
) -> None:
    import logging

    root_logger = logging.getLogger()
    before = root_logger.level
    try:
        code, _, _ = run(capsys, "release", "list", *([flag] if flag else []))
        assert code == 0
        assert logging.getLevelName(root_logger.level) == level
        assert logging.getLogger("botocore").level == logging.WARNING  # wire logs: --debug only
    finally:
        root_logger.setLevel(before)
