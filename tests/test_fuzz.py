"""Fuzzing the audio loader and the metadata readers: only the typed errors ever escape."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssgan.audio import load_audio
from ssgan.data import load_dataset
from ssgan.errors import AudioError, DatasetError

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _valid_wav() -> bytes:
    buf = io.BytesIO()
    x = np.sin(np.arange(800) / 5.0).astype(np.float32) * 0.5
    sf.write(buf, x, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


WAV = _valid_wav()


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3"]))
def test_random_bytes_only_raise_audio_error(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    try:
        x = load_audio(path)
    except AudioError as exc:
        assert str(path) in str(exc)
    else:
        assert x.dtype == np.float32 and np.all(np.isfinite(x))


@FUZZ
@given(
    cut=st.integers(min_value=0, max_value=len(WAV)),
    flips=st.lists(st.tuples(st.integers(0, len(WAV) - 1), st.integers(0, 255)), max_size=8),
)
def test_truncated_or_damaged_wav_only_raise_audio_error(
    tmp_path: Path, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(WAV[:cut])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    path = tmp_path / "d.wav"
    path.write_bytes(bytes(data))
    try:
        x = load_audio(path)
    except AudioError as exc:
        assert str(path) in str(exc)
    else:
        assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0 + 1e-6


@FUZZ
@given(text=st.text(max_size=400), which=st.sampled_from(["esc50", "urbansound8k", "folder"]))
def test_random_metadata_only_raises_dataset_error(tmp_path: Path, text: str, which: str) -> None:
    root = tmp_path / which
    if which == "esc50":
        csv = root / "meta" / "esc50.csv"
    elif which == "urbansound8k":
        csv = root / "metadata" / "UrbanSound8K.csv"
    else:
        csv = root / "labels.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "esc50": "filename,fold,target,category,esc10,src_file,take\n",
        "urbansound8k": "slice_file_name,fsID,start,end,salience,fold,classID,class\n",
        "folder": "path,label\n",
    }[which]
    csv.write_text(header + text if len(text) % 2 else text, encoding="utf-8")
    try:
        load_dataset(which, root)
    except DatasetError as exc:
        assert str(root) in str(exc) or str(csv) in str(exc)
