"""A user's own data: audio files plus a CSV of ``path,label`` (optional ``fold`` column).

Paths in the CSV are relative to the CSV's folder (or absolute). Labels are class names; the class
list is their sorted set unless ``class_names`` is given (e.g. a victim's classes), in which case
an unknown label is an error. Duplicate paths are an error; missing files are ``problems``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ssgan.data.base import Clip, ClipDataset
from ssgan.data.csvutil import as_int, read_rows
from ssgan.errors import DatasetError


def load_folder(
    root: str | Path,
    *,
    csv_path: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    cache: bool = True,
) -> ClipDataset:
    """Index ``root`` with ``csv_path`` (default ``root/labels.csv``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    csv_file = Path(csv_path) if csv_path is not None else root / "labels.csv"
    rows = read_rows(csv_file, ("path", "label"))
    if not rows:
        raise DatasetError(f"{csv_file}: no rows")
    labels = sorted({row["label"] for _, row in rows})
    if class_names is None:
        class_names = labels
    else:
        unknown = [lab for lab in labels if lab not in class_names]
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
