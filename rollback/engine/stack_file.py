"""Stack files (Pulumi.<stack>.yaml) read the way Pulumi reads them, and never rewritten.

Pulumi keeps every top-level config value as a string: the text of the
scalar (sdk/go/common/resource/config/value.go, `Value.UnmarshalYAML`). So a
scalar is read here as its literal text -- `1.10` stays "1.10", `no` stays
"no", `8080` is "8080" -- never through a YAML 1.1 resolver that turns them
into 1.1, False or 8080. Structured values (maps and lists) are kept as
objects whose plain scalars are typed by YAML 1.2's core schema, as Go's
yaml.v3 types them, and a map of exactly one key `secure` anywhere inside is
a secret (config/object.go, `unmarshalObject` and `isSecureValue`): its key
is secret as a whole.

The file's bytes travel with a release (`StackConfig.source`) and are written
into a re-applied worktree as they were: comments, `environment:` imports and
the secrets provider header (`secretsprovider`, `encryptedkey`,
`encryptionsalt`) survive because nothing re-serialises them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollback.engine import StackConfig
from rollback.errors import ConfigError, NotFound

logger = logging.getLogger(__name__)

PASSPHRASE = "passphrase"
SERVICE = "service"
# YAML 1.2 core schema (what Go's yaml.v3 applies to plain scalars decoded into `any`).
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def stack_file_path(root: Path, stack: str) -> Path:
    """Pulumi.<stack>.yaml beside Pulumi.yaml; `org/project/stack` names use their last part."""
    return root / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"


def read_stack_file(root: Path, stack: str, project: str) -> StackConfig:
    """Read Pulumi.<stack>.yaml at `root`; NotFound when missing, ConfigError when malformed."""
    path = stack_file_path(root, stack)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise NotFound(
            f"stack config {path} does not exist; create it or pick another stack."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"stack config {path} is not UTF-8 text.") from exc
    return parse_stack_file(text, project, where=str(path))


def parse_stack_file(text: str, project: str, *, where: str = "the stack file") -> StackConfig:
    """The StackConfig of a stack file's text; `text` itself is kept as `source`."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"stack config {where} is not valid YAML: {exc}.") from exc
    if root is None:
        return StackConfig(source=text)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"stack config {where} must be a mapping with a `config:` section.")
    header = {_key_text(k): v for k, v in _pairs(root)}
    values: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    config_node = header.get("config")
    if config_node is not None and not _is_null(config_node):
        if not isinstance(config_node, yaml.MappingNode):
            raise ConfigError(f"the `config:` section of {where} must be a mapping.")
        for key_node, value_node in _pairs(config_node):
            key = _key_text(key_node)
            full_key = key if ":" in key else f"{project}:{key}"
            if isinstance(value_node, yaml.ScalarNode):
                values[full_key] = value_node.value
                continue
            value = _object(value_node)
            secure = _secure_of(value)
            if secure is not None:
                secrets[full_key] = secure
            else:
                values[full_key] = value
    return StackConfig(
        values=values,
        secrets=secrets,
        encryption_salt=_header_text(header, "encryptionsalt"),
        secrets_provider=_header_text(header, "secretsprovider"),
        encrypted_key=_header_text(header, "encryptedkey"),
        source=text,
    )


def provider_kind(config: StackConfig) -> str:
    """The secrets provider's name: passphrase, service, awskms, hashivault, gcpkms, azurekeyvault, ...

    No `secretsprovider` line means the backend's default: passphrase when the
    file has an `encryptionsalt` or no secrets at all, Pulumi Cloud otherwise.
    """
    provider = (config.secrets_provider or "").strip()
    if not provider:
        has_secrets = bool(config.secrets) or any(nested_secrets(v) for v in config.values.values())
        return PASSPHRASE if config.encryption_salt or not has_secrets else SERVICE
    if provider in (PASSPHRASE, SERVICE):
        return provider
    if provider == "default":
        return SERVICE
    return provider.split("://", 1)[0]


