"""Pulumi's passphrase secrets provider and the stack config file, as the embedded engine reads them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from rollback.engine.embedded.secrets import (
    SecretsKeyring,
    derive_key,
    encrypt_config_value,
    mask,
    reveal,
    seal,
    unseal,
    wrap_secret,
)
from rollback.engine.embedded.stack_config import load_stack_config
from rollback.errors import ConfigError, NotFound

PASSPHRASE = "test-passphrase"


@pytest.fixture(scope="module")
def keyring() -> SecretsKeyring:
    return SecretsKeyring()


@pytest.fixture(scope="module")
def state(keyring: SecretsKeyring) -> str:
    new_state, _ = keyring.new_state(PASSPHRASE)
    return new_state


def test_key_is_pbkdf2_sha256_with_a_million_iterations() -> None:
    import hashlib

    salt = b"\x01\x02\x03\x04\x05\x06\x07\x08"

    expected = hashlib.pbkdf2_hmac("sha256", PASSPHRASE.encode(), salt, 1_000_000, 32)
    assert derive_key(PASSPHRASE, salt) == expected


def test_values_written_are_aes_gcm_under_the_derived_key(
    keyring: SecretsKeyring, state: str
) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ciphertext = encrypt_config_value("hunter2", state, keyring)

    version, nonce, sealed = ciphertext.split(":")
    assert version == "v1"
    assert len(base64.b64decode(nonce)) == 12
    key = derive_key(PASSPHRASE, base64.b64decode(state.split(":")[1]))
    assert (
        AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None) == b"hunter2"
    )


def test_a_state_made_by_the_keyring_checks_the_passphrase(
    keyring: SecretsKeyring, state: str
) -> None:
    assert keyring.crypter(state, PASSPHRASE).decrypt(state.split(":", 2)[2]) == "pulumi"
    with pytest.raises(ConfigError, match="incorrect passphrase"):
        keyring.crypter(state, "not-the-passphrase")


def test_a_missing_passphrase_is_a_config_error_saying_what_to_set(
    state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)

    with pytest.raises(ConfigError, match="set PULUMI_CONFIG_PASSPHRASE"):
        SecretsKeyring().crypter(state)


def test_the_passphrase_may_come_from_a_file(
    keyring: SecretsKeyring, state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phrase_file = tmp_path / "passphrase"
    phrase_file.write_text(PASSPHRASE + "\n")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(phrase_file))

    assert keyring.crypter(state).decrypt(encrypt_config_value("x", state, keyring)) == "x"


def test_checkpoint_values_seal_and_unseal_round_trip(keyring: SecretsKeyring, state: str) -> None:
    crypter = keyring.crypter(state, PASSPHRASE)
    value = {"password": wrap_secret("dev-only-Passw0rd"), "port": 5432, "tags": {"a": "b"}}

    sealed = seal(value, crypter)

    text = json.dumps(sealed)
    assert "dev-only-Passw0rd" not in text
    assert (
        sealed["password"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    )
    assert json.loads(crypter.decrypt(sealed["password"]["ciphertext"])) == "dev-only-Passw0rd"
    assert reveal(unseal(sealed, crypter)) == {
        "password": "dev-only-Passw0rd",
        "port": 5432,
        "tags": {"a": "b"},
    }
    assert mask(sealed)["password"] == "[secret]"


def test_the_reference_stack_config_decrypts_with_the_dev_passphrase(
    keyring: SecretsKeyring,
) -> None:
    """Pulumi.dev.yaml was written for the Pulumi CLI; its secure value must open here too."""
    program_dir = Path(
        __file__
    ).parent.parent.parent  # the project: Pulumi.yaml, main: stacks/webapp
    if not (program_dir / "Pulumi.dev.yaml").exists():
        pytest.skip("the reference stack config is not in this tree yet")

    config = load_stack_config(program_dir, "dev", "webapp")

    assert config.values["aws:region"] == "us-east-1"
    assert config.encryption_salt
    crypter = keyring.crypter(config.encryption_salt, PASSPHRASE)
    assert crypter.decrypt(config.secrets["webapp:dbPassword"])


def test_stack_config_namespaces_keys_and_keeps_secure_values_encrypted(
    keyring: SecretsKeyring, state: str, tmp_path: Path
) -> None:
    secure = encrypt_config_value("s3cr3t", state, keyring)
    (tmp_path / "Pulumi.dev.yaml").write_text(
        f"encryptionsalt: {state}\n"
        "config:\n"
        "  aws:region: us-east-1\n"
        "  liveColor: blue\n"
        "  webapp:weights:\n"
        "    blue: 100\n"
        "  webapp:count: 2\n"
        "  webapp:token:\n"
        f"    secure: {secure}\n"
    )

    config = load_stack_config(tmp_path, "dev", "webapp")

    assert config.values == {
        "aws:region": "us-east-1",
        "webapp:liveColor": "blue",
        "webapp:weights": {"blue": 100},  # an object; the program gets it as JSON
        "webapp:count": "2",
    }
    assert config.secrets == {"webapp:token": secure}
    assert config.encryption_salt == state


def test_a_missing_stack_config_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="Pulumi.prod.yaml"):
        load_stack_config(tmp_path, "prod", "webapp")


def test_a_prepared_new_state_is_the_one_made_next_and_derives_its_key_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rollback.engine.embedded import secrets

    derived: list[bytes] = []
    real = secrets.derive_key

    def counting(passphrase: str, salt: bytes) -> bytes:
        derived.append(salt)
        return real(passphrase, salt)

    monkeypatch.setattr(secrets, "derive_key", counting)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    ring = SecretsKeyring()

    ring.prepare_new_state()  # returns at once: the key is derived on a thread
    state, crypter = ring.new_state()
    again, _ = ring.new_state()

    salt = base64.b64decode(state.split(":")[1])
    assert derived[0] == salt
    assert ring.crypter(state).decrypt(crypter.encrypt("x")) == "x"
    assert derived.count(salt) == 1
    assert again.split(":")[1] != state.split(":")[1]  # only the next state was prepared


def test_preparing_without_a_passphrase_derives_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    ring = SecretsKeyring()

    ring.prepare_new_state()

    assert ring._keys == {}
    with pytest.raises(ConfigError, match="PULUMI_CONFIG_PASSPHRASE"):
        ring.new_state()
