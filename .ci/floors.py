"""Install the declared minimum of every runtime dependency and run the tests that use them.

A floor in pyproject.toml (`boto3>=1.35.69`) is a promise that the code works
with that version. This script keeps it: it pins each runtime dependency to
its floor (`boto3==1.35.69`) as a pip constraint, installs the project with
its test extra into a fresh virtual environment (test tools resolve freely),
and runs the unit tests that exercise those libraries.

    python .ci/floors.py                 # resolve, install, test (a few minutes)
    python .ci/floors.py --resolve-only  # only ask pip whether the floors install together

`make test-floors` runs the first; `.ci/run` runs it after the suite.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Unit tests that reach each runtime dependency: pulumi and pulumi-aws (the
# embedded engine and the reference program), boto3/botocore (the S3 store and
# its If-None-Match lock, the steps), gitpython (releases), click (the CLI),
# cryptography (secrets), pyyaml (stack files), protobuf (the monitor).
TESTS = [
    "tests/unit/test_store.py",
    "tests/unit/test_lock.py",
    "tests/unit/test_releases.py",
    "tests/unit/test_cli_root.py",
    "tests/unit/test_config.py",
    "tests/unit/test_embedded_secrets.py",
    "tests/unit/test_embedded_engine.py",
    "tests/unit/test_webapp_program.py",
    "tests/unit/test_step_traffic.py",
    "tests/unit/test_step_dns.py",
]

_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*([^;]*)")


def floors(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """name -> the `>=` version of each runtime dependency; every one must have a floor."""
    found: dict[str, str] = {}
    for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        match = _FLOOR.match(requirement)
        assert match, requirement
        name, specifiers = match[1].lower(), match[3]
        lower = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip().startswith(">=")]
        if len(lower) != 1:
            raise SystemExit(f"dependency {requirement!r} has no single >= floor; declare one.")
        found[name.replace("_", "-")] = lower[0]
    return found


def constraints_file(directory: Path) -> Path:
    path = directory / "floors.txt"
    path.write_text("".join(f"{name}=={version}\n" for name, version in floors().items()))
    return path


def _release(version: str) -> tuple[int, ...]:
    """3.200 and 3.200.0 are one release."""
    parts = [int(p) for p in re.findall(r"\d+", version)]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_resolution(python: str, constraints: Path) -> None:
    """Ask pip what it would install; every runtime dependency must land on its floor."""
    report = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--report",
            "-",
            "-c",
            str(constraints),
            f"{ROOT}[test]",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    chosen = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.stdout)["install"]
    }
    wrong = {
        name: chosen.get(name)
        for name, version in floors().items()
        if _release(chosen.get(name, "")) != _release(version)
    }
    if wrong:
        raise SystemExit(f"pip would not install the floors together: {wrong}")
    print(f"floors resolve together: {', '.join(f'{n}=={v}' for n, v in floors().items())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolve-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rollback-floors-") as scratch:
        constraints = constraints_file(Path(scratch))
        if args.resolve_only:
            check_resolution(sys.executable, constraints)
            return 0
        env_dir = Path(scratch) / "venv"
        venv.create(env_dir, with_pip=True)
        python = str(env_dir / "bin" / "python")
        check_resolution(python, constraints)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "-c", str(constraints), f"{ROOT}[test]"],
            check=True,
        )
        return subprocess.run(
            [
                python,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *(str(ROOT / t) for t in TESTS),
            ],
            cwd=ROOT,
            check=False,
        ).returncode


if __name__ == "__main__":
    sys.exit(main())
