"""Typed dataclass configuration shared by every trainer and attack.

A config is a frozen-free ``@dataclass`` with typed fields and commented defaults. Profiles are
plain instances kept in a dict by the module that owns the config. ``apply_overrides`` turns
``key=value`` strings from the CLI into a new instance, converting each value to the field's type
and raising ``ValueError`` naming the key for an unknown key or a bad value (no string eval).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def convert_value(name: str, raw: str, annotation: Any) -> Any:
    """``raw`` (a command-line string) as a value of type ``annotation`` (int, float, str, bool,
    Literal, optional, tuple/list of those); ``ValueError`` naming ``name`` otherwise."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert_value(name, raw, inner[0])
    if origin in (tuple, list):
        items = [s for s in raw.split(",") if s.strip()]
        elem = args[0] if args else str
        values = [convert_value(name, s.strip(), elem) for s in items]
        return tuple(values) if origin is tuple else values
    if annotation is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}={raw!r}: expected a boolean (true/false)")
    if annotation in (int, float, str):
        try:
            return annotation(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r}: expected {annotation.__name__}") from None
    if origin is typing.Literal:
        if raw not in [str(a) for a in args]:
            raise ValueError(f"{name}={raw!r}: expected one of {', '.join(map(str, args))}")
        return type(args[0])(raw)
    raise ValueError(f"{name}: cannot set a field of type {annotation!r} from the command line")


def parse_key_values(items: Iterable[str]) -> dict[str, str]:
    """Split ``["a=1", "b=x"]`` into ``{"a": "1", "b": "x"}``; ``ValueError`` on a bad item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: expected key=value")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def split_sections(
    items: Iterable[str], *, sections: Iterable[str], default: str | None = None
) -> dict[str, list[str]]:
    """Sort ``--set`` items into their sections: the one override syntax of every command.

    ``SECTION.KEY=VALUE`` names the thing it configures (``gan.lr=1e-3``, ``victim.epochs=40``,
    ``attack.eps=0.002``); a bare ``KEY=VALUE`` goes to the command's own section ``default``
    (``ssgan train gan --set lr=1e-3``). Returns ``{section: ["KEY=VALUE", ...]}`` in the order
    given, every known section present. ``ValueError`` names the item for a missing ``=``, an
    unknown section, or a bare key where the command has no section of its own.
    """
    known = list(dict.fromkeys(sections))
    out: dict[str, list[str]] = {name: [] for name in known}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        section, dot, field = key.strip().rpartition(".")
        if not dot:
            if default is None:
                raise ValueError(
                    f"--set {item!r}: say which settings it changes, one of "
                    f"{', '.join(s + '.' + key.strip() for s in known)}"
                )
            section = default
        if section not in out:
            raise ValueError(
                f"--set {item!r}: unknown section {section!r}; this command takes "
                f"{', '.join(known)}"
            )
        out[section].append(f"{field}={value}")
    return out


def apply_overrides(config: T, overrides: dict[str, str] | Iterable[str]) -> T:
    """Return a copy of ``config`` with ``overrides`` (``key=value`` strings or a dict) applied."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    pairs = overrides if isinstance(overrides, dict) else parse_key_values(overrides)
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    for key, raw in pairs.items():
        if key not in names:
            raise ValueError(
                f"unknown setting {key!r} for {type(config).__name__}; "
                f"known: {', '.join(sorted(names))}"
            )
        changes[key] = convert_value(key, raw, hints[key])
    return dataclasses.replace(config, **changes)  # type: ignore[type-var,unused-ignore]


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a dataclass config."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config from ``to_dict`` output, ignoring keys the class no longer has."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for k, v in data.items():
        if k in names:
            kwargs[k] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)
