"""Settings: flag > environment (ROLLBACK_*) > file > default.

The file is TOML, `rollback.toml` in the working directory or the path in
ROLLBACK_CONFIG, with the same keys as the fields below (`store = "s3://..."`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rollback.errors import ConfigError

ENGINES = ("auto", "pulumi", "embedded")
OUTPUTS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to build its collaborators."""

    stack: str = "webapp/dev"
    store: str = "./artifacts"
    engine: str = "auto"
    output: str = "text"
    debug: bool = False
    region: str = "us-east-1"
    endpoint_url: str | None = None
    profile: str | None = None
    webhook_url: str | None = None
    sns_topic_arn: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.stack.split("/", 1)[0]

    @property
    def stack_name(self) -> str:
        return self.stack.split("/", 1)[1]

    def validate(self) -> Settings:
        if self.stack.count("/") != 1 or not all(self.stack.split("/")):
            raise ConfigError(
                f"stack {self.stack!r} is not PROJECT/STACK; pass --stack webapp/prod, for example.",
                stack=self.stack,
            )
        if self.engine not in ENGINES:
            raise ConfigError(
                f"engine {self.engine!r} is unknown; choose one of {', '.join(ENGINES)}."
            )
        if self.output not in OUTPUTS:
            raise ConfigError(f"output {self.output!r} is unknown; choose text or json.")
        return self


_ENV = {
    "stack": "ROLLBACK_STACK",
    "store": "ROLLBACK_STORE",
    "engine": "ROLLBACK_ENGINE",
    "output": "ROLLBACK_OUTPUT",
    "debug": "ROLLBACK_DEBUG",
    "region": "AWS_REGION",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "profile": "AWS_PROFILE",
    "webhook_url": "ROLLBACK_WEBHOOK_URL",
    "sns_topic_arn": "ROLLBACK_SNS_TOPIC_ARN",
}


def load(
    flags: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings from flags, environment, file and defaults, in that order.

    Raises ConfigError for an unreadable file, unknown keys or invalid values.
    """
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    values.update(_read_file(env, cwd or Path.cwd()))
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    if "region" not in values and env.get("AWS_DEFAULT_REGION"):
        values["region"] = env["AWS_DEFAULT_REGION"]
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = value
    if isinstance(values.get("debug"), str):
        values["debug"] = _parse_bool("debug", values["debug"])
    known = {f.name for f in fields(Settings)}
    _check_types(values)
    extra = {k: v for k, v in values.items() if k not in known}
    base = {k: v for k, v in values.items() if k in known}
    return replace(Settings(**base), extra=extra).validate()


def _parse_bool(name: str, text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} {text!r} is not a boolean; use true or false.")


def _check_types(values: dict[str, Any]) -> None:
    # A file can hold any TOML type; a number where a string belongs must be a
    # configuration error (exit 2), not a crash later.
    for f in fields(Settings):
        value = values.get(f.name)
        if value is None or f.name == "extra":
            continue
        expected = bool if f.name == "debug" else str
        if not isinstance(value, expected):
            raise ConfigError(
                f"setting {f.name} = {value!r} must be a {'boolean' if expected is bool else 'string'}; "
                "fix rollback.toml or the environment."
            )


def _read_file(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    explicit = env.get("ROLLBACK_CONFIG")
    path = Path(explicit) if explicit else cwd / "rollback.toml"
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist; fix ROLLBACK_CONFIG.")
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}.") from exc
