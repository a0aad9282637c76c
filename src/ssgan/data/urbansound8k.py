"""UrbanSound8K (Salamon et al. 2014) in its official layout.

Layout: ``ROOT/metadata/UrbanSound8K.csv`` (columns ``slice_file_name,fsID,start,end,salience,
fold,classID,class``) and ``ROOT/audio/fold<N>/<stem>.wav`` (official: 44.1/48 kHz WAV, any
channel count and bit depth); ``.flac`` copies with the same stems are accepted. Rows whose audio
is absent are listed in ``problems``.
"""

from __future__ import annotations

from pathlib import Path

from ssgan.data.base import Clip, ClipDataset, find_audio
from ssgan.data.csvutil import as_int, read_rows
from ssgan.errors import DatasetError

US8K_COLUMNS = ("slice_file_name", "fold", "classID", "class")


def load_urbansound8k(root: str | Path, *, cache: bool = True) -> ClipDataset:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    rows = read_rows(csv_path, US8K_COLUMNS)
    names: dict[int, str] = {}
    clips, problems = [], []
    seen: set[str] = set()
    for line, row in rows:
        class_id = as_int(csv_path, line, "classID", row["classID"])
        fold = as_int(csv_path, line, "fold", row["fold"])
        stem = Path(row["slice_file_name"]).stem
        if stem in seen:
            raise DatasetError(f"{csv_path}:{line}: duplicate row for {row['slice_file_name']}")
        seen.add(stem)
        previous = names.setdefault(class_id, row["class"])
        if previous != row["class"]:
            raise DatasetError(
                f"{csv_path}:{line}: classID {class_id} is {row['class']!r} here but "
                f"{previous!r} earlier"
            )
        directory = root / "audio" / f"fold{fold}"
        path = find_audio(directory, stem)
        if path is None:
            problems.append(
                (str(directory / f"{stem}.wav"), "audio file missing (listed in metadata)")
            )
            continue
        clips.append(Clip(path=path, label=class_id, fold=fold, name=stem))
    if sorted(names) != list(range(len(names))):
        raise DatasetError(
            f"{csv_path}: classID values are not 0..{len(names) - 1}: {sorted(names)}"
        )
    if not clips:
        raise DatasetError(f"{root}: no UrbanSound8K clips found under {root / 'audio'}")
    class_names = [names[i] for i in range(len(names))]
    return ClipDataset("urbansound8k", root, class_names, clips, problems, cache=cache)
