"""Scan a dataset: decode every clip, collect counts, durations and every problem file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ssgan import SAMPLE_RATE
from ssgan.data.base import ClipDataset
from ssgan.data.cache import load_cached
from ssgan.errors import AudioError


def check_dataset(
    dataset: ClipDataset, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Decode every clip of ``dataset`` and summarise it.

    Returns a JSON-ready dict with ``clips`` (clips that load), ``classes`` and ``folds`` (counts),
    ``sample_rate``, ``problems`` (a list of ``{"file", "reason"}``, including metadata rows whose
    audio is absent), ``per_fold``, ``per_class``, ``class_names`` and ``duration_seconds``
    statistics (min, mean, max, total).
    """
    problems = [{"file": f, "reason": r} for f, r in dataset.problems]
    durations = []
    ok_labels, ok_folds = [], []
    for clip in dataset.clips:
        try:
            x = load_cached(clip.path, sample_rate=SAMPLE_RATE, use_cache=dataset.cache)
        except AudioError as exc:
            problems.append({"file": exc.path, "reason": exc.reason})
        else:
            durations.append(len(x) / SAMPLE_RATE)
            ok_labels.append(clip.label)
            ok_folds.append(clip.fold)
        if progress is not None:
            progress(1)
    counts = np.bincount(np.asarray(ok_labels, dtype=np.int64), minlength=len(dataset.class_names))
    per_fold: dict[str, int] = {}
    for f in ok_folds:
        key = "none" if f is None else str(f)
        per_fold[key] = per_fold.get(key, 0) + 1
    d = np.asarray(durations) if durations else np.zeros(1)
    return {
        "dataset": dataset.name,
        "root": str(dataset.root),
        "clips": len(durations),
        "classes": len(dataset.class_names),
        "folds": len([k for k in per_fold if k != "none"]),
        "sample_rate": SAMPLE_RATE,
        "problems": problems,
        "per_fold": dict(sorted(per_fold.items())),
        "per_class": {n: int(c) for n, c in zip(dataset.class_names, counts.tolist(), strict=True)},
        "class_names": list(dataset.class_names),
        "duration_seconds": {
            "min": float(d.min()),
            "mean": float(d.mean()),
            "max": float(d.max()),
            "total": float(d.sum()) if durations else 0.0,
        },
    }
