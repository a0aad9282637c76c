"""``--dataset folder`` without a CSV: one folder per class (``root/<class>/**/<audio>``), the CSV
winning when there is one, the errors that name the root or the file, and the commands end to end
(ssgan.data.folder, ssgan.audio.audio_files)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import soundfile as sf

import ssgan.attack_inputs
import ssgan.audio
from helpers import make_victim_run, tone
from ssgan.cli import main
from ssgan.data import load_dataset, make_split
from ssgan.errors import DatasetError


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))


def _write(path: Path, seed: int = 0, *, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(0.4, 16000, seed=seed), 16000, format=fmt)
    return path


def class_tree(root: Path) -> dict[str, list[str]]:
    """Two classes with nested folders, wav / flac / upper-case .WAV, and things to skip."""
    files = {
        "dog": ["dog/a.wav", "dog/sub/deeper/b.flac", "dog/sub/c.WAV"],
        "rain": ["rain/d.flac", "rain/x/e.wav"],
    }
    for i, rel in enumerate(files["dog"] + files["rain"]):
        _write(root / rel, i, fmt="WAV" if rel.lower().endswith(".wav") else "FLAC")
    _write(root / ".hidden" / "h.wav")  # a hidden first-level folder: not a class
    _write(root / "dog" / ".cache" / "h.wav")  # hidden folder inside a class
    _write(root / "rain" / ".h.wav")  # hidden file
    (root / "rain" / "notes.txt").write_text("not audio")
    (root / "README.txt").write_text("not audio either")
    (root / "empty" / "deeper").mkdir(parents=True)  # no audio: not a class, a warning
    return files


def test_class_folders_give_the_classes_and_labels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    files = class_tree(root)
    with caplog.at_level(logging.WARNING, logger="ssgan.data.folder"):
        ds = load_dataset("folder", root)
    assert ds.name == "folder" and ds.root == root and ds.problems == []
    assert ds.class_names == ["dog", "rain"]
    got = {str(c.path.relative_to(root)): ds.class_names[c.label] for c in ds.clips}
    want = {rel: name for name, rels in files.items() for rel in rels}
    assert got == want
    assert ds.folds() == [None] * 5 and ds.counts_per_class() == {"dog": 3, "rain": 2}
    assert "empty: no audio files" in caplog.text
    assert all(w.shape == (6400,) for w in ds.waveforms())  # every format decodes
    # A victim's classes fix the order; a class without a folder is allowed.
    ds = load_dataset("folder", root, class_names=["rain", "cat", "dog"])
    assert ds.class_names == ["rain", "cat", "dog"]
    assert {ds.class_names[c.label] for c in ds.clips if c.path.parent.name == "deeper"} == {"dog"}
    with pytest.raises(DatasetError, match=r"data/rain: class folder\(s\) 'rain' not among"):
        load_dataset("folder", root, class_names=["dog", "cat"])


def test_one_extension_list_for_datasets_and_attack_inputs() -> None:
    assert ssgan.attack_inputs.audio_suffixes is ssgan.audio.audio_suffixes
    assert ssgan.audio.is_audio_file("x/Y.FLAC") and not ssgan.audio.is_audio_file("y.txt")


def test_a_labels_csv_wins(tmp_path: Path) -> None:
    root = tmp_path / "data"
    class_tree(root)
    (root / "labels.csv").write_text("path,label,fold\ndog/a.wav,cat,1\nrain/d.flac,cow,2\n")
    ds = load_dataset("folder", root)
    assert ds.class_names == ["cat", "cow"] and ds.labels() == [0, 1] and ds.folds() == [1, 2]
    (root / "labels.csv").unlink()
    (tmp_path / "other.csv").write_text("path,label\ndata/rain/x/e.wav,wet\n")
    ds = load_dataset("folder", root, csv_path=tmp_path / "other.csv")
    assert ds.class_names == ["wet"] and [c.path.name for c in ds.clips] == ["e.wav"]
    # A --csv that does not exist is its error, not a silent fall-back to the class folders.
    with pytest.raises(DatasetError, match=r"absent\.csv"):
        load_dataset("folder", root, csv_path=tmp_path / "absent.csv")


def test_neither_layout_names_the_root_and_both_layouts(tmp_path: Path) -> None:
    for setup in (lambda r: None, lambda r: (r / "docs").mkdir(), lambda r: _write(r / ".h/a.wav")):
        root = tmp_path / f"data{len(list(tmp_path.iterdir()))}"
        root.mkdir()
        setup(root)
        (root / "notes.txt").write_text("no audio")
        with pytest.raises(DatasetError) as info:
            load_dataset("folder", root)
        text = str(info.value)
        assert text.startswith(f"{root}: no labels.csv and no class folder with audio files")
        assert "path,label[,fold]" in text and "--csv" in text and "one folder per class" in text


def test_audio_directly_in_the_root_is_refused_by_name(tmp_path: Path) -> None:
    root = tmp_path / "data"
    class_tree(root)
    _write(root / "loose.wav")
    _write(root / "z.flac")
    with pytest.raises(DatasetError) as info:
        load_dataset("folder", root)
    text = str(info.value)
    assert text.startswith(f"{root / 'loose.wav'}: audio file directly in the dataset root")
    assert "(and 1 more)" in text
    assert "put each file in a folder named after its class, or give --csv" in text


def test_class_folders_have_no_folds(tmp_path: Path) -> None:
    root = tmp_path / "data"
    class_tree(root)
    ds = load_dataset("folder", root)
    train, test = make_split(ds, "paper")
    assert len(test) == 2 and len(train) == 3 and sorted(test.labels()) == [0, 1]
    with pytest.raises(DatasetError, match=r"'fold:1' needs folds.*use --split paper"):
        make_split(ds, "fold:1")


def test_commands_on_class_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "data"
    class_tree(root)
    victim = make_victim_run(tmp_path / "victim")  # classes dog, rain
    common = ["--victim", str(victim), "--dataset", "folder", "--root", str(root)]
    assert main(["evaluate", "victim", *common, "--split", "paper", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_clips"] == 2 and set(summary["per_class_accuracy"]) == {"dog", "rain"}
    out = tmp_path / "eval"
    argv = ["evaluate", "attack", "--attack", "noise", *common, "--split", "paper",
            "--examples", "0", "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n"] == 2
    assert main(["evaluate", "victim", *common, "--split", "fold:1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "needs folds" in err and "--split paper" in err
    assert main(["data", "check", "folder", "--root", str(root), "--no-cache"]) == 0
    assert "5 clips load, 2 classes" in capsys.readouterr().out
