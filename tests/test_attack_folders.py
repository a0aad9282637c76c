"""``ssgan attack`` on folders and globs: a mirrored tree out, bad files as records, resume after a
crash, ``--overwrite`` (ssgan.attack_inputs, ssgan.cli.attack)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import ssgan.streaming
from helpers import make_gan_run
from helpers import write_tone as _write_tone
from ssgan.attack_inputs import audio_suffixes, expand_inputs, plan_attack
from ssgan.cli import main
from ssgan.errors import OutputError, SSGANError

_SUBTYPES = {".mp3": "MPEG_LAYER_III", ".ogg": "VORBIS", ".flac": "PCM_16", ".wav": "PCM_16"}


def write_tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0):
    subtype = _SUBTYPES[path.suffix.lower()]
    return _write_tone(path, seconds, rate, channels, subtype=subtype, seed=seed)


@pytest.fixture(scope="module")
def gan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gan_run(tmp_path_factory.mktemp("gan") / "run")


def good_tree(root: Path) -> dict[str, str]:
    """Good audio files in nested folders: input (relative) -> output (relative)."""
    for sub in ("sub/deeper",):
        (root / sub).mkdir(parents=True)
    write_tone(root / "a.wav", 0.3)
    write_tone(root / "sub" / "b.flac", 0.3, channels=2)
    write_tone(root / "sub" / "deeper" / "c.WAV", 0.3, 44100, 2, seed=1)  # 44.1 kHz stereo
    write_tone(root / "sub" / "d.mp3", 0.4, seed=2)
    write_tone(root / "e.ogg", 0.4, seed=3)
    (root / "notes.txt").write_text("not audio, not an input\n")
    write_tone(root / ".hidden.wav", 0.3)  # hidden: left out (macOS ._ files, editors' backups)
    return {
        "a.wav": "a_adv.wav",
        "sub/b.flac": "sub/b_adv.flac",
        "sub/deeper/c.WAV": "sub/deeper/c_adv.wav",
        "sub/d.mp3": "sub/d_adv.wav",
        "e.ogg": "e_adv.wav",
    }


def bad_tree(root: Path) -> dict[str, str]:
    """Files the loader refuses: input (relative) -> the reason in its error."""
    (root / "bad").mkdir(parents=True)
    (root / "bad" / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "bad" / "empty.flac").write_bytes(b"")
    sf.write(str(root / "bad" / "silent.wav"), np.zeros(4000, np.float32), 16000)
    return {"bad/corrupt.wav": "not audio", "bad/empty.flac": "empty", "bad/silent.wav": "silent"}


def read_results(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    assert "summary" in lines[-1] and not any("summary" in r for r in lines[:-1])
    return lines[:-1], lines[-1]["summary"]


class CountingAttack:
    """``ssgan.streaming.attack_file`` that records its inputs and can stop after ``stop_after``
    calls as a Ctrl-C would."""

    def __init__(self, real: Callable[..., Any], stop_after: int | None = None) -> None:
        self.real, self.stop_after = real, stop_after
        self.inputs: list[Path] = []

    def __call__(self, attack: Any, path: Path, target: Path, **kw: Any) -> Any:
        if self.stop_after is not None and len(self.inputs) == self.stop_after:
            raise KeyboardInterrupt
        self.inputs.append(Path(path))
        return self.real(attack, path, target, **kw)


def attack_argv(gan: Path, out: Path, *inputs: Path | str) -> list[str]:
    return ["attack", *map(str, inputs), "--generator", str(gan), "--out", str(out)]


def test_audio_suffixes_are_soundfiles_formats() -> None:
    suffixes = audio_suffixes()
    assert {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"} <= suffixes
    assert ".raw" not in suffixes and ".txt" not in suffixes


def test_a_folder_goes_to_a_mirrored_tree_and_bad_files_become_records(
    gan: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "in"
    good, bad = good_tree(root), bad_tree(root)
    out = tmp_path / "out"
    assert main(attack_argv(gan, out, root)) == 1  # bad files: exit status 1, the rest written
    captured = capsys.readouterr()
    for rel_out in good.values():
        assert (out / rel_out).is_file(), rel_out
    info = sf.info(str(out / "sub" / "deeper" / "c_adv.wav"))
    assert (info.samplerate, info.channels) == (44100, 2)  # the input's own rate and channels
    assert sf.info(str(out / "sub" / "b_adv.flac")).format == "FLAC"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted([*good.values(), "results.jsonl"])  # no bad output, no temp file
    records, summary = read_results(out)
    by_input = {str(Path(r["input"]).relative_to(root)): r for r in records}
    assert sorted(by_input) == sorted([*good, *bad])  # hidden and non-audio files left out
    for rel, reason in bad.items():
        assert str(root / rel) in by_input[rel]["error"] and reason in by_input[rel]["error"]
        assert f"ssgan: error: {root / rel}" in captured.err
    for rel, rel_out in good.items():
        record = by_input[rel]
        assert record["output"] == str(out / rel_out) and "error" not in record
        assert record["snr_db"] > 0 and record["snr_box_db"] > 0 and record["time_s"] >= 0
    assert summary["files"] == 8 and summary["done"] == 5 and summary["failed"] == 3
    assert summary["skipped"] == 0 and summary["flipped"] is None  # no --victim
    assert summary["mean_snr_db"] == pytest.approx(
        np.mean([by_input[rel]["snr_db"] for rel in good])
    )
    assert summary["time_s"] == pytest.approx(sum(r["time_s"] for r in records))
    stdout = [json.loads(s) for s in captured.out.splitlines()]
    assert stdout[-1] == {"summary": summary} and len(stdout) == 9
    assert "8 files: 0 already done (skipped), 8 to attack" in captured.err


def test_a_crashed_run_resumes_with_the_missing_files_only(
    gan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "in"
    good = good_tree(root)
    out = tmp_path / "out"
    real = ssgan.streaming.attack_file
    first = CountingAttack(real, stop_after=2)  # Ctrl-C while starting the third file
    monkeypatch.setattr(ssgan.streaming, "attack_file", first)
    assert main(attack_argv(gan, out, root)) == 130
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all("summary" not in json.loads(s) for s in lines)  # appended
    done_before = {str(p) for p in first.inputs}
    mtimes = {p: (out / good[str(Path(p).relative_to(root))]).stat().st_mtime_ns
              for p in done_before}  # fmt: skip
    with open(out / "results.jsonl", "a") as fh:
        fh.write('{"input": "' + str(root))  # a torn last line: the crash came mid-write
    capsys.readouterr()

    second = CountingAttack(real)
    monkeypatch.setattr(ssgan.streaming, "attack_file", second)
    assert main(attack_argv(gan, out, root)) == 0
    assert "5 files: 2 already done (skipped), 3 to attack" in capsys.readouterr().err
    assert len(second.inputs) == 3 and not done_before & {str(p) for p in second.inputs}
    for p, mtime in mtimes.items():  # the files done before were not written again
        assert (out / good[str(Path(p).relative_to(root))]).stat().st_mtime_ns == mtime
    records, summary = read_results(out)
    assert sorted(r["input"] for r in records) == sorted(str(root / rel) for rel in good)
    assert (summary["files"], summary["done"], summary["skipped"], summary["failed"]) == (
        5,
        3,
        2,
        0,
    )
    assert summary["mean_snr_db"] == pytest.approx(np.mean([r["snr_db"] for r in records]))

    # everything done: nothing attacked, the same records; --overwrite redoes every file
    third = CountingAttack(real)
    monkeypatch.setattr(ssgan.streaming, "attack_file", third)
    assert main(attack_argv(gan, out, root)) == 0 and third.inputs == []
    assert read_results(out)[0] == records and read_results(out)[1]["skipped"] == 5
    assert main([*attack_argv(gan, out, root), "--overwrite"]) == 0 and len(third.inputs) == 5
    assert read_results(out)[1]["done"] == 5


def test_a_lost_output_or_failed_file_is_redone(
    gan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "in"
    good_tree(root)
    bad = bad_tree(root)
    out = tmp_path / "out"
    assert main(attack_argv(gan, out, root)) == 1
    (out / "sub" / "d_adv.wav").unlink()  # deleted by hand: its record alone does not count
    (out / ".a_adv.wav.x1y2z3.tmp").write_bytes(b"half")  # what a killed write leaves
    counting = CountingAttack(ssgan.streaming.attack_file)
    monkeypatch.setattr(ssgan.streaming, "attack_file", counting)
    assert main(attack_argv(gan, out, root)) == 1  # the bad files are tried again, and fail
    assert sorted(counting.inputs) == sorted([root / "sub" / "d.mp3", *(root / r for r in bad)])
    assert (out / "sub" / "d_adv.wav").is_file() and not (out / ".a_adv.wav.x1y2z3.tmp").exists()
    records, summary = read_results(out)
    assert len(records) == 8
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 4, 3)
    capsys.readouterr()


def test_a_rank_part_file_is_merged_on_resume(gan: Path, tmp_path: Path, monkeypatch) -> None:
    """A torchrun run cut off leaves each rank's records in results.rank<r>.jsonl."""
    root = tmp_path / "in"
    good = good_tree(root)
    out = tmp_path / "out"
    assert main(attack_argv(gan, out, root)) == 0
    records, _ = read_results(out)
    (out / "results.jsonl").write_text(json.dumps(records[0]) + "\n")
    (out / "results.rank1.jsonl").write_text(json.dumps(records[1]) + "\n" + '{"inp')
    counting = CountingAttack(ssgan.streaming.attack_file)
    monkeypatch.setattr(ssgan.streaming, "attack_file", counting)
    assert main(attack_argv(gan, out, root)) == 0
    assert len(counting.inputs) == len(good) - 2
    assert not (out / "results.rank1.jsonl").exists()
    merged, summary = read_results(out)
    assert merged[:2] == records[:2] and summary["skipped"] == 2


