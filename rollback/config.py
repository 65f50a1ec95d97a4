"""Settings: flag > environment (ROLLBACK_*) > file > default.

The file is TOML, `rollback.toml` in the working directory or the path in
ROLLBACK_CONFIG, with the same keys as the fields below (`store = "s3://..."`).

Stacks: `--stack` (repeatable) or ROLLBACK_STACK (comma-separated) and
`--stacks-file` (one PROJECT/STACK a line, `#` comments) together name the
stacks; only when neither names one does the file's `stack` (or webapp/dev)
apply. `stack` is the first of them, `stacks` all of them, each once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from rollback.errors import ConfigError

ENGINES = ("auto", "pulumi", "embedded")
OUTPUTS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to build its collaborators."""

    stack: str = "webapp/dev"
    stacks: tuple[str, ...] = ()  # every stack named (fleet mode); empty means (stack,)
    store: str = "./artifacts"
    engine: str = "auto"
    output: str = "text"
    debug: bool = False
    quiet: bool = False  # only warnings and errors on stderr
    verbose: bool = False  # rollback's own debug logs (not AWS wire logs: that is --debug)
    region: str = "us-east-1"
    endpoint_url: str | None = None
    profile: str | None = None
    webhook_url: str | None = None
    sns_topic_arn: str | None = None
    health_deadline_s: float = 60.0  # how long the health step may wait for N passes in a row
    backend_url: str | None = None  # the Pulumi backend (PULUMI_BACKEND_URL) for the pulumi engine
    refresh: bool = True  # the pulumi engine refreshes before it applies (`--no-refresh`: not)

    def __post_init__(self) -> None:
        if not self.stacks:
            object.__setattr__(self, "stacks", (self.stack,))

    def for_stack(self, stack: str) -> Settings:
        """These settings for `stack` alone (a fleet member's own copy)."""
        return replace(self, stack=stack, stacks=(stack,))

    @property
    def project(self) -> str:
        return self.stack.split("/", 1)[0]

    @property
    def stack_name(self) -> str:
        return self.stack.split("/", 1)[1]

    def validate(self) -> Settings:
        for stack in (self.stack, *self.stacks):
            problem = stack_problem(stack)
            if problem:
                raise ConfigError(
                    f"stack {stack!r} {problem}; pass --stack webapp/prod, for example.",
                    stack=stack,
                )
        if self.engine not in ENGINES:
            raise ConfigError(
                f"engine {self.engine!r} is unknown; choose one of {', '.join(ENGINES)}."
            )
        if not _REGION.fullmatch(self.region):
            raise ConfigError(
                f"region {self.region!r} is not an AWS region name; set AWS_REGION (or region in "
                "rollback.toml) like us-east-1."
            )
        if self.output not in OUTPUTS:
            raise ConfigError(f"output {self.output!r} is unknown; choose text or json.")
        return self


MAX_SECONDS = 7 * 24 * 3600.0  # a week: longer is a typo, not a deadline

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
    "health_deadline_s": "ROLLBACK_HEALTH_DEADLINE",
    "backend_url": "PULUMI_BACKEND_URL",
    "refresh": "ROLLBACK_REFRESH",
}


# What rollback.toml may set: every setting but the fleet list (named by --stack/--stacks-file).
FILE_KEYS = tuple(f.name for f in fields(Settings) if f.name != "stacks")


# Pulumi's own grammar for project and stack names (ASCII letters, digits, `-`, `_`, `.`;
# at most 100), less a leading `.`: each name becomes a segment of store keys, where `..`
# would climb out and `.` starts the store's own reserved names.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", re.ASCII)


