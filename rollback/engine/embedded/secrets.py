"""Pulumi's passphrase secrets provider, byte-compatible with the Pulumi CLI.

A stack's secrets state (`encryptionsalt` in Pulumi.<stack>.yaml, the
`secrets_providers.state.salt` of a checkpoint) is `v1:<salt b64>:<check>`,
where `<check>` is the word "pulumi" encrypted with the key, so a wrong
passphrase is detected before anything is decrypted. The key is PBKDF2-SHA256
of the passphrase over the salt, 1,000,000 iterations, 32 bytes; values are
AES-256-GCM with a random 12-byte nonce, written `v1:<nonce b64>:<ct+tag b64>`
(sdk/go/common/resource/config/crypt.go, pkg/secrets/passphrase/manager.go).

Deriving a key costs a quarter to a whole second by design, so a
`SecretsKeyring` caches keys per (passphrase, salt) and derives them on a
thread, beside other work; each engine instance owns one, nothing is cached
process-wide.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollback.daemon import in_daemon_thread
from rollback.errors import ConfigError

# The signature key and value Pulumi uses to mark a secret in a checkpoint.
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PBKDF2_ITERATIONS = 1_000_000
KEY_BYTES = 32
NONCE_BYTES = 12
SALT_BYTES = 8
_CHECK_WORD = "pulumi"
MISSING_PASSPHRASE = (
    "this stack has secrets: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) "
    "to the stack's passphrase."
)


def passphrase_from_env() -> str:
    """The passphrase from PULUMI_CONFIG_PASSPHRASE or the file PULUMI_CONFIG_PASSPHRASE_FILE names.

    Raises ConfigError when neither is set (as the Pulumi CLI does when not interactive).
    """
    phrase = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if phrase is not None:
        return phrase
    phrase_file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if phrase_file:
        try:
            return Path(phrase_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read PULUMI_CONFIG_PASSPHRASE_FILE {phrase_file!r}: {exc.strerror}."
            ) from exc
    raise ConfigError(MISSING_PASSPHRASE)


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """PBKDF2-SHA256(passphrase, salt, 1,000,000 iterations) -> 32 bytes. Slow on purpose.

    cryptography's, not hashlib's: both run outside the GIL, but hashlib's took 1.0 s here
    against 0.4 s (measured in one process, same inputs).
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, iterations=PBKDF2_ITERATIONS
    )
    return kdf.derive(passphrase.encode("utf-8"))


@dataclass(frozen=True)
class SymmetricCrypter:
    """Encrypts and decrypts strings as Pulumi's `v1:` values with one 32-byte key."""

    key: bytes = field(repr=False)

    def encrypt(self, plaintext: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.key).encrypt(nonce, plaintext.encode("utf-8"), None)
        return f"v1:{_b64(nonce)}:{_b64(sealed)}"

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt a `v1:` value; raises ConfigError when it is malformed or the key is wrong."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        parts = ciphertext.split(":")
        if len(parts) != 3 or parts[0] != "v1":
            raise ConfigError("an encrypted value is not of the form v1:<nonce>:<ciphertext>.")
        try:
            nonce = base64.b64decode(parts[1], validate=True)
            sealed = base64.b64decode(parts[2], validate=True)
            if len(nonce) != NONCE_BYTES:
                raise ValueError("nonce size is incorrect")
            return AESGCM(self.key).decrypt(nonce, sealed, None).decode("utf-8")
        except (ValueError, InvalidTag) as exc:
            raise ConfigError(
                "a secret cannot be decrypted: the passphrase is incorrect or the value is corrupt; "
                "check PULUMI_CONFIG_PASSPHRASE."
            ) from exc


