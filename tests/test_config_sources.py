"""Where config values come from (pydantic-settings sources): environment > systemd credentials > file >
defaults, TOML-valued lists and tables in the environment, and each bad value named with its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.config import ConfigError, Settings, load_config


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _creds(tmp_path: Path, **secrets: str) -> str:
    folder = tmp_path / "creds"
    folder.mkdir()
    for key, value in secrets.items():
        (folder / key.replace("__", ".")).write_text(value)
    return str(folder)


def test_environment_over_credentials_over_file_over_defaults(tmp_path: Path) -> None:
    path = _file(
        tmp_path, '[llm]\napi_key = "from-file"\nmodel = "file-model"\n[mqtt]\nusername = "file-user"\n'
    )
    creds = _creds(tmp_path, llm__api_key="from-systemd", mqtt__username="systemd-user")
    env = {"CREDENTIALS_DIRECTORY": creds, "COMPANION_MQTT__USERNAME": "env-user"}
    cfg = load_config(path, env, warn=lambda _m: None)
    assert cfg.mqtt.username == "env-user"  # environment over credentials
    assert cfg.llm.api_key == "from-systemd"  # credentials over the file
    assert cfg.llm.model == "file-model"  # the file over the default
    assert cfg.llm.timeout_s == 30.0  # the default
    assert isinstance(cfg, Settings)


def test_settings_reads_the_process_environment_and_init_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "COMPANION_CONFIG", str(_file(tmp_path, '[llm]\nmodel = "file-model"\ntimeout_s = 5\n'))
    )
    monkeypatch.setenv("COMPANION_LLM__TIMEOUT_S", "12.5")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = Settings()
    assert (cfg.llm.model, cfg.llm.timeout_s) == ("file-model", 12.5)
    assert Settings(llm={"model": "init-model"}).llm.model == "init-model"  # type: ignore[arg-type]


def test_lists_and_tables_in_the_environment_are_toml(tmp_path: Path) -> None:
    path = _file(tmp_path, "")
    env = {
        "COMPANION_LINK__ALLOW": "['AA:BB', \"Kitchen\"]",  # TOML's single quotes, not only JSON
        "COMPANION_SATELLITE__PORTS": '{ "AA:BB:CC:DD:EE:FF" = 10801 }',
        "COMPANION_llm__model": "007",  # names are case-insensitive; text stays text
    }
    cfg = load_config(path, env)
    assert cfg.link.allow == ["AA:BB", "Kitchen"]
    assert cfg.satellite.ports == {"AA:BB:CC:DD:EE:FF": 10801}
    assert cfg.llm.model == "007"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"COMPANION_LLM__NOPE": "1"}, "environment (COMPANION_*): llm.nope: unknown key"),
        ({"COMPANION_NOPE__KEY": "1"}, "environment (COMPANION_*): nope: unknown key"),
        (
            {"COMPANION_LINK__ALLOW": "[unclosed"},
            "environment (COMPANION_*): link.allow: Input should be a valid list",
        ),
    ],
)
def test_bad_environment_values_name_the_source(tmp_path: Path, env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_file(tmp_path, ""), env)
    assert str(info.value) == says


def test_a_bad_file_value_is_named_even_when_the_environment_overrides_it(tmp_path: Path) -> None:
    path = _file(tmp_path, '[llm]\ntimeout_s = "soon"\n')
    with pytest.raises(ConfigError, match=r"^.*config\.toml: llm\.timeout_s: Input should be a valid number"):
        load_config(path, {"COMPANION_LLM__TIMEOUT_S": "3"})


def test_other_companion_variables_are_not_config(tmp_path: Path) -> None:
    env = {"COMPANION_SIM_SOCKET": "/tmp/x", "COMPANION_LLM": "{}", "COMPANION_REGISTRY": "/tmp/r.json"}
    assert load_config(_file(tmp_path, ""), env).llm.model == "default"
