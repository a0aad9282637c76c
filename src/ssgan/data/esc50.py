"""ESC-50 (Piczak 2015) in its official layout, and its official 10-class subset ESC-10.

Layout: ``ROOT/meta/esc50.csv`` (columns ``filename,fold,target,category,esc10,...``) and
``ROOT/audio/<stem>.wav``. The same stems as ``.flac`` (the 16 kHz copies in ../shared/data) are
accepted too. Labels are the official ``target`` (0-49); for ESC-10 they are renumbered 0-9 in
the order of the official targets. Rows whose audio is absent are listed in ``problems``.
"""

from __future__ import annotations

from pathlib import Path

from ssgan.data.base import Clip, ClipDataset, find_audio
from ssgan.data.csvutil import as_int, read_rows
from ssgan.errors import DatasetError

ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10")


def load_esc50(root: str | Path, *, esc10: bool = False, cache: bool = True) -> ClipDataset:
    """Index ESC-50 (``esc10=False``, 50 classes) or ESC-10 (``esc10=True``, 10 classes)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    csv_path = root / "meta" / "esc50.csv"
    rows = read_rows(csv_path, ESC50_COLUMNS)
    audio_dir = root / "audio"
    entries = []
    names_by_target: dict[int, str] = {}
    seen: set[str] = set()
    for line, row in rows:
        target = as_int(csv_path, line, "target", row["target"])
        fold = as_int(csv_path, line, "fold", row["fold"])
        if row["esc10"].lower() not in ("true", "false"):
            raise DatasetError(f"{csv_path}:{line}: column esc10: expected True/False")
        if esc10 and row["esc10"].lower() != "true":
            continue
        stem = Path(row["filename"]).stem
        if stem in seen:
            raise DatasetError(f"{csv_path}:{line}: duplicate row for {row['filename']}")
        seen.add(stem)
        previous = names_by_target.setdefault(target, row["category"])
        if previous != row["category"]:
            raise DatasetError(
                f"{csv_path}:{line}: target {target} is {row['category']!r} here but "
                f"{previous!r} earlier"
            )
        entries.append((stem, target, fold))
    targets = sorted(names_by_target)
    index = {t: i for i, t in enumerate(targets)}
    class_names = [names_by_target[t] for t in targets]
    clips, problems = [], []
    for stem, target, fold in entries:
        path = find_audio(audio_dir, stem)
        if path is None:
            problems.append((str(audio_dir / f"{stem}.wav"), "audio file missing (listed in meta)"))
            continue
        clips.append(Clip(path=path, label=index[target], fold=fold, name=stem))
    name = "esc10" if esc10 else "esc50"
    if not clips:
        raise DatasetError(f"{root}: no {name} clips found under {audio_dir}")
    return ClipDataset(name, root, class_names, clips, problems, cache=cache)
