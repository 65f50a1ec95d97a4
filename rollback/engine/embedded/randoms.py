"""The `random` provider's resources (pulumi_random), applied in-process: nothing in the cloud.

Semantics follow the Terraform random provider that pulumi-random bridges
(terraform-provider-random, internal/provider/resource_*.go): every input
forces a replacement (`keepers` included), so a value is drawn once at create
and kept, unchanged, across every later update; the id is the value itself
(`none` for a password, whose `result` and `bcryptHash` are secret). Values
come from `secrets` (a CSPRNG).
"""

from __future__ import annotations

import base64
import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Any

from rollback.engine.embedded.secrets import wrap_secret
from rollback.errors import EngineError

PACKAGE = "random"

# terraform-provider-random's defaults: upper, lower, numeric and special all on.
_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"
# Short word lists in the style of petname (adverb, adjective, name).
_ADVERBS = (
    "briefly",
    "calmly",
    "deeply",
    "evenly",
    "firmly",
    "gladly",
    "kindly",
    "mostly",
    "neatly",
    "openly",
    "quickly",
    "rarely",
    "safely",
    "simply",
    "truly",
    "wholly",
)
_ADJECTIVES = (
    "able",
    "brave",
    "clever",
    "daring",
    "eager",
    "fair",
    "gentle",
    "happy",
    "honest",
    "jolly",
    "keen",
    "lucky",
    "merry",
    "noble",
    "proud",
    "quiet",
    "ready",
    "steady",
    "tidy",
    "vital",
    "witty",
    "young",
    "zesty",
    "bold",
)
_NAMES = (
    "badger",
    "beaver",
    "bison",
    "condor",
    "crane",
    "dingo",
    "eagle",
    "falcon",
    "ferret",
    "gecko",
    "heron",
    "ibis",
    "jackal",
    "koala",
    "lemur",
    "lynx",
    "marten",
    "newt",
    "otter",
    "panda",
    "quail",
    "raven",
    "salmon",
    "tapir",
    "walrus",
    "yak",
)


def _bool(inputs: dict[str, Any], key: str, default: bool = True) -> bool:
    value = inputs.get(key)
    return default if value is None else bool(value)


def _int(inputs: dict[str, Any], key: str, default: int = 0) -> int:
    value = inputs.get(key)
    return default if value is None else int(value)


