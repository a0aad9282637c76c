"""On-disk cache of decoded 16 kHz clips.

Decoding and resampling a 44.1 kHz WAV costs far more than reading float32 samples back, and
training reads every clip each run. The cache stores the resampled, *un-normalised* mono signal as
``.npy`` under ``$SSGAN_CACHE`` (default ``~/.cache/ssgan``), keyed by the absolute path, the
file's size and mtime and the target rate, so a changed file is decoded again. Entries are
written atomically; a corrupt entry is ignored and rewritten. Peak normalisation is applied on
read (it is cheap and keeps one cache entry per file).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from ssgan import SAMPLE_RATE
from ssgan.audio import file_fingerprint, load_audio, peak_normalize
from ssgan.io import atomic_write

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("SSGAN_CACHE", Path.home() / ".cache" / "ssgan")) / "decoded"


def cache_key(path: Path, sample_rate: int) -> str:
    size, mtime_ns = file_fingerprint(path)
    raw = f"{path.resolve()}|{size}|{mtime_ns}|{sample_rate}|v1"
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def load_cached(
    path: str | Path, *, sample_rate: int = SAMPLE_RATE, use_cache: bool = True
) -> np.ndarray:
    """``load_audio(path)`` (peak-normalised float32, mono, ``sample_rate``) through the cache."""
    path = Path(path)
    if not use_cache or not path.is_file():
        return load_audio(path, sample_rate=sample_rate)
    entry = cache_dir() / f"{cache_key(path, sample_rate)}.npy"
    if entry.is_file():
        try:
            raw = np.load(entry, allow_pickle=False)
            if raw.dtype == np.float32 and raw.ndim == 1:
                return peak_normalize(raw, path=path)[0]
        except (OSError, ValueError):
            log.warning("ignoring corrupt cache entry %s", entry)
    raw = load_audio(path, sample_rate=sample_rate, normalize=False)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, raw, allow_pickle=False)

    try:
        atomic_write(entry, write)
    except OSError as exc:  # a read-only home must not stop training
        log.warning("cannot write decode cache %s: %s", entry, exc)
    return peak_normalize(raw, path=path)[0]
