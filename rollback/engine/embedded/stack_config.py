"""Read a stack's config file, Pulumi.<stack>.yaml, into a StackConfig.

Keys without a namespace belong to the project (`key` -> `project:key`), as
Pulumi reads them. Structured values are kept as JSON strings, the form the
SDK's `Config.get_object` parses. `secure:` values stay encrypted here; the
engine decrypts them when it runs the program.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rollback.engine import StackConfig
from rollback.errors import ConfigError, NotFound


def config_path(program_dir: Path, stack: str) -> Path:
    return program_dir / f"Pulumi.{stack}.yaml"


def load_stack_config(program_dir: Path, stack: str, project: str) -> StackConfig:
    """Parse Pulumi.<stack>.yaml next to the program.

    Raises NotFound when the file is missing and ConfigError when it is not a
    Pulumi stack file.
    """
    import yaml

    path = config_path(program_dir, stack)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise NotFound(
            f"stack config {path} does not exist; create it or pick another stack."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"stack config {path} is not valid YAML: {exc}.") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"stack config {path} must be a mapping with a `config:` section.")
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"the `config:` section of {path} must be a mapping.")
    values: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for key, value in raw.items():
        full_key = str(key) if ":" in str(key) else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            secrets[full_key] = str(value["secure"])
        else:
            values[full_key] = config_string(value)
    salt = document.get("encryptionsalt")
    if secrets and not salt:
        raise ConfigError(f"stack config {path} has secure values but no encryptionsalt.")
    return StackConfig(values=values, secrets=secrets, encryption_salt=str(salt) if salt else None)


def config_string(value: Any) -> str:
    """The string the SDK receives for a config value (Pulumi passes every value as a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)
