"""CLI start-up time against a bare interpreter, measured in one run.

    python bench/cli.py [--runs N]

Times (best of N) `python -c pass`, `rollback --help` and a light store
command (`release list` on an empty store; `lock show` or `cloud status` when
that command does not exist yet), using the installed console script next to
this interpreter. Prints each time, its ratio to `python -c pass` (target: at
most 2.5), and which heavy modules each command imported (from
PYTHONPROFILEIMPORTTIME), so a regression names its cause. The last line is
`cli_startup_ratio: <max ratio>`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/rollback.py would shadow the package when a script here runs: the checkout comes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROLLBACK = Path(sys.executable).parent / "rollback"
HEAVY = ("pulumi", "pulumi_aws", "moto", "boto3", "botocore", "git")
TARGET = 2.5
# Store commands in order of preference: the first that exists is measured.
LIGHT_COMMANDS = (("release", "list"), ("lock", "show"), ("cloud", "status"))


def clean_env() -> dict[str, str]:
    """The caller's environment without settings that would change what runs.

    PYTHONDONTWRITEBYTECODE is dropped: an installed package has its bytecode
    cached, and compiling every module on every start measures the compiler.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def best_of(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, int]:
    """The fastest wall time in seconds over `runs` runs, and the last exit code."""
    subprocess.run(argv, env=env, capture_output=True, check=False)  # warms the bytecode cache
    best = float("inf")
    code = 0
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, env=env, capture_output=True, check=False)
        best = min(best, time.perf_counter() - start)
        code = result.returncode
    return best, code


def heavy_imports(argv: list[str], env: dict[str, str]) -> list[str]:
    """Top-level heavy packages the command imported, read from Python's import-time log."""
    result = subprocess.run(
        argv,
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    found: set[str] = set()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        name = line.rsplit("|", 1)[-1].strip().split(".", 1)[0]
        if name in HEAVY:
            found.add(name)
    return sorted(found)


def light_command(store: str, env: dict[str, str]) -> list[str]:
    """The first of LIGHT_COMMANDS that this installation has."""
    for group, sub in LIGHT_COMMANDS:
        probe = subprocess.run(
            [str(ROLLBACK), group, sub, "--help"], env=env, capture_output=True, check=False
        )
        if probe.returncode == 0:
            return [str(ROLLBACK), "--store", store, group, sub]
    raise SystemExit(f"none of {LIGHT_COMMANDS} exists; is rollback installed in this venv?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (best is kept)")
    args = parser.parse_args()
    if not ROLLBACK.exists():
        raise SystemExit(f"{ROLLBACK} is missing; run `pip install -e .` in this venv first.")
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="rollback-bench-") as tmp:
        store = str(Path(tmp) / "store")
        Path(store).mkdir()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "rollback --help": [str(ROLLBACK), "--help"],
        }
        light = light_command(store, env)
        commands[f"rollback --store <empty> {' '.join(light[3:])}"] = light
        print(
            f"runs per command: {args.runs} (best kept, bytecode cached); "
            f"target ratio <= {TARGET:g}"
        )
        baseline = 0.0
        ratios: list[float] = []
        for label, argv in commands.items():
            seconds, code = best_of(argv, args.runs, env)
            if not baseline:
                baseline = seconds
            ratio = seconds / baseline
            heavy = heavy_imports(argv, env)
            if label != "python -c pass":
                ratios.append(ratio)
            print(
                f"{label:<42} {seconds * 1000:7.1f} ms  x{ratio:4.2f}  exit {code}  "
                f"heavy imports: {', '.join(heavy) or 'none'}"
            )
    worst = max(ratios)
    if worst > TARGET:
        print(f"above target: start-up is {worst:.2f} times a bare interpreter")
    print(f"cli_startup_ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
