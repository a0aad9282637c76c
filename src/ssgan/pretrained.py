"""Weights shipped inside the package, loaded by name: ``--victim pretrained:esc10-logmel``.

Each entry is a run directory in ``ssgan/weights/<name>/`` in the format ``ssgan train`` writes
(``<checkpoint>.safetensors`` + ``<checkpoint>.json``, weights only: no optimiser state), with a
``provenance.json`` that says how it was made: the commands, the commit, the data and its licence,
and what was measured. ``scripts/build_pretrained.py`` rebuilds them all with the project's own
commands; nothing here is trained or downloaded at run time.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ssgan.errors import CheckpointError

__all__ = ["PREFIX", "available", "is_pretrained", "provenance", "resolve_run"]

PREFIX = "pretrained:"


def _weights_root() -> Path:
    return Path(str(resources.files("ssgan") / "weights"))


def available() -> list[str]:
    """The names of the shipped runs, sorted."""
    root = _weights_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "provenance.json").is_file())


def is_pretrained(source: str | Path) -> bool:
    return str(source).startswith(PREFIX)


def resolve_run(source: str | Path) -> Path:
    """The run directory ``source`` names: ``pretrained:NAME`` -> the shipped one, anything else
    unchanged; ``CheckpointError`` for an unknown name (listing the known ones)."""
    if not is_pretrained(source):
        return Path(source)
    name = str(source)[len(PREFIX) :]  # (a Path keeps the text: Path("pretrained:x"))
    names = available()
    if name not in names:
        known = ", ".join(PREFIX + n for n in names) or "none in this installation"
        raise CheckpointError(f"{source}: no such pretrained run (known: {known})")
    return _weights_root() / name


def provenance(source: str | Path) -> dict[str, Any]:
    """The ``provenance.json`` of a shipped run (``pretrained:NAME`` or the bare name)."""
    text = str(source)
    path = resolve_run(text if is_pretrained(text) else PREFIX + text) / "provenance.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable provenance ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: provenance is not a JSON object")
    return data
