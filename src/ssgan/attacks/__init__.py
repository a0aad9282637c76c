"""Attacks and their registry.

``ATTACKS`` maps a registry name to an attack class; the SSGAN entry is the dotted path
``"ssgan.attacks.ssgan:SSGANAttack"`` and is imported only when asked for (``attack_class``), so
importing this package stays light and works before that module exists. ``make_attack`` builds an
attack from ``key=value`` strings (the CLI's ``--attack-arg``), converting each value by the
constructor's annotation (no eval).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Iterable
from typing import Any

from ssgan.attacks.base import Attack, LearnedAttack
from ssgan.attacks.budget import Budget
from ssgan.attacks.cw import CW
from ssgan.attacks.ddn import DDN
from ssgan.attacks.fgm import FGM
from ssgan.attacks.fgsm import FGSM
from ssgan.attacks.noise import GaussianNoise
from ssgan.attacks.pgd import PGD
from ssgan.attacks.universal import UAPIterative, UAPPenalty
from ssgan.config import convert_value, parse_key_values

__all__ = [
    "ATTACKS",
    "CW",
    "DDN",
    "FGM",
    "FGSM",
    "PGD",
    "Attack",
    "Budget",
    "GaussianNoise",
    "LearnedAttack",
    "UAPIterative",
    "UAPPenalty",
    "attack_class",
    "make_attack",
]

# name -> class, or "module:Class" for an attack imported on first use.
ATTACKS: dict[str, type[Attack] | str] = {
    "fgsm": FGSM,
    "fgm": FGM,
    "pgd": PGD,
    "cw": CW,
    "ddn": DDN,
    "noise": GaussianNoise,
    "uap-iterative": UAPIterative,
    "uap-penalty": UAPPenalty,
    "ssgan": "ssgan.attacks.ssgan:SSGANAttack",
}


def attack_class(name: str) -> type[Attack]:
    """The class registered as ``name``; ``ValueError`` naming an unknown attack."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}")
    entry = ATTACKS[name]
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise TypeError(f"{entry} is not an Attack subclass")
        return cls
    return entry


def make_attack(name: str, overrides: dict[str, str] | Iterable[str] = ()) -> Attack:
    """Build attack ``name`` with ``key=value`` overrides of its constructor's defaults.

    Values are converted by the constructor's annotations (``int``, ``float``, ``bool``,
    ``Literal``, ``X | None`` with ``none``...). ``ValueError`` names an unknown attack, an
    unknown key (listing the known ones) or a value that does not convert or validate.

    Example::

        make_attack("pgd", ["norm=l2", "eps=0.3", "steps=20"])
    """
    cls = attack_class(name)
    pairs = dict(overrides) if isinstance(overrides, dict) else parse_key_values(overrides)
    pairs = {k.replace("-", "_"): v for k, v in pairs.items()}
    hints = typing.get_type_hints(cls.__init__)
    types = {
        p.name: hints.get(p.name, str)
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    types.update(cls.keyword_settings())
    types.pop("spec", None)  # a GeneratorSpec object: its fields are the settings
    kwargs: dict[str, Any] = {}
    for key, raw in pairs.items():
        if key not in types:
            raise ValueError(
                f"unknown setting {key!r} for attack {name!r}; known: {', '.join(sorted(types))}"
            )
        kwargs[key] = convert_value(key, str(raw), types[key])
    return cls(**kwargs)
