"""Audio I/O: decode anything soundfile reads, mix to mono, resample to 16 kHz, peak-normalise.

Every problem with a file raises :class:`ssgan.errors.AudioError` whose message names the file and
the reason (missing, not audio / unreadable, empty, truncated, silent, NaN or Inf samples), so a
user sees ``clips/dog.wav: truncated (data chunk declares 32000 bytes, 15980 present)`` instead of
a libsndfile traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ssgan import SAMPLE_RATE
from ssgan.errors import AudioError
from ssgan.io import atomic_write

__all__ = [
    "SILENCE_PEAK",
    "AudioError",
    "audio_files",
    "audio_suffixes",
    "decode",
    "is_audio_file",
    "load_audio",
    "load_audio_with_peak",
    "open_audio",
    "peak_normalize",
    "resample",
    "save_audio",
]

log = logging.getLogger(__name__)

#: A clip whose absolute maximum is below this cannot be peak-normalised meaningfully.
SILENCE_PEAK = 1e-4

_SUBTYPES = {"PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}

# Extensions of soundfile's formats that differ from the format's name; RAW (header-less) is left
# out: it cannot be opened without being told its rate and sample format.
_SUFFIX_ALIASES = {
    "AIFF": (".aif", ".aifc"),
    "IRCAM": (".sf",),
    "MAT4": (".mat",),
    "MAT5": (".mat",),
    "MPC2K": (".mpc",),
    "NIST": (".sph", ".nist"),
    "OGG": (".oga", ".opus"),
    "SVX": (".8svx", ".iff"),
    "AU": (".snd",),
    "WAVEX": (".wav",),
}


@functools.cache
def audio_suffixes() -> frozenset[str]:
    """Lower-case extensions (``".wav"``, ``".mp3"``, ...) of every format soundfile reads."""
    out: set[str] = set()
    for name in sf.available_formats():
        if name == "RAW":
            continue
        out.add(f".{name.lower()}")
        out.update(_SUFFIX_ALIASES.get(name, ()))
    return frozenset(out)


def is_audio_file(path: str | Path) -> bool:
    """Whether ``path``'s extension (any case) is one of ``audio_suffixes()``; the name only."""
    return Path(path).suffix.lower() in audio_suffixes()


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def audio_files(folder: str | Path, *, exclude: Path | None = None) -> list[Path]:
    """The audio files under ``folder``: recursive, sorted folder by folder, names starting with
    ``.`` left out (files and folders), and nothing at or under ``exclude`` (a resolved path).
    Symbolic links to folders are not followed."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not _inside((here / d).resolve(), exclude)
        )
        found += [
            here / name
            for name in sorted(files)
            if not name.startswith(".") and is_audio_file(name)
        ]
    return found


def _check_wav_truncation(path: Path) -> None:
    """libsndfile silently shortens a truncated WAV; compare its data chunk with the file size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return  # RF64/W64 and friends: leave it to libsndfile
        big = head[:4] == b"RIFX"
        offset = 12
        while offset + 8 <= size:
            fh.seek(offset)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return
            chunk_id = chunk[:4]
            (chunk_size,) = struct.unpack(">I" if big else "<I", chunk[4:])
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                    return
                present = size - offset - 8
                if present < chunk_size:
                    raise AudioError(
                        path,
                        f"truncated (data chunk declares {chunk_size} bytes, {present} present)",
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)


def open_audio(path: str | Path) -> sf.SoundFile:
    """Open ``path`` for reading after checking it exists, is non-empty, is audio and (for WAV)
    is not truncated. Raises ``AudioError`` naming the file; the caller closes the handle."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(path, f"not audio or unreadable ({short_error_text(exc)})") from None
    if handle.format in ("WAV", "WAVEX"):
        try:
            _check_wav_truncation(path)
        except AudioError:
            handle.close()
            raise
    return handle


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to ``(samples (time, channels) float32, sample_rate)``; no resampling.

    Raises ``AudioError`` for a missing, empty, unreadable, truncated or sample-less file.
    """
    with open_audio(path) as handle:
        frames, fmt, rate = handle.frames, handle.format, handle.samplerate
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(path, f"truncated or corrupted ({short_error_text(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no samples (empty audio stream)")
    if frames > 0 and data.shape[0] < frames and fmt not in ("MP3", "OGG"):
        raise AudioError(path, f"truncated ({data.shape[0]} of {frames} frames decoded)")
    return data, int(rate)


