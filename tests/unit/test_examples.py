"""The pipeline examples parse, and every `rollback ...` line in them is a command our CLI
accepts: resolved through the real click group (its lazy subcommands), options and all."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from rollback.cli.main import cli
from rollback.triggers import parse_duration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GITHUB = EXAMPLES / "github-actions" / "deploy.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
DURATION_OPTIONS = ("--bake", "--pause", "--window", "--interval")


def github_commands(doc: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(run text, the step) of every step of every job."""
    return [
        (str(step["run"]), step)
        for job in doc["jobs"].values()
        for step in job["steps"]
        if "run" in step
    ]


def gitlab_commands(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, job in doc.items():
        if isinstance(job, dict) and "script" in job and name != "default":
            found += [(str(line), job) for line in job["script"]]
    return found


def expand(text: str, variables: dict[str, str]) -> str:
    """Substitute the workflow's own variables; CI expressions become a placeholder word."""
    ci = re.compile(r"\$\{\{[^}]*\}\}")
    text = ci.sub("ci-value", text)
    text = re.sub(r"\$\{?(\w+)\}?", lambda m: str(variables.get(m[1], "ci-value")), text)
    return ci.sub("ci-value", text)  # a variable may itself hold an expression


def rollback_lines(script: str) -> list[list[str]]:
    """Each `rollback ...` command of a shell script, as its argument list after `rollback`."""
    found = []
    for line in script.splitlines():
        words = shlex.split(line)
        if words and words[0] == "rollback":
            found.append(words[1:])
    return found


def resolve(args: list[str]) -> list[str]:
    """Parse `args` through the real CLI without running it; returns the command path.

    Raises click.UsageError (unknown command, unknown option, bad value).
    """
    group: click.Command = cli
    ctx = group.make_context("rollback", list(args))
    path = ["rollback"]
    while isinstance(group, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, command, rest = group.resolve_command(ctx, rest)
        assert command is not None and name is not None
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
        group = command
    return path


def test_github_workflow_parses_and_has_the_stages() -> None:
    doc = yaml.safe_load(GITHUB.read_text())
    steps = github_commands(doc)
    runs = " ".join(run for run, _ in steps)
    assert "pulumi up" in runs
    assert "rollback release record" in runs and "rollback --output json cutover" in runs
    rollback_step = [step for run, step in steps if " to last-stable --yes" in run]
    assert len(rollback_step) == 1 and rollback_step[0]["if"] == "failure()"
    cutover = next(run for run, _ in steps if " cutover " in run)
    assert "--bake" in cutover and "--promote" in cutover


def test_gitlab_pipeline_parses_and_has_the_stages() -> None:
    doc = yaml.safe_load(GITLAB.read_text())
    assert doc["stages"] == ["build", "deploy", "cutover", "rollback"]
    assert doc["rollback"]["when"] == "on_failure"
    scripts = " ".join(line for line, _ in gitlab_commands(doc))
    assert "pulumi up" in scripts and "rollback release record" in scripts
    assert "cutover" in scripts and "--bake" in scripts and "--promote" in scripts
    assert "to last-stable --yes" in " ".join(doc["rollback"]["script"])


def _all_lines() -> list[tuple[str, list[str]]]:
    lines = []
    github = yaml.safe_load(GITHUB.read_text())
    for run, _ in github_commands(github):
        for args in rollback_lines(expand(run, dict(github.get("env") or {}))):
            lines.append((GITHUB.name, args))
    gitlab = yaml.safe_load(GITLAB.read_text())
    for script, _ in gitlab_commands(gitlab):
        for args in rollback_lines(expand(script, dict(gitlab.get("variables") or {}))):
            lines.append((GITLAB.name, args))
    return lines


def test_the_examples_use_release_cutover_and_to() -> None:
    commands = {resolve(args)[1] for _, args in _all_lines()}
    assert {"release", "cutover", "to"} <= commands


@pytest.mark.parametrize(
    ("where", "args"), _all_lines(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_every_rollback_line_is_a_valid_command(where: str, args: list[str]) -> None:
    try:
        path = resolve(args)
    except click.UsageError as exc:
        pytest.fail(
            f"{where}: `rollback {' '.join(args)}` is refused by the CLI: {exc.format_message()}"
        )
    assert len(path) >= 2
    for i, word in enumerate(args[:-1]):
        if word in DURATION_OPTIONS:
            parse_duration(args[i + 1], word)


def _pip_installs() -> list[tuple[str, list[str]]]:
    """(file, the words after `pip install`) of every install line, variables expanded."""
    found = []
    github = yaml.safe_load(GITHUB.read_text())
    gitlab = yaml.safe_load(GITLAB.read_text())
    scripts = [(GITHUB.name, run, dict(github.get("env") or {})) for run, _ in github_commands(github)]
    scripts += [
        (GITLAB.name, str(line), dict(gitlab.get("variables") or {}))
        for job in gitlab.values()
        if isinstance(job, dict)
        for key in ("script", "before_script")
        for line in job.get(key, [])
    ]
    for where, script, variables in scripts:
        for line in script.splitlines():
            words = shlex.split(expand(line, variables))
            if words[:2] == ["pip", "install"]:
                found.append((where, words[2:]))
    return found


def test_the_examples_install_this_project_not_the_pypi_namesake() -> None:
    import tomllib

    name = tomllib.loads((EXAMPLES.parent / "pyproject.toml").read_text())["project"]["name"]
    installs = _pip_installs()
    assert {where for where, _ in installs} == {GITHUB.name, GITLAB.name}
    for where, requirements in installs:
        names = [re.split(r"[\s@=<>\[]", r, maxsplit=1)[0] for r in requirements]
        assert name in names, f"{where}: `pip install {' '.join(requirements)}` is not {name}"
        assert "rollback" not in names, f"{where} installs the unrelated PyPI project `rollback`"
