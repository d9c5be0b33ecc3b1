"""Where config values come from, as pydantic-settings sources: the TOML file, systemd credentials and
``COMPANION_<SECTION>__<KEY>`` environment variables.

pydantic-settings does the environment's prefix, ``__`` nesting and case folding; these subclasses add what
companion promised before it used the library: list and table values written as TOML (``["a", "b"]``, not
only JSON), secrets from ``..._FILE=path`` variables, an environment mapping given by the caller (tests,
``load_config(environ=...)``), clear errors for a file that is not UTF-8 or not TOML, and a variable for an
unknown section reported instead of ignored. Each source keeps what it read (:attr:`data`), so the loader
can say which source a bad value came from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, PydanticBaseSettingsSource, TomlConfigSettingsSource

from companion import credentials

if TYPE_CHECKING:
    from importlib.abc import Traversable

    from pydantic_settings import BaseSettings

ENV_PREFIX = "COMPANION_"
ENV_LABEL = "environment (COMPANION_*)"
CREDENTIALS_LABEL = "systemd credentials ($CREDENTIALS_DIRECTORY)"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the reason."""


def read_toml(file: Path) -> dict[str, Any]:
    """The file's tables, or a :class:`ConfigError` naming the file and what is wrong with it."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{file}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {raw[: exc.start].count(10) + 1}): "
            "save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None


class TomlFileSource(TomlConfigSettingsSource):
    """The config file (a missing file gives nothing; the loader decides whether that is an error)."""

    def __init__(self, settings_cls: type[BaseSettings], file: Path) -> None:
        self.label = str(file)
        super().__init__(settings_cls, toml_file=file)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        return read_toml(Path(str(file_path)))

    @property
    def data(self) -> dict[str, Any]:
        return self.toml_data


class CredentialsSource(PydanticBaseSettingsSource):
    """Secrets systemd passes as files in ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=mqtt.password``)."""

    label = CREDENTIALS_LABEL

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.data = credentials.credentials(environ)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, True

    def __call__(self) -> dict[str, Any]:
        return self.data


class EnvSource(EnvSettingsSource):
    """``COMPANION_<SECTION>__<KEY>`` variables of ``environ``: text as written, lists and tables as TOML."""

    label = ENV_LABEL

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Only SECTION__KEY variables: COMPANION_CONFIG, COMPANION_SIM_SOCKET ... name other things.
        return {
            name.lower(): value
            for name, value in self._environ.items()
            if name.upper().startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]
        }

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        """A list or table is written as TOML; text that is not TOML is left for validation to report."""
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            return value

    def __call__(self) -> dict[str, Any]:
        return self.data

    @cached_property
    def data(self) -> dict[str, Any]:
        """The variables as ``{section: {key: value}}``, secret files read (each once)."""
        out: dict[str, Any] = super().__call__()
        prefix = len(ENV_PREFIX)
        for name, raw in self.env_vars.items():
            section, _, key = name[prefix:].partition("__")
            if section not in self.settings_cls.model_fields:
                out.setdefault(section, {})[key] = raw  # reported as an unknown key, not ignored
        for section, values in out.items():
            if not isinstance(values, dict):
                continue
            for key in [k for k in values if credentials.file_variable(section, k)]:
                path = values.pop(key)
                secret = key.removesuffix("_file")
                if secret not in values:  # the value itself wins over its file
                    variable = f"{ENV_PREFIX}{section}__{key}".upper()
                    values[secret] = credentials.read_secret_file(
                        path, source=f"environment ({variable})", key=f"{section}.{secret}"
                    )
        return out
