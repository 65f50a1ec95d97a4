"""examples/quickstart.sh, the README's quick start as a script (CI runs it whole in
.ci/run): it parses, is strict, works in a fresh temporary directory, cleans up on
exit, and every `rollback` line in it is a command the CLI accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from rollback.cli.main import hoist_global_options
from tests.unit.test_examples import resolve

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "quickstart.sh"


def test_the_script_parses_and_is_strict() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert "set -euo pipefail" in text
    assert re.search(r'work="\$\(mktemp -d ', text), "a fresh scratch directory each run"
    assert "trap cleanup EXIT" in text and 'rm -rf "$work"' in text
    assert "free_port" in text and "8181" not in text, "its own free port, not a fixed one"


def _rollback_lines() -> list[list[str]]:
    found = []
    for line in SCRIPT.read_text().splitlines():
        line = line.strip()
        if line.startswith('eval "$(rollback'):
            line = shlex.split(line)[1][2:-1]
        if line.startswith("rollback "):
            words = shlex.split(line.split(" | ")[0].split(" >")[0])
            found.append([w.replace("$run", "20261130T120000Z-ab12") for w in words[1:]])
    return found


@pytest.mark.parametrize("args", _rollback_lines(), ids=" ".join)
def test_every_rollback_line_is_a_valid_command(args: list[str]) -> None:
    resolve(hoist_global_options(args))


def test_the_readme_shows_the_script() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "examples/quickstart.sh" in readme