def test_a_glob_is_expanded_and_mirrored_below_its_fixed_folders(
    gan: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "in"
    good_tree(root)
    out = tmp_path / "out"
    assert main(attack_argv(gan, out, f"{root}/**/*.wav", root / "e.ogg")) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*_adv.*"))
    assert written == ["a_adv.wav", "e_adv.wav"]  # glob case-sensitive: c.WAV not matched
    assert main(attack_argv(gan, tmp_path / "o2", f"{root}/sub/**/*.[wW][aA][vV]")) == 0
    assert (tmp_path / "o2" / "deeper" / "c_adv.wav").is_file()  # mirrored below in/sub
    code = main(attack_argv(gan, tmp_path / "o3", f"{root}/**/*.aiff"))
    assert code == 1 and "*.aiff: the pattern matches no audio file" in capsys.readouterr().err
    assert not (tmp_path / "o3").exists()


def test_two_inputs_for_one_output_are_refused_naming_both(
    gan: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    write_tone(root / "x.wav", 0.2)
    write_tone(root / "x.mp3", 0.2)
    out = tmp_path / "out"
    assert main(attack_argv(gan, out, root)) == 1
    err = capsys.readouterr().err
    assert f"{out / 'x_adv.wav'}: inputs {root / 'x.mp3'}" in err and str(root / "x.wav") in err
    assert not out.exists()
    other = tmp_path / "other"
    other.mkdir()
    write_tone(other / "a.wav", 0.2)
    write_tone(root / "a.wav", 0.2)
    with pytest.raises(OutputError, match="map to the same output"):
        plan_attack([root / "a.wav", other / "a.wav"], out)
    # the same file named twice (a folder and a glob) is attacked once
    plan = plan_attack([root / "a.wav", root / "a.wav"], out)
    assert [p.output for p in plan] == [out / "a_adv.wav"]


def test_an_output_folder_inside_the_input_folder_is_not_read_back(
    gan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "in"
    good = good_tree(root)
    out = root / "adv"
    assert main(attack_argv(gan, out, root)) == 0
    inputs = [p for p, _, _ in expand_inputs([root], exclude=out)]
    assert len(inputs) == len(good) and not [p for p in inputs if out in p.parents]
    counting = CountingAttack(ssgan.streaming.attack_file)
    monkeypatch.setattr(ssgan.streaming, "attack_file", counting)
    assert main(attack_argv(gan, out, root)) == 0 and counting.inputs == []
    assert len(read_results(out)[0]) == len(good)
    with pytest.raises(SSGANError, match="is the output folder or inside it"):
        expand_inputs([out / "sub"], exclude=out)


def test_files_this_command_did_not_write_are_not_replaced(
    gan: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = write_tone(tmp_path / "a.wav", 0.2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_adv.wav").write_bytes(b"the user's own file")
    assert main(attack_argv(gan, out, src)) == 1
    err = capsys.readouterr().err
    assert f"{out / 'a_adv.wav'}: exists and no results.jsonl" in err and "--overwrite" in err
    assert (out / "a_adv.wav").read_bytes() == b"the user's own file"
    assert main([*attack_argv(gan, out, src), "--overwrite"]) == 0
    assert sf.info(str(out / "a_adv.wav")).frames == 3200


def test_an_empty_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "labels.csv").write_text("path,label\n")
    with pytest.raises(SSGANError, match=f"{tmp_path / 'empty'}: no audio files"):
        expand_inputs([tmp_path / "empty"])
    assert os.listdir(tmp_path / "empty") == ["sub"]


def test_with_a_victim_records_hold_both_decisions_and_the_summary_counts_flips(
    gan: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from helpers import CLASSES, make_victim_run

    victim = make_victim_run(tmp_path / "victim")
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_tone(root / "a.wav", 0.3)
    write_tone(root / "sub" / "b.wav", 0.3, 22050, 2, seed=1)
    out = tmp_path / "out"
    assert main([*attack_argv(gan, out, root), "--victim", str(victim)]) == 0
    records, summary = read_results(out)
    assert all(r["clean_pred"] in CLASSES and r["adv_pred"] in CLASSES for r in records)
    assert summary["flipped"] == sum(r["flipped"] for r in records)
    capsys.readouterr()
