"""Read a stack's config file, Pulumi.<stack>.yaml, into a StackConfig.

The reading itself is `rollback.engine.stack_file` (shared by both engines):
keys without a namespace belong to the project (`key` -> `project:key`),
scalars keep their literal text, `secure:` values stay encrypted here and the
engine decrypts them when it runs the program.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rollback.engine import StackConfig
from rollback.engine.stack_file import object_text, read_stack_file, stack_file_path


def config_path(program_dir: Path, stack: str) -> Path:
    return stack_file_path(program_dir, stack)


def load_stack_config(program_dir: Path, stack: str, project: str) -> StackConfig:
    """Parse Pulumi.<stack>.yaml next to the program.

    Raises NotFound when the file is missing and ConfigError when it is not a
    Pulumi stack file.
    """
    return read_stack_file(program_dir, stack, project)


def config_string(value: Any) -> str:
    """The string the SDK receives for a config value (Pulumi passes every value as a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return object_text(value) if isinstance(value, dict | list) else json.dumps(value)
