"""The base of the simulator's config models: frozen pydantic models whose errors are :class:`ConfigError`.

Every field is declared with :func:`setting`, which keeps its help text and its command-line flag next to
its type, default and range; ``python -m firmware_sim`` derives its options from them
(:mod:`firmware_sim.options`). Errors name the field and the rule: ``volume = 101 is outside 0..100``.
"""

from __future__ import annotations

from typing import Annotated, Any, Self, SupportsInt

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.json_schema import JsonDict
from pydantic_core import ErrorDetails

from companion.protocol import CodecId, codec_by_name, codec_spec


class ConfigError(ValueError):
    """A simulator setting is out of range or inconsistent; the message says which and why."""


def _no_bool(value: object) -> object:
    """A number field takes no ``True``/``False`` (pydantic would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    return value


def _to_codec(value: object) -> object:
    """A codec by name ('opus', 'pcm16' ...) or wire id; ``None`` stays (the profile's default)."""
    if value is None or isinstance(value, CodecId):
        return value
    if isinstance(value, str):
        return codec_by_name(value)  # its ValueError names the known codecs
    if isinstance(value, bool) or not isinstance(value, SupportsInt):
        raise ValueError(f"{value!r} is not a codec name or number")
    try:
        return codec_spec(int(value)).id
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def to_strs(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
Codec = Annotated[CodecId | str | None, BeforeValidator(_to_codec)]
CodecItem = Annotated[CodecId, BeforeValidator(_to_codec)]
Codecs = tuple[CodecItem, ...] | None


def setting(
    default: Any,
    help: str,
    flag: str | None,
    metavar: str | None = None,
    *,
    short: str | None = None,
    **rules: Any,
) -> Any:
    """A field with its help text and its command-line flag (``None``: deliberately not a flag).

    ``rules`` are pydantic's constraints (``ge``, ``le`` ...); the help shows the default and the range.
    """
    extra: JsonDict = {"flag": flag, "metavar": metavar, "short": short}
    return Field(default, description=help, json_schema_extra=extra, **rules)


def describe(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per problem, each naming the field (``mic_opus.bitrate``) and the rule it broke."""
    return "; ".join(_describe_one(err, model) for err in exc.errors(include_url=False))


def describe_error(exc: ValidationError, model: type[BaseModel], field: str) -> str:
    """:func:`describe` for one field's value checked on its own (a command-line value)."""
    errors = exc.errors(include_url=False)
    for err in errors:
        err["loc"] = (field, *err["loc"])
    return "; ".join(_describe_one(err, model) for err in errors)


def _describe_one(err: ErrorDetails, model: type[BaseModel] | None) -> str:
    where = ".".join(str(p) for p in err["loc"])
    ctx = err.get("ctx") or {}
    if err["type"] == "value_error" and "error" in ctx:
        text = str(ctx["error"])
        return text if not where or text.startswith(where) else f"{where}: {text}"
    if err["type"] in ("greater_than_equal", "less_than_equal", "finite_number") and where:
        lo, hi = bounds(model, str(err["loc"][0])) if len(err["loc"]) == 1 else (None, None)
        if lo is not None and hi is not None:
            return f"{where} = {err['input']} is outside {lo}..{hi}"
    return f"{where}: {err['msg']} (got {err['input']!r})" if where else err["msg"]


def bounds(model: type[BaseModel] | None, name: str) -> tuple[Any, Any]:
    info = model.model_fields.get(name) if model is not None else None
    lo = hi = None
    for rule in info.metadata if info is not None else ():
        lo = getattr(rule, "ge", lo)
        hi = getattr(rule, "le", hi)
    return lo, hi


class SimModel(BaseModel):
    """Frozen, no unknown keys, no NaN; errors raise :class:`ConfigError` naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, type(self))) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated again like a new config."""
        return type(self)(**{**self.fields(), **changes})

    def fields(self) -> dict[str, Any]:
        """The field values as they are (nested models stay models, unlike ``model_dump``)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def _resolve(self, name: str, value: Any) -> None:
        """Fill a profile default in after validation (the model is frozen to everyone else)."""
        self.__dict__[name] = value
