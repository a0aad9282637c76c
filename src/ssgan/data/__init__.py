"""Datasets (ESC-50, ESC-10, UrbanSound8K, a folder: CSV or class folders), splits, segmentation."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ssgan.data.base import Clip, ClipDataset
from ssgan.data.esc50 import load_esc50
from ssgan.data.folder import load_folder
from ssgan.data.splits import make_split, parse_split
from ssgan.data.urbansound8k import load_urbansound8k

__all__ = [
    "DATASETS",
    "Clip",
    "ClipDataset",
    "bundled_root",
    "load_dataset",
    "make_split",
    "parse_split",
]

DATASETS = ("esc50", "esc10", "urbansound8k", "folder")


def bundled_root() -> Path:
    """The small ESC-10 excerpt shipped inside the package (official ESC-50 layout, 16 kHz FLAC)."""
    return Path(str(resources.files("ssgan") / "bundled" / "ESC-50"))


def load_dataset(
    name: str,
    root: str | Path,
    *,
    csv_path: str | Path | None = None,
    class_names: list[str] | None = None,
    cache: bool = True,
) -> ClipDataset:
    """Index dataset ``name`` (one of ``DATASETS``) at ``root`` (``"bundled"``: bundled clips)."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r}: expected one of {', '.join(DATASETS)}")
    if str(root) == "bundled":
        root = bundled_root()
    if name == "esc50":
        return load_esc50(root, cache=cache)
    if name == "esc10":
        return load_esc50(root, esc10=True, cache=cache)
    if name == "urbansound8k":
        return load_urbansound8k(root, cache=cache)
    return load_folder(root, csv_path=csv_path, class_names=class_names, cache=cache)
