"""A user's own data, in one of two layouts.

**A labels CSV** of ``path,label`` (optional ``fold`` column): ``root/labels.csv``, or the file
``csv_path`` (``--csv``). When it exists it is used, whatever else is in ``root``. Paths in the
CSV are relative to the CSV's folder (or absolute). Duplicate paths are an error; missing files
are ``problems``.

**One folder per class** (the ImageFolder convention), used when there is no CSV::

    root/dog/a.wav
    root/dog/2023/b.flac
    root/rain/c.WAV

The classes are the names of ``root``'s first-level folders; each class's files are found
recursively with every extension of a format soundfile reads (``ssgan.audio.audio_files``, any
case). Names starting with ``.`` are skipped, folders and files alike, as are non-audio files; a
first-level folder without audio files is not a class (a warning says so). An audio file directly
in ``root`` is an error (its class is unknown). These clips have no folds: split them with
``paper`` or ``all``, not ``fold:N``.

In both layouts the labels are class names; the class list is their sorted set unless
``class_names`` is given (e.g. a victim's classes), in which case an unknown label or class folder
is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ssgan.audio import audio_files, is_audio_file
from ssgan.data.base import Clip, ClipDataset
from ssgan.data.csvutil import as_int, read_rows
from ssgan.errors import DatasetError

log = logging.getLogger(__name__)

_LAYOUTS = (
    "a CSV of path,label[,fold] (root/labels.csv, or --csv) or one folder per class "
    "(root/<class>/.../<audio files>)"
)


def load_folder(
    root: str | Path,
    *,
    csv_path: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    cache: bool = True,
) -> ClipDataset:
    """Index ``root`` with ``csv_path`` (default ``root/labels.csv``), else its class folders."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    csv_file = Path(csv_path) if csv_path is not None else root / "labels.csv"
    if csv_path is None and not csv_file.exists():
        return _load_class_folders(root, class_names=class_names, cache=cache)
    rows = read_rows(csv_file, ("path", "label"))
    if not rows:
        raise DatasetError(f"{csv_file}: no rows")
    class_names, unknown = _classes(sorted({row["label"] for _, row in rows}), class_names)
    if unknown:
        raise DatasetError(
            f"{csv_file}: unknown class(es) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(class_names)}"
        )
    index = {n: i for i, n in enumerate(class_names)}
    clips, problems = [], []
    seen: dict[Path, int] = {}
    for line, row in rows:
        if not row["path"]:
            raise DatasetError(f"{csv_file}:{line}: empty path")
        if not row["label"]:
            raise DatasetError(f"{csv_file}:{line}: empty label")
        path = Path(row["path"])
        path = path if path.is_absolute() else csv_file.parent / path
        key = path.resolve()
        if key in seen:
            raise DatasetError(
                f"{csv_file}:{line}: duplicate row for {row['path']} (first on line {seen[key]})"
            )
        seen[key] = line
        fold = as_int(csv_file, line, "fold", row["fold"]) if row.get("fold") else None
        if not path.is_file():
            problems.append((str(path), "audio file missing (listed in CSV)"))
            continue
        clips.append(Clip(path=path, label=index[row["label"]], fold=fold, name=path.stem))
    if not clips:
        raise DatasetError(f"{csv_file}: none of the listed audio files exist")
    return ClipDataset("folder", root, list(class_names), clips, problems, cache=cache)


def _load_class_folders(
    root: Path, *, class_names: Sequence[str] | None, cache: bool
) -> ClipDataset:
    """The clips of ``root/<class>/**/<audio>`` (see the module docstring)."""
    entries = sorted(e for e in root.iterdir() if not e.name.startswith("."))
    loose = [e for e in entries if e.is_file() and is_audio_file(e)]
    if loose:
        more = f" (and {len(loose) - 1} more)" if len(loose) > 1 else ""
        raise DatasetError(
            f"{loose[0]}: audio file directly in the dataset root{more}, and no labels.csv says "
            "its class; put each file in a folder named after its class, or give --csv"
        )
    per_class: dict[str, list[Path]] = {}
    for entry in entries:
        if not entry.is_dir():
            continue
        files = audio_files(entry)
        if files:
            per_class[entry.name] = files
        else:
            log.warning("%s: no audio files in this folder; not a class", entry)
    if not per_class:
        raise DatasetError(
            f"{root}: no labels.csv and no class folder with audio files; a folder dataset is "
            f"{_LAYOUTS}"
        )
    found = sorted(per_class)
    class_names, unknown = _classes(found, class_names)
    if unknown:
        raise DatasetError(
            f"{root / unknown[0]}: class folder(s) {', '.join(map(repr, unknown))} not among "
            f"the known classes: {', '.join(class_names)}"
        )
    index = {n: i for i, n in enumerate(class_names)}
    clips = [
        Clip(path=path, label=index[name], fold=None, name=path.stem)
        for name in found
        for path in per_class[name]
    ]
    return ClipDataset("folder", root, list(class_names), clips, [], cache=cache)


def _classes(found: list[str], given: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The class list (``given``, else the ``found`` names) and the found names not in it."""
    if given is None:
        return found, []
    return list(given), [name for name in found if name not in given]
