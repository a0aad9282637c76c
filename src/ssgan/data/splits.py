"""Train/test splits: the official folds and the paper's stratified random 90/10 split.

- ``fold:N``: test on official fold N, train on every other fold present.
- ``paper``: per class, ``ceil(n/10)`` clips drawn at random (seeded) go to test. On the complete
  data this gives the paper's Table I sizes: ESC-50 1800/200, UrbanSound8K 7858/874.
- ``all``: every clip in train, an empty test set (for attacking a whole dataset).
"""

from __future__ import annotations

import numpy as np

from ssgan.data.base import ClipDataset
from ssgan.errors import DatasetError

SPLIT_HELP = "paper (stratified random 90/10, seeded) or fold:N (test on official fold N)"


def parse_split(spec: str) -> tuple[str, int | None]:
    """``"paper"`` -> ("paper", None); ``"fold:3"`` -> ("fold", 3); ``ValueError`` otherwise."""
    if spec in ("paper", "all"):
        return spec, None
    kind, sep, value = spec.partition(":")
    if kind == "fold" and sep:
        try:
            return "fold", int(value)
        except ValueError:
            pass
    raise ValueError(f"split={spec!r}: expected {SPLIT_HELP}")


def make_split(
    dataset: ClipDataset, spec: str, *, seed: int = 0
) -> tuple[ClipDataset, ClipDataset]:
    """Split ``dataset`` by ``spec`` into ``(train, test)``; deterministic for a given seed."""
    kind, fold = parse_split(spec)
    n = len(dataset)
    if kind == "all":
        return dataset.subset(range(n), f"{dataset.name}/all"), dataset.subset([], "empty")
    if kind == "fold":
        folds = dataset.folds()
        present = sorted({f for f in folds if f is not None})
        if not present:
            raise DatasetError(
                f"{dataset.name} at {dataset.root}: split {spec!r} needs folds, this dataset has "
                "none; use --split paper (or all), or give a folder dataset a labels CSV with a "
                "fold column"
            )
        if fold not in present:
            raise DatasetError(
                f"{dataset.name}: split {spec!r}: fold {fold} not present (folds: {present})"
            )
        test = [i for i, f in enumerate(folds) if f == fold]
        train = [i for i, f in enumerate(folds) if f != fold]
        if not train:
            raise DatasetError(f"{dataset.name}: split {spec!r} leaves no training clips")
    else:
        rng = np.random.default_rng(seed)
        labels = np.asarray(dataset.labels())
        test = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            k = (len(members) + 9) // 10  # ceil(n/10) in integers (0.1*n is inexact)
            test.extend(rng.permutation(members)[:k].tolist())
        test = sorted(test)
        chosen = set(test)
        train = [i for i in range(n) if i not in chosen]
    return (
        dataset.subset(train, f"{dataset.name}/{spec}/train"),
        dataset.subset(test, f"{dataset.name}/{spec}/test"),
    )
