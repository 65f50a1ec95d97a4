"""A release's own Python environment: built from its commit's requirements, cached by their hash.

A re-applied release must run with what its commit pinned (pulumi,
pulumi-aws, the default provider they imply), not with the toolkit's own
interpreter. Pulumi's Python host picks the interpreter from Pulumi.yaml's
`runtime.options`: `virtualenv: DIR` means `<project>/DIR/bin/python`, and
without it `PULUMI_PYTHON_CMD` or `python3` on PATH
(sdk/python/toolchain/toolchain.go `ResolveToolchain`, pip.go `CommandPath`,
`resolveVirtualEnvironmentPath`). So this module builds a virtualenv from the
project's requirements.txt once per distinct content, keeps it under a cache
directory named by the hash, and either links it where `virtualenv:` points
or puts its `bin` first on PATH -- it never sets PULUMI_PYTHON_CMD.

Poetry and uv toolchains install their own environments (`pulumi install`);
they are left to Pulumi.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback.errors import ConfigError, EngineError

logger = logging.getLogger(__name__)

REQUIREMENTS = "requirements.txt"
CACHE_ENV = "ROLLBACK_PYENV_CACHE"
COMPLETE = ".rollback-complete"
_PIP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class PythonEnv:
    """A cached virtualenv serving one project directory."""

    path: Path  # the cached environment
    digest: str  # sha256 of the requirements (and the Python version)
    link: Path | None  # where `virtualenv:` points at it, when Pulumi.yaml says so

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def cli_env(self, base_path: str | None = None) -> dict[str, str]:
        """What the Pulumi CLI's environment needs so `python3` is this environment's."""
        path = base_path if base_path is not None else os.environ.get("PATH", "")
        return {"VIRTUAL_ENV": str(self.path), "PATH": f"{self.path / 'bin'}{os.pathsep}{path}"}


def default_cache() -> Path:
    """ROLLBACK_PYENV_CACHE, else ~/.cache/rollback/pyenvs."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "rollback" / "pyenvs"


def runtime_options(project_root: Path) -> dict[str, Any]:
    """Pulumi.yaml's `runtime.options` (empty when the runtime is a plain name)."""
    import yaml

    try:
        doc = yaml.safe_load((project_root / "Pulumi.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    runtime = doc.get("runtime") if isinstance(doc, dict) else None
    options = runtime.get("options") if isinstance(runtime, dict) else None
    return dict(options) if isinstance(options, dict) else {}


def requirements_digest(requirements: bytes) -> str:
    """The cache key: the requirements' bytes and this Python's version."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return hashlib.sha256(version.encode() + b"\0" + requirements).hexdigest()[:24]


def prepare(project_root: Path, cache: Path | None = None) -> PythonEnv | None:
    """The project's environment, built or reused; None when Pulumi builds it (poetry, uv) or there are no requirements.

    Raises EngineError when pip fails to install the requirements.
    """
    options = runtime_options(project_root)
    toolchain = str(options.get("toolchain") or "pip")
    if toolchain not in ("pip", "auto"):
        logger.info("the %s toolchain builds its own environment (`pulumi install`)", toolchain)
        return None
    requirements = project_root / REQUIREMENTS
    if not requirements.is_file():
        logger.info("%s has no %s; the Python on PATH runs the program", project_root, REQUIREMENTS)
        return None
    content = requirements.read_bytes()
    env = _cached(content, cache or default_cache())
    virtualenv = options.get("virtualenv")
    link = None
    if virtualenv:
        link = Path(str(virtualenv))
        link = link if link.is_absolute() else project_root / link
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(env, target_is_directory=True)
        elif link.resolve() != env.resolve():
            logger.info("%s already exists; Pulumi uses it as it is", link)
    return PythonEnv(path=env, digest=env.name, link=link)


def _cached(requirements: bytes, cache: Path) -> Path:
    """Build in place (scripts record their own path), marked complete only when done.

    The environment is made without ensurepip (it byte-compiles pip, tens of
    seconds) and filled by the toolkit's own pip through `pip --python`: the
    requirements, then pip itself from the interpreter's bundled wheel
    (Pulumi's Python host runs `python -m pip list`).
    """
    digest = requirements_digest(requirements)
    env = cache / digest
    done = env / COMPLETE
    if done.exists():
        logger.info("reusing the Python environment %s", env)
        return env
    cache.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(env, ignore_errors=True)  # an earlier build that did not finish
    base = getattr(sys, "_base_executable", sys.executable)
    needs_pip = bool(_requirement_lines(requirements))
    _run([base, "-m", "venv", "--without-pip", str(env)], "create a virtualenv")
    (env / REQUIREMENTS).write_bytes(requirements)
    if needs_pip:
        pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python")]
        pip += ["--disable-pip-version-check", "install"]
        logger.info("installing the release's requirements into %s", env)
        _run([*pip, "-r", str(env / REQUIREMENTS)], "install the release's requirements")
        bundled = _bundled_pip_wheel()
        if bundled is not None:
            _run([*pip, "--no-index", "--no-compile", str(bundled)], "seed pip")
    done.write_text(digest + "\n", encoding="utf-8")
    return env


def _bundled_pip_wheel() -> Path | None:
    """The pip wheel ensurepip would install, shipped with the interpreter."""
    import ensurepip

    bundled = Path(ensurepip.__file__).parent / "_bundled"
    wheels = sorted(bundled.glob("pip-*.whl"))
    return wheels[-1] if wheels else None


def _requirement_lines(requirements: bytes) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in requirements.decode("utf-8").splitlines())
    return [line for line in lines if line]


def _run(args: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except OSError as exc:
        raise ConfigError(f"cannot {what}: {exc}.") from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        raise EngineError(
            f"could not {what} for the release: {tail or 'exit ' + str(done.returncode)}."
        )
