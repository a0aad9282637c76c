"""The dataset abstraction: a list of clips with labels and folds, decoded on demand and cached.

A :class:`ClipDataset` yields ``(waveform, label)`` where ``waveform`` is a float32 tensor
``(time,)`` at 16 kHz, peak-normalised. Decoding goes through :mod:`ssgan.data.cache`, so a second
run reads the 16 kHz samples from disk instead of decoding and resampling again.

Problems found while *indexing* (metadata rows whose audio file is absent) are collected in
``problems`` and the clip is left out; problems found while *decoding* (a corrupt file) are
raised by :meth:`ClipDataset.waveforms` as one :class:`DatasetError` that lists every bad file,
so training never dies half-way through an epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ssgan import SAMPLE_RATE
from ssgan.data.cache import load_cached
from ssgan.errors import AudioError, DatasetError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class Clip:
    """One labelled clip: its file, class index, official fold (None if the dataset has none)."""

    path: Path
    label: int
    fold: int | None
    name: str


@dataclass
class ClipDataset(Dataset):
    """Clips with labels over a fixed list of class names; yields ``(waveform (time,), label)``."""

    name: str
    root: Path
    class_names: list[str]
    clips: list[Clip]
    problems: list[tuple[str, str]] = field(default_factory=list)
    cache: bool = True
    _memory: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        clip = self.clips[index]
        return self._load(clip), clip.label

    def _load(self, clip: Clip) -> torch.Tensor:
        key = id(clip)
        if key not in self._memory:
            x = load_cached(clip.path, sample_rate=SAMPLE_RATE, use_cache=self.cache)
            self._memory[key] = torch.from_numpy(x)
        return self._memory[key]

    def labels(self) -> list[int]:
        return [c.label for c in self.clips]

    def folds(self) -> list[int | None]:
        return [c.fold for c in self.clips]

    def waveforms(self, progress: Callable[[int], None] | None = None) -> list[torch.Tensor]:
        """Decode every clip (from the cache when possible) and keep it in memory.

        Raises one ``DatasetError`` listing every file that fails, instead of failing on the first.
        ``progress`` (if given) is called with 1 after each clip, e.g. ``tqdm.update``.
        """
        out: list[torch.Tensor] = []
        bad: list[str] = []
        for clip in self.clips:
            try:
                out.append(self._load(clip))
            except AudioError as exc:
                bad.append(str(exc))
            if progress is not None:
                progress(1)
        if bad:
            shown = "; ".join(bad[:5]) + (f"; ... and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise DatasetError(
                f"{self.name} at {self.root}: {len(bad)} of {len(self.clips)} clips cannot be "
                f"loaded: {shown} (run `ssgan data check` for the full list)"
            )
        return out

    def subset(self, indices: Sequence[int], name: str | None = None) -> ClipDataset:
        """A dataset over ``clips[i] for i in indices`` sharing the class names and memory cache."""
        return ClipDataset(
            name=name or self.name,
            root=self.root,
            class_names=self.class_names,
            clips=[self.clips[i] for i in indices],
            problems=[],
            cache=self.cache,
            _memory=self._memory,
        )

    def counts_per_class(self) -> dict[str, int]:
        counts = np.bincount(self.labels(), minlength=len(self.class_names))
        return {n: int(c) for n, c in zip(self.class_names, counts, strict=True)}

    def counts_per_fold(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.clips:
            key = str(c.fold) if c.fold is not None else "none"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))


def find_audio(directory: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``directory`` with any audio suffix (wav first, then flac, ...)."""
    for suffix in AUDIO_SUFFIXES:
        p = directory / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None