@dataclass
class SecretsKeyring:
    """Derives and caches passphrase keys for one engine instance (thread-safe).

    A key is derived once per (passphrase, salt), on a thread of its own: PBKDF2
    runs in C outside the GIL, so `warm` (or `prepare_new_state`) lets it run
    beside other work, and whoever needs the key waits only for what is left.
    """

    _keys: dict[tuple[str, bytes], Future[bytes]] = field(default_factory=dict, repr=False)
    # Passphrase -> the salt of the next `new_state`, whose key is already being derived.
    _prepared: dict[str, bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def crypter(self, state: str, passphrase: str | None = None) -> SymmetricCrypter:
        """The crypter for a secrets state `v1:<salt>:<check>`.

        Uses the environment's passphrase when none is given. Raises ConfigError
        when the passphrase is missing or does not decrypt the check value.
        """
        phrase = passphrase if passphrase is not None else passphrase_from_env()
        salt = salt_of(state)
        crypter = SymmetricCrypter(self._key(phrase, salt))
        check = state.split(":", 2)[2]
        try:
            word = crypter.decrypt(check)
        except ConfigError:
            word = ""
        if word != _CHECK_WORD:
            raise ConfigError(
                "incorrect passphrase: PULUMI_CONFIG_PASSPHRASE does not unlock this stack's secrets."
            )
        return crypter

    def new_state(self, passphrase: str | None = None) -> tuple[str, SymmetricCrypter]:
        """A fresh secrets state (random salt) and its crypter, as `pulumi stack init` makes."""
        phrase = passphrase if passphrase is not None else passphrase_from_env()
        with self._lock:
            salt = self._prepared.pop(phrase, None) or os.urandom(SALT_BYTES)
        crypter = SymmetricCrypter(self._key(phrase, salt))
        return f"v1:{_b64(salt)}:{crypter.encrypt(_CHECK_WORD)}", crypter

    def prepare_new_state(self) -> None:
        """Start deriving the key of the next `new_state` (environment's passphrase), so a new
        stack's first checkpoint does not wait a PBKDF2 after its run; no passphrase: nothing."""
        try:
            phrase = passphrase_from_env()
        except ConfigError:
            return  # `new_state` will say so, if the stack has secrets at all
        with self._lock:
            salt = self._prepared.setdefault(phrase, os.urandom(SALT_BYTES))
        self._derive(phrase, salt)

    def _key(self, passphrase: str, salt: bytes) -> bytes:
        return self._derive(passphrase, salt).result()

    def _derive(self, passphrase: str, salt: bytes) -> Future[bytes]:
        with self._lock:
            key = self._keys.get((passphrase, salt))
            if key is None:
                key = self._keys[(passphrase, salt)] = in_daemon_thread(
                    lambda: derive_key(passphrase, salt), "pbkdf2"
                )
            return key


def salt_of(state: str) -> bytes:
    """The salt bytes of a secrets state; raises ConfigError when the state is malformed."""
    parts = state.split(":", 2)
    if len(parts) != 3 or parts[0] != "v1":
        raise ConfigError(
            "the stack's encryptionsalt is malformed (expected v1:<salt>:<check>); "
            "check Pulumi.<stack>.yaml."
        )
    try:
        return base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise ConfigError("the stack's encryptionsalt has an invalid salt.") from exc


def encrypt_config_value(plaintext: str, state: str, keyring: SecretsKeyring | None = None) -> str:
    """The `secure:` value for Pulumi.<stack>.yaml, as `pulumi config set --secret` writes it."""
    return (keyring or SecretsKeyring()).crypter(state).encrypt(plaintext)


def is_secret(value: Any) -> bool:
    """True for a secret as the SDK wraps it (`value`) or as a checkpoint stores it (`ciphertext`)."""
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def wrap_secret(value: Any) -> dict[str, Any]:
    """Mark a plain value secret, in the SDK's wire form."""
    if is_secret(value):
        return dict(value)
    return {SIG_KEY: SECRET_SIG, "value": value}


def contains_secrets(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secrets(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secrets(v) for v in value)
    return False


def seal(value: Any, crypter: SymmetricCrypter) -> Any:
    """Replace every wrapped secret in `value` by Pulumi's checkpoint envelope (ciphertext of its JSON)."""
    if is_secret(value):
        if "ciphertext" in value:
            return dict(value)
        plaintext = json.dumps(value.get("value"), separators=(",", ":"), sort_keys=True)
        return {SIG_KEY: SECRET_SIG, "ciphertext": crypter.encrypt(plaintext)}
    if isinstance(value, dict):
        return {k: seal(v, crypter) for k, v in value.items()}
    if isinstance(value, list):
        return [seal(v, crypter) for v in value]
    return value


def unseal(value: Any, crypter: SymmetricCrypter) -> Any:
    """Replace every checkpoint envelope in `value` by the SDK's wrapped secret (plaintext inside)."""
    if is_secret(value):
        if "ciphertext" in value:
            return wrap_secret(json.loads(crypter.decrypt(str(value["ciphertext"]))))
        return dict(value)
    if isinstance(value, dict):
        return {k: unseal(v, crypter) for k, v in value.items()}
    if isinstance(value, list):
        return [unseal(v, crypter) for v in value]
    return value


def reveal(value: Any) -> Any:
    """Drop the secret wrappers, leaving plain values (for appliers and comparison)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def mask(value: Any) -> Any:
    """Replace every secret (wrapped or sealed) by the string "[secret]", as `pulumi stack output` shows."""
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