def _draw_string(token: str, inputs: dict[str, Any]) -> str:
    length = _int(inputs, "length")
    if length < 1:
        raise EngineError(f"{token}: `length` must be at least 1.", type=token)
    classes: list[tuple[str, int]] = []
    if _bool(inputs, "upper"):
        classes.append((string.ascii_uppercase, _int(inputs, "minUpper")))
    if _bool(inputs, "lower"):
        classes.append((string.ascii_lowercase, _int(inputs, "minLower")))
    if _bool(inputs, "numeric", _bool(inputs, "number")):
        classes.append((string.digits, _int(inputs, "minNumeric")))
    if _bool(inputs, "special"):
        classes.append((str(inputs.get("overrideSpecial") or _SPECIAL), _int(inputs, "minSpecial")))
    if not classes:
        raise EngineError(f"{token}: at least one character class must be enabled.", type=token)
    if sum(minimum for _, minimum in classes) > length:
        raise EngineError(f"{token}: the minimum counts exceed `length` ({length}).", type=token)
    chars = [secrets.choice(alphabet) for alphabet, minimum in classes for _ in range(minimum)]
    everything = "".join(alphabet for alphabet, _ in classes)
    chars += [secrets.choice(everything) for _ in range(length - len(chars))]
    # Shuffle so the required characters are not all at the front.
    for i in range(len(chars) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


@dataclass(frozen=True)
class _Random:
    """Common lifecycle: create draws, read echoes the inputs (nothing to drift), delete forgets."""

    token = ""
    # Every input forces a new value (all attributes are ForceNew in the random provider).
    replace_on = frozenset(
        {
            "keepers",
            "length",
            "special",
            "upper",
            "lower",
            "numeric",
            "number",
            "minUpper",
            "minLower",
            "minNumeric",
            "minSpecial",
            "overrideSpecial",
            "byteLength",
            "prefix",
            "separator",
            "min",
            "max",
            "seed",
            "inputs",
            "resultCount",
        }
    )

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        resource_id, computed = self.draw(inputs)
        return resource_id, {**inputs, **computed}

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        # Only reached for inputs that do not force a new value: the value stays.
        return dict(news)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        return dict(inputs)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        return None


@dataclass(frozen=True)
class RandomPassword(_Random):
    token = "random:index/randomPassword:RandomPassword"

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        import hashlib

        value = _draw_string(self.token, inputs)
        # A salted hash stands in for bcrypt (not in the standard library); it is secret too.
        salt = secrets.token_hex(8)
        digest = hashlib.sha256((salt + value).encode()).hexdigest()
        return "none", {
            "result": wrap_secret(value),
            "bcryptHash": wrap_secret(f"$sha256${salt}${digest}"),
        }


@dataclass(frozen=True)
class RandomString(_Random):
    token = "random:index/randomString:RandomString"

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        value = _draw_string(self.token, inputs)
        return value, {"result": value}


@dataclass(frozen=True)
class RandomId(_Random):
    token = "random:index/randomId:RandomId"

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        size = _int(inputs, "byteLength")
        if size < 1:
            raise EngineError(f"{self.token}: `byteLength` must be at least 1.", type=self.token)
        raw = secrets.token_bytes(size)
        prefix = str(inputs.get("prefix") or "")
        b64_url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return b64_url, {
            "b64Url": prefix + b64_url,
            "b64Std": prefix + base64.b64encode(raw).decode(),
            "hex": prefix + raw.hex(),
            "dec": prefix + str(int.from_bytes(raw, "big")),
        }


@dataclass(frozen=True)
class RandomPet(_Random):
    token = "random:index/randomPet:RandomPet"

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        length = _int(inputs, "length", 2)
        separator = str(inputs.get("separator") if inputs.get("separator") is not None else "-")
        words = [secrets.choice(_NAMES)]
        if length >= 2:
            words.insert(0, secrets.choice(_ADJECTIVES))
        for _ in range(length - 2):
            words.insert(0, secrets.choice(_ADVERBS))
        if inputs.get("prefix"):
            words.insert(0, str(inputs["prefix"]))
        pet = separator.join(words)
        return pet, {"length": float(length), "separator": separator}


@dataclass(frozen=True)
class RandomInteger(_Random):
    token = "random:index/randomInteger:RandomInteger"

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        low, high = _int(inputs, "min"), _int(inputs, "max")
        if high < low:
            raise EngineError(
                f"{self.token}: `max` ({high}) is below `min` ({low}).", type=self.token
            )
        value = low + secrets.randbelow(high - low + 1)
        return str(value), {"result": float(value)}


@dataclass(frozen=True)
class RandomUuid(_Random):
    token = "random:index/randomUuid:RandomUuid"

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        value = str(uuid.uuid4())
        return value, {"result": value}


@dataclass(frozen=True)
class RandomShuffle(_Random):
    token = "random:index/randomShuffle:RandomShuffle"

    def draw(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        items = list(inputs.get("inputs") or [])
        for i in range(len(items) - 1, 0, -1):
            j = secrets.randbelow(i + 1)
            items[i], items[j] = items[j], items[i]
        count = _int(inputs, "resultCount", len(items))
        return "-", {"results": items[:count]}


def appliers() -> dict[str, Any]:
    """Type token -> applier for the random provider's resources."""
    found: list[_Random] = [
        RandomPassword(),
        RandomString(),
        RandomId(),
        RandomPet(),
        RandomInteger(),
        RandomUuid(),
        RandomShuffle(),
    ]
    return {a.token: a for a in found}
