"""Command-line options derived from the config models' fields, so a setting is declared once.

Each field declared with :func:`~firmware_sim.config_model.setting` and a flag becomes one argparse option:
its type (and range check) from the field's annotation and rules, its choices from an enum, its help from
the description plus the range and default. Booleans that default to off are switches (``--aec``); those
that default to on or to the profile are ``--x/--no-x`` pairs. Variable tuples are repeatable
(``--bystander A --bystander B``), fixed ones take that many values (``--bystander-gap-s 1 4``).

Options nobody gave stay out of the namespace, so the model's own default (and profile default) applies.
"""

from __future__ import annotations

import argparse
import enum
import types
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from .config_model import bounds, describe_error


def flagged_fields(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo, dict[str, Any]]]:
    """The fields that have a command-line flag, with their ``setting`` metadata."""
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("flag"):
            yield name, info, extra


def dest_of(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_model_options(group: argparse._ActionsContainer, model: type[BaseModel]) -> None:
    """One option per flagged field of ``model``; a flag already there (``--seed``) is shared."""
    taken = set(getattr(group, "_option_string_actions", {}))
    for name, info, extra in flagged_fields(model):
        flag = str(extra["flag"])
        if flag in taken:
            continue
        flags = [str(extra["short"]), flag] if extra.get("short") else [flag]
        kwargs: dict[str, Any] = {"dest": dest_of(flag), "default": argparse.SUPPRESS}
        kinds = _members(info.annotation)
        if bool in kinds:
            if info.default is False:
                kwargs["action"] = "store_true"
            else:
                kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = extra.get("metavar") or name.upper()
            tuple_ann = next((k for k in kinds if get_origin(k) is tuple), None)
            if tuple_ann is not None:
                items = get_args(tuple_ann)
                if len(items) == 2 and items[1] is Ellipsis:
                    kwargs.update(nargs="+", action="extend", type=_parser(model, name, items[0]))
                else:
                    kwargs.update(nargs=len(items), type=_parser(model, name, items[0]))
            elif enums := [k for k in kinds if isinstance(k, type) and issubclass(k, enum.StrEnum)]:
                kwargs["choices"] = [str(e.value) for e in enums[0]]
                kwargs.pop("metavar")
            else:
                kwargs["type"] = _parser(model, name, _annotated(info))
        group.add_argument(*flags, help=_help(model, name, info), **kwargs)


def model_values(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``model`` whose flags were given, by field name."""
    out: dict[str, Any] = {}
    for name, _info, extra in flagged_fields(model):
        dest = dest_of(str(extra["flag"]))
        if hasattr(args, dest):
            value = getattr(args, dest)
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def flag_for(model: type[BaseModel], field: str) -> str | None:
    """The flag that sets ``field``, if any (for error messages)."""
    for name, _info, extra in flagged_fields(model):
        if name == field:
            return str(extra["flag"])
    return None


def _members(annotation: Any) -> list[Any]:
    """The kinds a field takes, without ``None`` and ``Annotated`` wrappers."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) if a is not type(None) for m in _members(a)]
    return [annotation]


def _annotated(info: FieldInfo) -> Any:
    """The field's annotation with its rules (ranges, validators) attached, for a stand-alone check."""
    if not info.metadata:
        return info.annotation
    return Annotated[(info.annotation, *info.metadata)]


def _parser(model: type[BaseModel], name: str, annotation: Any) -> Callable[[str], Any]:
    """An argparse ``type`` that validates one value as the field would, naming the field on error."""
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(describe_error(exc, model, name)) from None

    parse.__name__ = name  # argparse says "invalid <name> value" if the error carries no message
    return parse


def _help(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    notes = []
    lo, hi = bounds(model, name)
    if lo is not None and hi is not None:
        notes.append(f"{lo}..{hi}")
    default = info.default
    if default is True:
        notes.append("default: on")
    elif not (default is None or default is False or default == ()):
        value = default.value if isinstance(default, enum.Enum) else default
        if isinstance(value, tuple):
            value = " ".join(str(v) for v in value)
        notes.append(f"default {value}")
    text = info.description or name
    return f"{text} ({', '.join(notes)})" if notes else text