# botocore's rule for a region name (botocore.utils.validate_region_name: a DNS host label),
# whole: its `$` would let a trailing newline through, and it checks only on a call.
_REGION = re.compile(r"(?![0-9]+$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)


def is_stack(text: str) -> bool:
    """Whether `text` is PROJECT/STACK, each a name Pulumi and the store both accept."""
    parts = text.split("/")
    return len(parts) == 2 and all(_NAME.fullmatch(p) for p in parts)


def stack_problem(text: str) -> str | None:
    """What is wrong with `text` as PROJECT/STACK, as the end of a sentence; None if nothing."""
    if is_stack(text):
        return None
    if text.count("/") != 1 or not all(text.split("/")) or any(c.isspace() for c in text):
        return "is not PROJECT/STACK"
    return (
        "is not PROJECT/STACK: each name is up to 100 ASCII letters, digits, '-', '_' or '.', "
        "not starting with '.'"
    )


def load(
    flags: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings from flags, environment, file and defaults, in that order.

    Flags may carry `stack` as a string or a sequence (`--stack` repeated) and
    `stacks_file`, a path. Raises ConfigError for an unreadable file, unknown
    keys or invalid values, naming the line of a malformed stacks file.
    """
    env = dict(os.environ) if env is None else env
    cwd = cwd or Path.cwd()
    flags = dict(flags or {})
    values: dict[str, Any] = {}
    values.update(_read_file(env, cwd))
    for name, var in _ENV.items():
        if env.get(var) and name != "stack":
            values[name] = env[var]
    if "region" not in values and env.get("AWS_DEFAULT_REGION"):
        values["region"] = env["AWS_DEFAULT_REGION"]
    for name in ("stack", "store", "stacks_file"):
        _refuse_empty(name, flags.get(name))
    stacks_file = flags.pop("stacks_file", None)
    named = _stack_names(flags.pop("stack", None)) or _stack_names(env.get("ROLLBACK_STACK"))
    listed = _read_stacks_file(cwd / stacks_file) if stacks_file else ()
    for name, value in flags.items():
        if value is not None:
            values[name] = value
    values.pop("stacks", None)  # named only by --stack and --stacks-file
    for name in ("debug", "refresh"):
        if isinstance(values.get(name), str):
            values[name] = _parse_bool(name, values[name])
    if "health_deadline_s" in values:
        values["health_deadline_s"] = _parse_seconds(
            "health_deadline_s", values["health_deadline_s"]
        )
    _check_types(values)
    if not named and not listed:
        named = _stack_names(values.get("stack")) or (Settings.stack,)
    values["stacks"] = tuple(dict.fromkeys((*named, *listed)))  # each once, first seen first
    values["stack"] = values["stacks"][0]
    return Settings(**values).validate()


def _refuse_empty(name: str, value: Any) -> None:
    # `--store ""` (an unset variable in a script) must not quietly mean ./artifacts.
    values = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(v, str) and not v.strip() for v in values):
        option = "--" + name.replace("_", "-")
        raise ConfigError(
            f"{option} is empty; pass a value or leave the option out.", option=option
        )


def _parse_seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    # NaN and infinity parse as floats but are no deadline (and are not JSON).
    if isinstance(value, bool) or not 0 < seconds < MAX_SECONDS:
        raise ConfigError(
            f"{name} {value!r} is not a number of seconds above 0 and below {MAX_SECONDS:.0f}; "
            "set it like 60 or 90.5."
        )
    return seconds


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
        if value is None or f.name in ("stacks", "health_deadline_s"):
            continue
        expected = bool if f.name in ("debug", "refresh", "quiet", "verbose") else str
        if not isinstance(value, expected):
            raise ConfigError(
                f"setting {f.name} = {value!r} must be a {'boolean' if expected is bool else 'string'}; "
                "fix rollback.toml or the environment."
            )


def _stack_names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Stacks from a flag or variable: one value or several, each maybe comma-separated."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in v.split(",")]
    return tuple(p.strip() for p in parts if p.strip())


def _read_stacks_file(path: Path) -> tuple[str, ...]:
    """PROJECT/STACK per line; `#` starts a comment; blank lines are skipped."""
    text = read_text_file(path, "stacks file")
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        problem = stack_problem(entry)
        if problem:
            raise ConfigError(
                f"stacks file {path} line {number}: {entry!r} {problem}; "
                "write one stack a line, # for comments.",
                path=str(path),
                line=number,
            )
        found.append(entry)
    if not found:
        raise ConfigError(
            f"stacks file {path} names no stack; write one PROJECT/STACK a line.", path=str(path)
        )
    return tuple(found)


MAX_SMALL_FILE = 1 << 20  # settings, a stack list, checks: a MiB is far more than any needs


def read_small_file(path: Path, what: str) -> bytes:
    """The bytes of a small file the user named (`what`: "config file", ...).

    A regular file of at most MAX_SMALL_FILE bytes: a device or a pipe named
    by mistake (/dev/zero, a FIFO) is refused at once, not read forever.
    Raises ConfigError naming the file.
    """
    import stat

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ConfigError(f"{what} {path} is {kind}; name a file.", path=str(path))
        if info.st_size > MAX_SMALL_FILE:
            raise ConfigError(
                f"{what} {path} holds {info.st_size} bytes, more than {MAX_SMALL_FILE}; "
                "name the right file.",
                path=str(path),
            )
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{what} {path} cannot be read ({exc.strerror or exc}); fix the path or its permissions.",
            path=str(path),
        ) from None


def read_text_file(path: Path, what: str) -> str:
    """`read_small_file` as UTF-8 text (a Windows editor's byte-order mark is dropped)."""
    try:
        return read_small_file(path, what).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.",
            path=str(path),
        ) from None


def _read_file(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    explicit = env.get("ROLLBACK_CONFIG")
    path = Path(explicit) if explicit else cwd / "rollback.toml"
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist; fix ROLLBACK_CONFIG.")
        return {}
    import tomllib  # only when there is a file to read

    try:
        data = tomllib.loads(read_text_file(path, "config file"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}.") from exc
    for key in data:
        if key not in FILE_KEYS:
            # A misspelt key silently ignored is a webhook that never fires.
            import difflib  # only on this error path: start-up does not pay for it

            near = difflib.get_close_matches(key, FILE_KEYS, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConfigError(
                f"config file {path} has an unknown key {key!r}; {hint}"
                f"known keys: {', '.join(sorted(FILE_KEYS))}.",
                path=str(path),
                key=key,
            )
        if isinstance(data[key], str) and not data[key].strip():
            # `store = ""` would put the store in the working directory, unasked.
            raise ConfigError(
                f"config file {path} sets {key} to an empty string; set a value or delete the line.",
                path=str(path),
                key=key,
            )
    return data
