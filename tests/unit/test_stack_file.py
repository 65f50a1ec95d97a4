"""Stack files read as Pulumi reads them, carried byte for byte, and their secrets providers.

Pulumi keeps every top-level config value as its text
(sdk/go/common/resource/config/value.go) and recognises `{secure: ...}`
anywhere inside structured values (config/object.go `unmarshalObject`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rollback import stacks
from rollback.aws.session import Clients, make_session
from rollback.engine import StackConfig
from rollback.engine.embedded.engine import EmbeddedEngine
from rollback.engine.embedded.secrets import SecretsKeyring, encrypt_config_value
from rollback.engine.stack_file import (
    parse_stack_file,
    provider_kind,
    read_stack_file,
    render_stack_file,
    secret_keys,
    stack_file_text,
)
from rollback.errors import ConfigError, IntegrityError
from rollback.store import open_store

ODD = """\
# Stack file with every YAML surprise we know of.
environment:
  - webapp/common       # ESC imports stay in the text
config:
  aws:region: us-east-1
  webapp:version: 1.10          # YAML 1.1 reads 1.1
  webapp:enabled: no            # YAML 1.1 reads False
  webapp:switch: on
  webapp:count: 3
  webapp:ratio: 0.50
  webapp:octal: 0o17
  webapp:hex: 0x1F
  webapp:date: 2024-05-01
  webapp:empty:
  webapp:tilde: ~
  webapp:quoted: "007"
  webapp:single: 'yes'
  webapp:literal: |
    line one
    line two
  webapp:folded: >-
    a
    b
  webapp:colon: "a: b"
  webapp:anchor: &shared value-with-anchor
  webapp:alias: *shared
  webapp:tags:
    team: web
    cost: 12
    on: true
    version: 1.10
    list: [1, "2", no, null]
  plain: namespaced-by-the-project
