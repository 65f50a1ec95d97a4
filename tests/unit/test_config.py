"""rollback.config.load: flag > environment > rollback.toml > default, and bad values refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rollback import config
from rollback.errors import ConfigError, ExitCode


def write_toml(directory: Path, text: str) -> Path:
    path = directory / "rollback.toml"
    path.write_text(text)
    return path


def test_defaults_without_env_or_file(tmp_path: Path) -> None:
    settings = config.load({}, env={}, cwd=tmp_path)
    assert settings == config.Settings()
    assert (settings.project, settings.stack_name) == ("webapp", "dev")


@pytest.mark.parametrize(
    ("name", "var", "file_value", "env_value", "flag_value"),
    [
        ("stack", "ROLLBACK_STACK", "shop/file", "shop/env", "shop/flag"),
        ("store", "ROLLBACK_STORE", "/file", "/env", "/flag"),
        ("engine", "ROLLBACK_ENGINE", "pulumi", "embedded", "auto"),
        ("output", "ROLLBACK_OUTPUT", "json", "text", "json"),
        ("region", "AWS_REGION", "eu-west-1", "eu-west-2", "eu-west-3"),
        ("endpoint_url", "AWS_ENDPOINT_URL", "http://f", "http://e", "http://flag"),
    ],
)
def test_flag_beats_env_beats_file_beats_default(
    tmp_path: Path, name: str, var: str, file_value: str, env_value: str, flag_value: str
) -> None:
    default = getattr(config.Settings(), name)
    assert getattr(config.load({name: None}, env={}, cwd=tmp_path), name) == default
    write_toml(tmp_path, f'{name} = "{file_value}"\n')
    assert getattr(config.load({}, env={}, cwd=tmp_path), name) == file_value
    assert getattr(config.load({}, env={var: env_value}, cwd=tmp_path), name) == env_value
    # A flag left unset (None) does not hide the environment.
    assert getattr(config.load({name: None}, env={var: env_value}, cwd=tmp_path), name) == env_value
    loaded = config.load({name: flag_value}, env={var: env_value}, cwd=tmp_path)
    assert getattr(loaded, name) == flag_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("", False),
    ],
)
def test_debug_from_the_environment(tmp_path: Path, text: str, expected: bool) -> None:
    assert config.load({}, env={"ROLLBACK_DEBUG": text}, cwd=tmp_path).debug is expected


def test_debug_from_file_and_flag(tmp_path: Path) -> None:
    write_toml(tmp_path, "debug = true\n")
    assert config.load({}, env={}, cwd=tmp_path).debug is True
    assert config.load({"debug": False}, env={}, cwd=tmp_path).debug is False


def test_an_empty_variable_is_unset(tmp_path: Path) -> None:
    write_toml(tmp_path, 'stack = "shop/file"\n')
    assert config.load({}, env={"ROLLBACK_STACK": ""}, cwd=tmp_path).stack == "shop/file"


def test_region_names_aws_and_custom_endpoints_use_pass(tmp_path: Path) -> None:
    for region in ("us-east-1", "us-gov-west-1", "cn-north-1", "eu-isoe-west-1", "local"):
        assert config.load(env={"AWS_REGION": region}, cwd=tmp_path).region == region


def test_files_saved_with_a_byte_order_mark_and_crlf_read_as_written(tmp_path: Path) -> None:
    (tmp_path / "rollback.toml").write_bytes(
        b'\xef\xbb\xbfstore = "s3://b/p"\r\nengine = "embedded"\r\n'
    )
    (tmp_path / "stacks.txt").write_bytes(b"\xef\xbb\xbfwebapp/dev\r\nwebapp/prod # live\r\n")
    settings = config.load({"stacks_file": "stacks.txt"}, env={}, cwd=tmp_path)
    assert (settings.store, settings.engine) == ("s3://b/p", "embedded")
    assert settings.stacks == ("webapp/dev", "webapp/prod")


def test_a_device_pipe_directory_or_huge_file_named_as_a_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "stacks.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.txt"
    big.write_bytes(b"# " + b"x" * config.MAX_SMALL_FILE)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"webapp/d\xe9v\n")
    for named, says in (
        ("/dev/zero", "is not a regular file"),
        (str(fifo), "is not a regular file"),
        (str(tmp_path), "is a directory"),
        (str(big), "more than 1048576"),
        (str(latin), "is not UTF-8 text"),
    ):
        with pytest.raises(ConfigError, match=f"stacks file .* {says}"):
            config.load({"stacks_file": named}, env={}, cwd=tmp_path)
        with pytest.raises(ConfigError, match=f"config file .* {says}"):
            config.load({}, env={"ROLLBACK_CONFIG": named}, cwd=tmp_path)


def test_region_falls_back_to_aws_default_region(tmp_path: Path) -> None:
    env = {"AWS_DEFAULT_REGION": "ap-south-1"}
    assert config.load({}, env=env, cwd=tmp_path).region == "ap-south-1"
    env["AWS_REGION"] = "eu-north-1"
    assert config.load({}, env=env, cwd=tmp_path).region == "eu-north-1"


def test_rollback_config_names_another_file(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('store = "s3://bucket/prefix"\n')
    write_toml(tmp_path, 'store = "/ignored"\n')
    settings = config.load({}, env={"ROLLBACK_CONFIG": str(other)}, cwd=tmp_path)
    assert settings.store == "s3://bucket/prefix"


def test_an_unknown_file_key_is_refused_naming_the_nearest_known_one(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'webhok_url = "https://hooks.example.com/x"\n')
    with pytest.raises(ConfigError) as raised:
        config.load({}, env={}, cwd=tmp_path)
    assert raised.value.message.startswith(
        f"config file {path} has an unknown key 'webhok_url'; did you mean 'webhook_url'? known keys: "
    )
    assert raised.value.exit_code == ExitCode.USAGE and raised.value.fields["key"] == "webhok_url"
    write_toml(tmp_path, '[notify]\nchannel = "#ops"\n')
    with pytest.raises(
        ConfigError, match="unknown key 'notify'; known keys: backend_url, debug, endpoint_url"
    ):
        config.load({}, env={}, cwd=tmp_path)


@pytest.mark.parametrize(
    "flags", [{"stack": ("",)}, {"store": ""}, {"store": "  "}, {"stacks_file": ""}]
)
def test_an_empty_stack_or_store_is_refused_not_defaulted(
    tmp_path: Path, flags: dict[str, object]
) -> None:
    with pytest.raises(ConfigError, match=r"^--(stack|store|stacks-file) is empty; pass a value"):
        config.load(flags, env={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("flags", "env", "toml", "says"),
    [
        ({"stack": "webapp"}, {}, None, "not PROJECT/STACK"),
        ({"stack": "webapp/"}, {}, None, "not PROJECT/STACK"),
        ({"stack": "a/b/c"}, {}, None, "not PROJECT/STACK"),
        # Each name is a segment of store keys: refused here, not as a store key later.
        ({"stack": "webapp/.."}, {}, None, "each name is up to 100 ASCII letters"),
        ({"stack": ".webapp/dev"}, {}, None, "not starting with '.'"),
        ({"stack": "webapp/d\u00e9v"}, {}, None, "not PROJECT/STACK: each name"),
        ({"stack": "webapp/" + "d" * 101}, {}, None, "not PROJECT/STACK: each name"),
        ({}, {"ROLLBACK_STACK": "webapp/dev\\"}, None, "not PROJECT/STACK: each name"),
        ({}, {}, 'stack = "webapp/.hidden"\n', "not PROJECT/STACK: each name"),
        ({}, {"ROLLBACK_ENGINE": "terraform"}, None, "engine 'terraform' is unknown"),
        ({}, {"ROLLBACK_OUTPUT": "yaml"}, None, "output 'yaml' is unknown"),
        ({}, {"ROLLBACK_DEBUG": "maybe"}, None, "not a boolean"),
        ({}, {"ROLLBACK_CONFIG": "/no/such/file.toml"}, None, "does not exist"),
        ({}, {}, "stack = [", "cannot be read"),
        ({}, {}, "stack = 5\n", "must be a string"),
        ({}, {}, 'debug = "sometimes"\n', "not a boolean"),
        ({}, {}, "debug = 1\n", "must be a boolean"),
        # An empty string in the file is a mistake, not the default: `store = ""` put the
        # store in the working directory.
        ({}, {}, 'store = ""\n', "sets store to an empty string"),
        ({}, {}, 'stack = " "\n', "sets stack to an empty string"),
        ({}, {}, 'webhook_url = ""\n', "sets webhook_url to an empty string"),
        ({}, {}, 'region = ""\n', "sets region to an empty string"),
        ({}, {}, 'region = "us east"\n', "'us east' is not an AWS region name"),
        ({}, {}, 'region = "us-east-1\\n"\n', "is not an AWS region name"),
        ({}, {"AWS_REGION": "-us-east-1"}, None, "is not an AWS region name"),
        ({}, {"AWS_DEFAULT_REGION": "1234"}, None, "is not an AWS region name"),
    ],
)
def test_bad_values_are_one_config_error(
    tmp_path: Path, flags: dict[str, str], env: dict[str, str], toml: str | None, says: str
) -> None:
    if toml is not None:
        write_toml(tmp_path, toml)
    with pytest.raises(ConfigError, match=says) as raised:
        config.load(flags, env=env, cwd=tmp_path)
    assert raised.value.exit_code == ExitCode.USAGE
    # One sentence that ends with what to do, not a traceback's worth of text.
    assert "\n" not in raised.value.message
    assert raised.value.message.endswith(".")


def test_health_deadline_from_env_file_and_refused_when_not_positive(tmp_path: Path) -> None:
    load = config.load
    assert load(env={}, cwd=tmp_path).health_deadline_s == 60.0
    assert load(env={"ROLLBACK_HEALTH_DEADLINE": "7.5"}, cwd=tmp_path).health_deadline_s == 7.5
    (tmp_path / "rollback.toml").write_text("health_deadline_s = 120\n")
    assert load(env={}, cwd=tmp_path).health_deadline_s == 120.0
    for bad in ("0", "-3", "soon", "nan", "inf", "1e400", "1e9"):
        with pytest.raises(ConfigError, match="not a number of seconds above 0"):
            load(env={"ROLLBACK_HEALTH_DEADLINE": bad}, cwd=tmp_path)