def imports_environment(config: StackConfig) -> bool:
    """True when the stack file imports Pulumi ESC environments (`environment:`)."""
    import yaml

    if not config.source:
        return False
    try:
        root = yaml.compose(config.source, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return False
    if not isinstance(root, yaml.MappingNode):
        return False
    return any(
        isinstance(k, yaml.ScalarNode) and k.value == "environment" and not _is_null(v)
        for k, v in root.value
    )


def nested_secrets(value: Any) -> list[str]:
    """The ciphertexts of every `{secure: ...}` inside a structured value."""
    secure = _secure_of(value)
    if secure is not None:
        return [secure]
    if isinstance(value, dict):
        return [ct for v in value.values() for ct in nested_secrets(v)]
    if isinstance(value, list):
        return [ct for v in value for ct in nested_secrets(v)]
    return []


def decrypt_nested(value: Any, decrypt: Callable[[str], str]) -> Any:
    """`value` with every `{secure: ...}` replaced by its plaintext (config/object.go `Decrypt`)."""
    secure = _secure_of(value)
    if secure is not None:
        return decrypt(secure)
    if isinstance(value, dict):
        return {k: decrypt_nested(v, decrypt) for k, v in value.items()}
    if isinstance(value, list):
        return [decrypt_nested(v, decrypt) for v in value]
    return value


def object_text(value: Any) -> str:
    """A structured value as the program receives it: JSON, keys sorted, compact (Go's json.Marshal)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def secret_keys(config: StackConfig) -> list[str]:
    """Keys the program must treat as secret: top-level `secure:` and structures holding one."""
    return sorted({*config.secrets, *(k for k, v in config.values.items() if nested_secrets(v))})


def render_stack_file(config: StackConfig) -> str:
    """The stack file for a config recorded without its text (older releases).

    Written as JSON, which every YAML reader (Pulumi's too) reads as YAML, so
    no YAML library decides how a value is spelled.
    """
    doc: dict[str, Any] = {}
    for name, value in (
        ("secretsprovider", config.secrets_provider),
        ("encryptedkey", config.encrypted_key),
        ("encryptionsalt", config.encryption_salt),
    ):
        if value:
            doc[name] = value
    body: dict[str, Any] = dict(config.values)
    body.update({key: {"secure": ct} for key, ct in config.secrets.items()})
    doc["config"] = body
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stack_file_text(config: StackConfig) -> str:
    """The bytes to write as Pulumi.<stack>.yaml: the recorded text, else a rendering."""
    return config.source if config.source is not None else render_stack_file(config)


# -- YAML nodes --------------------------------------------------------------


def _pairs(node: Any) -> list[tuple[Any, Any]]:
    """A mapping node's pairs with `<<` merge keys applied (keys written here win)."""
    import yaml

    own = [(k, v) for k, v in node.value if not _is_merge(k)]
    merged: list[tuple[Any, Any]] = []
    for key, value in node.value:
        if not _is_merge(key):
            continue
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for source in sources:
            if isinstance(source, yaml.MappingNode):
                merged += _pairs(source)
    seen = {_key_text(k) for k, _ in own}
    return own + [(k, v) for k, v in merged if _key_text(k) not in seen]


def _is_merge(key: Any) -> bool:
    import yaml

    return isinstance(key, yaml.ScalarNode) and key.style is None and key.value == "<<"


def _key_text(node: Any) -> str:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError("a stack file key must be a plain value, not a map or a list.")
    return str(node.value)


def _is_null(node: Any) -> bool:
    import yaml

    return (
        isinstance(node, yaml.ScalarNode) and node.style is None and bool(_NULL.match(node.value))
    )


def _header_text(header: dict[str, Any], name: str) -> str | None:
    import yaml

    node = header.get(name)
    if node is None or _is_null(node) or not isinstance(node, yaml.ScalarNode):
        return None
    return str(node.value)


def _object(node: Any) -> Any:
    """A node as Go's yaml.v3 decodes it into `any` (YAML 1.2 core schema for plain scalars)."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return {_key_text(k): _object(v) for k, v in _pairs(node)}
    if isinstance(node, yaml.SequenceNode):
        return [_object(item) for item in node.value]
    text = str(node.value)
    if node.style is not None:  # quoted or block scalars are strings
        return text
    if _NULL.match(text):
        return None
    if _BOOL_TRUE.match(text):
        return True
    if _BOOL_FALSE.match(text):
        return False
    if _INT.match(text):
        digits = text.lstrip("+-")
        sign = -1 if text.startswith("-") else 1
        return sign * int(digits, 0) if digits.startswith(("0o", "0x")) else int(text)
    if _FLOAT.match(text):
        return float(text)
    if _SPECIAL_FLOAT.match(text):
        return text  # JSON cannot carry infinities or NaN; Pulumi's json.Marshal refuses them too
    return text


def _secure_of(value: Any) -> str | None:
    """The ciphertext when `value` is `{secure: <string>}` (config/object.go `isSecureValue`)."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str):
        return str(value["secure"])
    return None
