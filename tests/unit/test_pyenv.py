"""A release's own Python environment, built from its requirements and cached by their hash."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from rollback.engine import pyenv
from rollback.errors import EngineError


def _wheel(folder: Path, name: str = "pinned_dep", version: str = "1.2.3") -> Path:
    """A minimal pure-Python wheel: installs offline with --no-index."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(path, "w") as wheel:
        for arcname, text in files.items():
            data = text.encode()
            wheel.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        wheel.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def _project(root: Path, runtime: str = "python", requirements: str | None = "") -> Path:
    root.mkdir(parents=True)
    (root / "Pulumi.yaml").write_text(f"name: webapp\nruntime: {runtime}\n")
    if requirements is not None:
        (root / "requirements.txt").write_text(requirements)
    return root


def test_the_commits_requirements_are_installed_once_and_linked_where_virtualenv_points(
    tmp_path: Path,
) -> None:
    wheel = _wheel(tmp_path)
    requirements = f"--no-index\n{wheel}\n"
    runtime = "\n  name: python\n  options:\n    virtualenv: venv"
    first = _project(tmp_path / "wt1", runtime, requirements)
    second = _project(tmp_path / "wt2", runtime, requirements)
    cache = tmp_path / "cache"

    env1 = pyenv.prepare(first, cache)
    env2 = pyenv.prepare(second, cache)

    assert env1 is not None and env2 is not None and env1.path == env2.path  # built once
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [env1.digest]
    assert (first / "venv").resolve() == env1.path.resolve()
    version = subprocess.run(
        [
            str(first / "venv" / "bin" / "python"),
            "-c",
            "import pinned_dep; print(pinned_dep.VERSION)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "1.2.3"
    assert list(env1.path.glob("lib/python*/site-packages/pip/__init__.py"))  # `pip list` works


def test_other_requirements_get_another_environment_and_no_requirements_none(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    a = pyenv.prepare(_project(tmp_path / "a", requirements="# none\n"), cache)
    b = pyenv.prepare(_project(tmp_path / "b", requirements="\n"), cache)

    assert a is not None and b is not None and a.digest != b.digest
    assert a.link is None and a.cli_env("/usr/bin")["PATH"] == f"{a.path / 'bin'}:/usr/bin"
    assert pyenv.prepare(_project(tmp_path / "c", requirements=None), cache) is None
    poetry = "\n  name: python\n  options:\n    toolchain: poetry"
    assert pyenv.prepare(_project(tmp_path / "d", poetry, ""), cache) is None


def test_requirements_that_do_not_install_are_an_engine_error(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", requirements=f"--no-index\n{tmp_path / 'missing.whl'}\n")

    with pytest.raises(EngineError, match="could not install the release's requirements"):
        pyenv.prepare(project, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/.rollback-complete"))