def short_error_text(exc: BaseException) -> str:
    """The last line of an exception's message, for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def resample(x: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample ``x`` (time,) or (time, channels) with soxr (high quality); no-op at equal rates."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    if rate_in == rate_out:
        return x
    return soxr.resample(x, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def peak_normalize(x: np.ndarray, *, path: str | Path = "<array>") -> tuple[np.ndarray, float]:
    """Scale by the absolute maximum (the paper's normalisation). Returns ``(x / peak, peak)``.

    Raises ``AudioError`` for a silent clip (peak < ``SILENCE_PEAK``) rather than dividing by ~0.
    """
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < SILENCE_PEAK:
        raise AudioError(path, f"silent (peak {peak:.2e} < {SILENCE_PEAK:g})")
    return (x / peak).astype(np.float32, copy=False), peak


def load_audio_with_peak(
    path: str | Path, *, sample_rate: int = SAMPLE_RATE
) -> tuple[np.ndarray, float]:
    """Load ``path`` as mono ``sample_rate`` float32, peak-normalised; also return the peak.

    The peak is the factor that brings the normalised clip back to the file's own level
    (``x * peak``), which ``ssgan attack`` uses to write outputs at the input's level.
    """
    x = load_audio(path, sample_rate=sample_rate, normalize=False)
    return peak_normalize(x, path=path)


def load_audio(
    path: str | Path, *, sample_rate: int = SAMPLE_RATE, normalize: bool = True
) -> np.ndarray:
    """Load any file soundfile reads as a mono float32 array ``(time,)`` at ``sample_rate``.

    Channels are averaged, the rate is converted with soxr, and (``normalize=True``) the clip is
    divided by its absolute maximum. Raises ``AudioError`` naming the file for missing, empty,
    unreadable, truncated, NaN/Inf or silent audio.
    """
    data, rate = decode(path)
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "contains NaN or Inf samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    mono = resample(np.ascontiguousarray(mono), rate, sample_rate)
    if normalize:
        return peak_normalize(mono, path=path)[0]
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise AudioError(path, f"silent (peak < {SILENCE_PEAK:g})")
    return mono.astype(np.float32, copy=False)


def save_audio(
    path: str | Path,
    x: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    subtype: str = "PCM_16",
) -> Path:
    """Write mono ``x`` (time,) to ``path`` (.wav or .flac by suffix) atomically.

    ``subtype`` is ``PCM_16`` (default), ``PCM_24``, ``PCM_32`` or ``FLOAT`` (wav only). Samples
    outside [-1, 1] are clipped for PCM subtypes (what any PCM writer does) -- callers that care
    should check first. The file appears only when complete (temp file + rename).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    formats = {".wav": "WAV", ".flac": "FLAC"}
    if suffix not in formats:
        raise ValueError(f"{path}: unsupported output format {suffix!r} (use .wav or .flac)")
    if subtype not in _SUBTYPES:
        raise ValueError(f"subtype={subtype!r}: expected one of {sorted(_SUBTYPES)}")
    if suffix == ".flac" and subtype not in ("PCM_16", "PCM_24"):
        raise ValueError(f"subtype={subtype!r}: FLAC stores PCM_16 or PCM_24 only")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"expected a mono signal of shape (time,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: refusing to write NaN or Inf samples")

    def write(tmp: Path) -> None:
        sf.write(str(tmp), x, sample_rate, subtype=subtype, format=formats[suffix])

    atomic_write(path, write)
    return path


def file_fingerprint(path: str | Path) -> tuple[int, int]:
    """(size in bytes, mtime in ns): what the decode cache keys on."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