"""


def test_every_top_level_scalar_is_its_literal_text() -> None:
    config = parse_stack_file(ODD, "webapp")

    assert config.values["webapp:version"] == "1.10"
    assert config.values["webapp:enabled"] == "no"
    assert config.values["webapp:switch"] == "on"
    assert config.values["webapp:count"] == "3"
    assert config.values["webapp:ratio"] == "0.50"
    assert config.values["webapp:octal"] == "0o17"
    assert config.values["webapp:hex"] == "0x1F"
    assert config.values["webapp:date"] == "2024-05-01"
    assert config.values["webapp:empty"] == ""
    assert config.values["webapp:tilde"] == "~"
    assert config.values["webapp:quoted"] == "007"
    assert config.values["webapp:single"] == "yes"
    assert config.values["webapp:literal"] == "line one\nline two\n"
    assert config.values["webapp:folded"] == "a b"
    assert config.values["webapp:colon"] == "a: b"
    assert config.values["webapp:alias"] == "value-with-anchor"
    assert config.values["webapp:plain"] == "namespaced-by-the-project"
    assert config.source == ODD


def test_structured_values_are_typed_as_yaml_1_2_and_reach_the_program_as_json() -> None:
    from rollback.engine.embedded.stack_config import config_string

    config = parse_stack_file(ODD, "webapp")

    tags = config.values["webapp:tags"]
    assert tags == {
        "team": "web",
        "cost": 12,
        "on": True,
        "version": 1.1,
        "list": [1, "2", "no", None],
    }
    assert json.loads(config_string(tags)) == tags
    assert config_string(tags).startswith('{"cost":12,')  # keys sorted, compact, as Go marshals


def test_the_release_carries_the_stack_file_byte_for_byte() -> None:
    config = parse_stack_file(ODD, "webapp")
    again = stacks.config_from_bytes(stacks.config_to_bytes(config))

    assert stack_file_text(again) == ODD
    assert again.values == config.values


def test_a_release_recorded_without_the_text_renders_json_that_reads_back_the_same() -> None:
    config = StackConfig(
        values={"webapp:version": "1.10", "webapp:tags": {"a": 1}},
        secrets={"webapp:token": "v1:abc:def"},
        encryption_salt="v1:c2FsdA==:v1:x:y",
    )
    text = render_stack_file(config)
    back = parse_stack_file(text, "webapp")

    assert (back.values, back.secrets, back.encryption_salt) == (
        config.values,
        config.secrets,
        config.encryption_salt,
    )


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("encryptionsalt: v1:c2FsdA==:v1:x:y\n", "passphrase"),
        ("secretsprovider: passphrase\nencryptionsalt: v1:c2FsdA==:v1:x:y\n", "passphrase"),
        (
            "secretsprovider: awskms://alias/rollback?region=us-east-1\nencryptedkey: AQICAHg=\n",
            "awskms",
        ),
        ("secretsprovider: hashivault://rollback\nencryptedkey: dmF1bHQ6djE=\n", "hashivault"),
        (
            "secretsprovider: gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k\n"
            "encryptedkey: CiQA\n",
            "gcpkms",
        ),
        (
            "secretsprovider: azurekeyvault://vault.vault.azure.net/keys/rollback\n"
            "encryptedkey: ZXlK\n",
            "azurekeyvault",
        ),
        ("secretsprovider: service\n", "service"),
        ("", "service"),  # secrets, no salt, no provider: Pulumi Cloud's
    ],
)
def test_every_secrets_provider_header_is_read_and_carried(header: str, kind: str) -> None:
    text = f"{header}config:\n  webapp:token:\n    secure: AAABBBCCC\n"
    config = parse_stack_file(text, "webapp")

    assert provider_kind(config) == kind
    assert config.secrets == {"webapp:token": "AAABBBCCC"}
    carried = stacks.config_from_bytes(stacks.config_to_bytes(config))
    assert carried.secrets_provider == config.secrets_provider
    assert carried.encrypted_key == config.encrypted_key
    assert stack_file_text(carried) == text


def test_stack_files_that_are_not_mappings_are_config_errors(tmp_path: Path) -> None:
    for text in ("- a\n- b\n", "config: [1, 2]\n", "config:\n  a: [\n"):
        with pytest.raises(ConfigError):
            parse_stack_file(text, "webapp")
    (tmp_path / "Pulumi.dev.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_stack_file(tmp_path, "dev", "webapp")


# -- the embedded engine -------------------------------------------------------


@pytest.fixture(scope="module")
def passphrase_state() -> tuple[str, SecretsKeyring]:
    keyring = SecretsKeyring()
    state, _ = keyring.new_state("test-passphrase")
    return state, keyring


@pytest.fixture
def embedded(tmp_path: Path, passphrase_state: tuple[str, SecretsKeyring]) -> EmbeddedEngine:
    engine = EmbeddedEngine(
        store=open_store(str(tmp_path / "store")),
        clients=Clients(make_session(region="us-east-1")),
        project="webapp",
    )
    engine._keyring = passphrase_state[1]  # the module's derived key: one PBKDF2, not one per test
    return engine


def test_nested_secure_values_are_decrypted_and_their_key_is_secret(
    embedded: EmbeddedEngine, passphrase_state: tuple[str, SecretsKeyring]
) -> None:
    state, keyring = passphrase_state
    password = encrypt_config_value("s3cr3t-nested", state, keyring)
    text = (
        f"encryptionsalt: {state}\n"
        "config:\n"
        "  webapp:db:\n"
        "    user: app\n"
        "    port: 5432\n"
        f"    password:\n      secure: {password}\n"
        "    replicas:\n"
        f"      - secure: {password}\n"
    )
    config = parse_stack_file(text, "webapp")

    values, keys = embedded._program_config(config)

    assert keys == ["webapp:db"] == secret_keys(config)
    assert json.loads(values["webapp:db"]) == {
        "user": "app",
        "port": 5432,
        "password": "s3cr3t-nested",
        "replicas": ["s3cr3t-nested"],
    }
    stored = stacks.config_to_bytes(config)
    assert b"s3cr3t-nested" not in stored and password.encode() in stored


def test_esc_imports_are_named_in_a_warning_by_the_embedded_engine(
    embedded: EmbeddedEngine, caplog: pytest.LogCaptureFixture
) -> None:
    from rollback.engine.stack_file import imports_environment

    config = parse_stack_file(ODD, "webapp")
    values, _ = embedded._program_config(config)

    assert imports_environment(config) and not imports_environment(parse_stack_file("a: 1\n", "p"))
    assert "imports ESC environments" in caplog.text
    assert values["webapp:version"] == "1.10"


@pytest.mark.parametrize(
    "header",
    [
        "secretsprovider: awskms://alias/rollback\nencryptedkey: AQICAHg=\n",
        "secretsprovider: hashivault://rollback\nencryptedkey: dmF1bHQ=\n",
        "secretsprovider: gcpkms://projects/p/keys/k\nencryptedkey: CiQA\n",
        "secretsprovider: azurekeyvault://v.vault.azure.net/keys/k\nencryptedkey: ZXlK\n",
        "secretsprovider: service\n",
    ],
)
def test_the_embedded_engine_refuses_other_providers_by_name_before_anything(
    embedded: EmbeddedEngine, header: str, tmp_path: Path
) -> None:
    config = parse_stack_file(f"{header}config:\n  aws:region: us-east-1\n", "webapp")
    kind = provider_kind(config)

    with pytest.raises(ConfigError, match=f"secrets provider is {kind}; the embedded engine"):
        embedded.up(tmp_path / "no-program", "dev", config)

    assert not list((tmp_path / "store").rglob("*.json"))


# -- the store's plaintext check -----------------------------------------------


def _checkpoint_with(value: Any) -> dict[str, Any]:
    return {"version": 3, "deployment": {"resources": [{"urn": "u", "inputs": {"p": value}}]}}


def test_the_plaintext_check_finds_a_secret_anywhere_and_never_names_it() -> None:
    for leaky in ("hunter2-long", {"deep": ["x", "prefix hunter2-long suffix"]}):
        with pytest.raises(IntegrityError) as caught:
            stacks.refuse_plaintext(_checkpoint_with(leaky), ["hunter2-long"], "the checkpoint")
        assert "hunter2" not in str(caught.value)
    stacks.refuse_plaintext(_checkpoint_with("v1:ciphertext"), ["hunter2-long"], "the checkpoint")
    # A short secret counts only as a whole value: "1" is in every checkpoint.
    stacks.refuse_plaintext(_checkpoint_with("port 1234"), ["1"], "the checkpoint")
    with pytest.raises(IntegrityError):
        stacks.refuse_plaintext(_checkpoint_with("1"), ["1"], "the checkpoint")


def test_the_plaintext_check_is_skipped_with_a_reason_for_cloud_providers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_stack_file(
        "secretsprovider: awskms://alias/k\nencryptedkey: AQ==\nconfig:\n  a:\n    secure: AQ==\n",
        "webapp",
    )
    assert stacks.config_secret_plaintexts(config) is None
    assert "skipped: the stack's secrets provider is awskms" in caplog.text
    assert stacks.config_secret_plaintexts(parse_stack_file("config:\n  a: b\n", "webapp")) == []
