"""Dataset loaders over fake official trees (44.1 kHz, 16/24-bit, float, stereo) and real data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf

from helpers import SUBTYPES, make_fake_us8k, noise_clip
from ssgan.cli import main
from ssgan.data import load_dataset, make_split
from ssgan.errors import DatasetError

ESC_CLASSES = {0: "dog", 1: "rooster", 10: "rain", 20: "crying_baby", 38: "clock_tick"}
ESC10 = {0, 1, 10, 20, 38}


def make_fake_esc50(root: Path, *, drop: int | None = None) -> list[dict]:
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = []
    k = 0
    for fold in range(1, 6):
        for target, category in ESC_CLASSES.items():
            stem = f"{fold}-{1000 + k}-A-{target}"
            rows.append(
                {
                    "filename": f"{stem}.wav",
                    "fold": fold,
                    "target": target,
                    "category": category,
                    "esc10": str(target in ESC10 and target != 20),
                    "src_file": 1000 + k,
                    "take": "A",
                }
            )
            if k != drop:
                n = 44100 // 10 + k  # different lengths
                sf.write(
                    root / "audio" / f"{stem}.wav",
                    noise_clip(k, n, 1 + k % 2),
                    44100,
                    subtype=SUBTYPES[k % 3],
                )
            k += 1
    with open(root / "meta" / "esc50.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def test_fake_esc50_reads_back_exactly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    rows = make_fake_esc50(tmp_path / "ESC-50")
    ds = load_dataset("esc50", tmp_path / "ESC-50")
    assert ds.class_names == ["dog", "rooster", "rain", "crying_baby", "clock_tick"]
    assert len(ds) == len(rows) and not ds.problems
    targets = sorted(ESC_CLASSES)
    for clip, row, (k, _) in zip(ds.clips, rows, enumerate(rows), strict=True):
        assert clip.fold == row["fold"]
        assert ds.class_names[clip.label] == row["category"]
        assert targets[clip.label] == row["target"]
        x, label = ds[k]
        assert label == clip.label
        assert abs(len(x) - round((44100 // 10 + k) * 16000 / 44100)) <= 1
        assert float(x.abs().max()) == pytest.approx(1.0)
    esc10 = load_dataset("esc10", tmp_path / "ESC-50")
    assert esc10.class_names == ["dog", "rooster", "rain", "clock_tick"]
    assert len(esc10) == 20 and set(esc10.labels()) == {0, 1, 2, 3}


def test_missing_audio_is_reported_not_crashed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    make_fake_esc50(tmp_path / "E", drop=3)
    ds = load_dataset("esc50", tmp_path / "E")
    assert len(ds) == 24
    assert len(ds.problems) == 1 and "missing" in ds.problems[0][1]
    assert main(["data", "check", "esc50", "--root", str(tmp_path / "E")]) == 1


def test_decode_cache_is_used_and_invalidated(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SSGAN_CACHE", str(cache))
    make_fake_esc50(tmp_path / "E")
    ds = load_dataset("esc50", tmp_path / "E")
    ds.waveforms()
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 25
    first = ds.clips[0].path
    sf.write(first, noise_clip(99, 2000, 1), 16000)  # a changed file gets a new key
    again = load_dataset("esc50", tmp_path / "E")
    x, _ = again[0]
    assert len(x) == 2000
    assert len(sorted(cache.rglob("*.npy"))) == 26


def test_fake_urbansound8k_and_splits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    rows = make_fake_us8k(tmp_path / "US")
    ds = load_dataset("urbansound8k", tmp_path / "US")
    assert len(ds) == 18 and ds.class_names == ["air_conditioner", "car_horn", "children_playing"]
    for (x, label), row in zip(ds, rows, strict=True):
        assert label == row["classID"]
        assert abs(len(x) - round(row["end"] * 16000)) <= 1
    train, test = make_split(ds, "fold:2")
    assert {c.fold for c in test.clips} == {2} and {c.fold for c in train.clips} == {1, 3}
    tr, te = make_split(ds, "paper", seed=3)
    assert len(te) == 3 and sorted(te.labels()) == [0, 1, 2]
    assert make_split(ds, "paper", seed=3)[1].clips == te.clips
    assert not {c.name for c in tr.clips} & {c.name for c in te.clips}
    with pytest.raises(DatasetError, match="fold 7 not present"):
        make_split(ds, "fold:7")
    with pytest.raises(ValueError, match="split='fold:x'"):
        make_split(ds, "fold:x")


def test_folder_dataset_and_csv_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a b").mkdir()
    for i in range(3):
        sf.write(tmp_path / "a b" / f"ç{i}.wav", noise_clip(i, 1600, 1), 16000)
    (tmp_path / "labels.csv").write_text(
        "path,label\na b/ç0.wav,cat\na b/ç1.wav,dog\na b/ç2.wav,cat\n"
    )
    ds = load_dataset("folder", tmp_path)
    assert ds.class_names == ["cat", "dog"] and ds.labels() == [0, 1, 0]
    with pytest.raises(DatasetError, match="unknown class"):
        load_dataset("folder", tmp_path, class_names=["cat", "bird"])
    (tmp_path / "dup.csv").write_text("path,label\na b/ç0.wav,cat\na b/ç0.wav,cat\n")
    with pytest.raises(DatasetError, match=r"dup\.csv:3: duplicate row"):
        load_dataset("folder", tmp_path, csv_path=tmp_path / "dup.csv")
    (tmp_path / "cols.csv").write_text("file,label\nx.wav,cat\n")
    with pytest.raises(DatasetError, match="missing column"):
        load_dataset("folder", tmp_path, csv_path=tmp_path / "cols.csv")


@pytest.mark.data
def test_real_data_counts(real_data_root: Path, capsys) -> None:
    esc50 = load_dataset("esc50", real_data_root / "ESC-50")
    assert len(esc50) == 731 and len(esc50.class_names) == 50 and not esc50.problems
    assert sorted(esc50.counts_per_fold()) == ["1", "2", "3", "4", "5"]
    esc10 = load_dataset("esc10", real_data_root / "ESC-50")
    assert len(esc10) == 400 and len(esc10.class_names) == 10
    assert set(esc10.counts_per_class().values()) == {40}
    assert set(esc10.counts_per_fold().values()) == {80}
    us = load_dataset("urbansound8k", real_data_root / "UrbanSound8K")
    assert us.counts_per_fold() == {"1": 873, "2": 888} and len(us.class_names) == 10
    import json

    assert main(["data", "check", "esc10", "--root", str(real_data_root / "ESC-50"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 400 and report["classes"] == 10 and report["folds"] == 5
    assert report["sample_rate"] == 16000 and report["problems"] == []
    tr, te = make_split(us, "paper", seed=0)
    assert len(tr) + len(te) == 1761
