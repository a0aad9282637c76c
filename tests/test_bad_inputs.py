"""The bad-input matrix: every user mistake through the CLI gives one clear line, never a traceback.

Each case runs ``ssgan.cli.main`` in-process and checks: the exit status is non-zero, stderr ends
with one ``ssgan: error: ...`` line (or argparse's usage error) naming the file / value and the
problem, no Python traceback, and no partial output file (no ``*_adv.wav``, no temp file). For
``ssgan data check`` a bad file is listed with its reason. Good audio of every format, rate,
depth, channel count and length must succeed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers import CLASSES, make_gan_run, make_victim_run, tone
from ssgan.cli import main


@dataclasses.dataclass
class World:
    root: Path
    gan: Path
    victim: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    return World(root, make_gan_run(root / "gan"), make_victim_run(root / "victim"))


# ----------------------------------------------------------------------------- bad audio files
def _truncated(p: Path) -> None:
    sf.write(str(p), tone(0.5, 16000), 16000, subtype="PCM_16")
    p.write_bytes(p.read_bytes()[:-3000])


def _float_with(value: float) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        x = tone(0.3, 16000)
        x[100] = value
        sf.write(str(p), x, 16000, subtype="FLOAT")

    return make


BAD_AUDIO: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: None, "not found|missing"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "truncated": (_truncated, "truncated"),
    "text": (lambda p: p.write_text("this is not audio\n" * 40), "not audio"),
    "random-bytes": (
        lambda p: p.write_bytes(np.random.default_rng(3).bytes(5000)),
        "not audio",
    ),
    "header-only": (
        lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"),
        "",
    ),
    "silent": (
        lambda p: sf.write(str(p), np.zeros(8000, np.float32), 16000, subtype="PCM_16"),
        "silent",
    ),
    "nan": (_float_with(float("nan")), "NaN or Inf"),
    "inf": (_float_with(float("inf")), "NaN or Inf"),
}


def _no_partials(where: Path) -> None:
    if where.exists():
        names = [p.name for p in where.rglob("*")]
        assert not [n for n in names if n.endswith((".tmp", "_adv.wav"))], names


def _assert_one_line_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("ssgan: error")]
    assert len(lines) >= 1, err
    name, *reasons = needles
    assert any(name in line and all(re.search(r, line.split(name, 1)[-1]) for r in reasons)
               for line in lines), (needles, err)  # fmt: skip


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _dataset(root: Path, clip: Path, label: str = "dog") -> Path:
    """A folder dataset with one good clip per class and ``clip``."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,fold"]
    for i, name in enumerate(CLASSES * 2):
        good = root / f"good{i}.wav"
        sf.write(str(good), tone(0.4, 16000, seed=i), 16000)
        rows.append(f"{good.name},{name},{1 + i // 2}")
    rows.append(f"{os.path.relpath(clip, root)},{label},1")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("command", ["attack", "data-check", "train-victim", "evaluate-victim"])
@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_bad_audio_matrix(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture, case: str, command: str
) -> None:
    make, reason = BAD_AUDIO[case]
    clip = tmp_path / "data" / f"bad clip é {sorted(BAD_AUDIO).index(case)}.wav"
    clip.parent.mkdir()
    make(clip)
    out = tmp_path / "out"
    if command == "attack":
        argv = ["attack", str(clip), "--generator", str(world.gan), "--out", str(out)]
    elif command == "data-check":
        root = _dataset(tmp_path / "data", clip)
        argv = ["data", "check", "folder", "--root", str(root), "--no-cache"]
    elif command == "train-victim":
        root = _dataset(tmp_path / "data", clip)
        argv = ["train", "victim", "--dataset", "folder", "--root", str(root), "--profile",
                "smoke", "--split", "fold:1", "--out", str(out), "--set", "fc_width=8"]  # fmt: skip
    else:
        root = _dataset(tmp_path / "data", clip)
        argv = ["evaluate", "victim", "--victim", str(world.victim), "--dataset", "folder",
                "--root", str(root), "--split", "fold:1", "--out", str(out)]  # fmt: skip
    code, stdout, err = _run(argv, capsys)
    assert code != 0, (stdout, err)
    assert "Traceback" not in err + stdout
    if command == "data-check":
        listed = [line for line in stdout.splitlines() if clip.name in line]
        assert listed and re.search(reason, listed[0].split(clip.name, 1)[-1]), stdout
    else:
        _assert_one_line_error(err, clip.name, reason)
    _no_partials(out)
    if command != "attack":
        assert not (out / "best.safetensors").exists() and not (out / "summary.json").exists()


# ----------------------------------------------------------------------------- good audio files
GOOD_AUDIO = {
    "u8-8k": (0.5, 8000, 1, "PCM_U8", ".wav"),
    "s16-11k": (0.5, 11025, 1, "PCM_16", ".wav"),
    "s24-22k-stereo": (0.5, 22050, 2, "PCM_24", ".wav"),
    "s32-44k": (0.5, 44100, 1, "PCM_32", ".wav"),
    "float-48k-6ch": (0.5, 48000, 6, "FLOAT", ".wav"),
    "double-96k": (0.3, 96000, 1, "DOUBLE", ".wav"),
    "flac-16k": (0.5, 16000, 2, "PCM_16", ".flac"),
    "10ms-16k": (0.01, 16000, 1, "PCM_16", ".wav"),
    "10ms-96k": (0.01, 96000, 1, "PCM_16", ".wav"),
    "3min-8k": (180.0, 8000, 1, "PCM_16", ".wav"),
}


@pytest.mark.parametrize("case", sorted(GOOD_AUDIO))
def test_good_audio_succeeds(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    seconds, rate, channels, subtype, suffix = GOOD_AUDIO[case]
    clip = tmp_path / "dir with spaces ü" / f"clip ñ {case}{suffix}"
    clip.parent.mkdir()
    sf.write(str(clip), tone(seconds, rate, channels), rate, subtype=subtype)
    out = tmp_path / "out put"
    code, _, err = _run(
        ["attack", str(clip), "--generator", str(world.gan), "--out", str(out)], capsys
    )
    assert code == 0, err
    name = f"{clip.stem}_adv{suffix}"  # the input's format family, rate, channels, frames
    info, want = sf.info(str(out / name)), sf.info(str(clip))
    assert (info.samplerate, info.channels, info.frames) == (rate, channels, want.frames)
    assert info.subtype == (subtype if subtype != "PCM_U8" else "PCM_16")
    assert sorted(p.name for p in out.iterdir()) == [name, "results.jsonl"]


@pytest.mark.slow
def test_one_hour_at_8k_succeeds(world: World, tmp_path: Path, capsys) -> None:
    clip = tmp_path / "hour.wav"
    with sf.SoundFile(str(clip), "w", samplerate=8000, channels=1, subtype="PCM_16") as fh:
        for minute in range(60):
            fh.write(tone(60.0, 8000, seed=minute))
    code, _, err = _run(["attack", str(clip), "--generator", str(world.gan), "--out",
                         str(tmp_path / "o")], capsys)  # fmt: skip
    assert code == 0, err
    info = sf.info(str(tmp_path / "o" / "hour_adv.wav"))
    assert (info.frames, info.samplerate) == (3600 * 8000, 8000)


# ----------------------------------------------------------------------------- CSVs, options, runs
def _csv_case(text: str) -> Callable[[World, Path], list[str]]:
    def build(world: World, tmp: Path) -> list[str]:
        root = tmp / "data"
        root.mkdir()
        for i in range(2):
            sf.write(str(root / f"a{i}.wav"), tone(0.4, 16000, seed=i), 16000)
        (root / "labels.csv").write_text(text)
        return ["evaluate", "victim", "--victim", str(world.victim), "--dataset", "folder",
                "--root", str(root), "--split", "fold:1"]  # fmt: skip

    return build


def _attack(*extra: str, generator: str | None = None, victim: str | None = None):
    def build(world: World, tmp: Path) -> list[str]:
        clip = tmp / "in.wav"
        sf.write(str(clip), tone(0.4, 16000), 16000)
        argv = ["attack", str(clip), "--generator", generator or str(world.gan),
                "--out", str(tmp / "out"), *extra]  # fmt: skip
        if victim is not None:
            argv += ["--victim", str(getattr(world, victim))]
        return argv

    return build


def _truncated_run(world: World, tmp: Path) -> list[str]:
    import shutil

    run = tmp / "gan copy"
    shutil.copytree(world.gan, run)
    data = (run / "best.safetensors").read_bytes()
    (run / "best.safetensors").write_bytes(data[: len(data) // 2])
    return _attack(generator=str(run))(world, tmp)


def _corrupt_json_run(world: World, tmp: Path) -> list[str]:
    import shutil

    run = tmp / "gan copy"
    shutil.copytree(world.gan, run)
    (run / "best.json").write_text('{"kind": "ssgan-gan", ')
    return _attack(generator=str(run))(world, tmp)


def _train_victim(*sets: str):
    def build(world: World, tmp: Path) -> list[str]:
        return ["train", "victim", "--dataset", "esc10", "--root", "bundled", "--profile",
                "smoke", "--out", str(tmp / "out"), *[a for s in sets for a in ("--set", s)]]  # fmt: skip

    return build


def _train_gan_with(victim_attr: str):
    def build(world: World, tmp: Path) -> list[str]:
        return ["train", "gan", "--victim", str(getattr(world, victim_attr)), "--dataset",
                "esc10", "--root", "bundled", "--profile", "smoke", "--out", str(tmp / "out")]  # fmt: skip

    return build


OTHER: dict[str, tuple[Callable[[World, Path], list[str]], tuple[str, ...]]] = {
    "csv-missing-column": (_csv_case("file,label\na0.wav,dog\n"), ("labels.csv", "path")),
    "csv-duplicate-rows": (
        _csv_case("path,label\na0.wav,dog\na0.wav,dog\na1.wav,rain\n"),
        ("labels.csv", "a0.wav"),
    ),
    "csv-unknown-class": (
        _csv_case("path,label\na0.wav,dog\na1.wav,cat\n"),
        ("classes",),
    ),
    "csv-not-text": (_csv_case("path,label\n\x00\x00\x00\n"), ("labels.csv",)),
    "attack-chunk-zero": (_attack("--chunk-segments", "0"), ("--chunk-segments=0",)),
    "attack-unknown-option": (_attack("--bogus"), ("--bogus",)),
    "attack-bad-checkpoint-choice": (_attack("--generator-checkpoint", "worst"), ("worst",)),
    "generator-missing": (_attack(generator="/nonexistent/run"), ("/nonexistent/run",)),
    "generator-is-a-victim": (
        lambda w, t: _attack(generator=str(w.victim))(w, t),
        ("best.json", "not an SSGAN checkpoint"),
    ),
    "victim-is-a-gan": (_attack(victim="gan"), ("last.json", "not a victim checkpoint")),
    "generator-truncated-safetensors": (
        _truncated_run,
        ("best.safetensors", "truncated or corrupted"),
    ),
    "generator-corrupted-json": (_corrupt_json_run, ("best.json", "corrupted")),
    "train-victim-bad-set": (_train_victim("epochs=-3"), ("epochs",)),
    "train-victim-unknown-key": (_train_victim("nosuch=1"), ("nosuch",)),
    "train-gan-victim-is-a-gan": (_train_gan_with("gan"), ("not a victim checkpoint",)),
    "train-gan-class-mismatch": (_train_gan_with("victim"), ("classes",)),
    "evaluate-attack-generator-is-victim": (
        lambda w, t: [
            "evaluate",
            "attack",
            "--attack",
            "ssgan",
            "--generator",
            str(w.victim),
            "--victim",
            str(w.victim),
            "--dataset",
            "esc10",
            "--root",
            "bundled",
            "--out",
            str(t / "out"),
        ],
        ("not an SSGAN checkpoint",),
    ),
    "evaluate-attack-batch-zero": (
        lambda w, t: [
            "evaluate",
            "attack",
            "--attack",
            "fgsm",
            "--victim",
            str(w.victim),
            "--dataset",
            "esc10",
            "--root",
            "bundled",
            "--batch-size",
            "0",
            "--out",
            str(t / "out"),
        ],
        ("--batch-size",),
    ),
    "data-check-missing-root": (
        lambda w, t: ["data", "check", "esc50", "--root", str(t / "nowhere")],
        ("nowhere",),
    ),
}


@pytest.mark.parametrize("case", sorted(OTHER))
def test_bad_options_runs_and_csvs(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    build, needles = OTHER[case]
    argv = build(world, tmp_path)
    code, stdout, err = _run(argv, capsys)
    assert code != 0, (stdout, err)
    assert "Traceback" not in err + stdout, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(("ssgan: error", "usage:")) or "error:" in last, err
    for needle in needles:
        assert needle in last, (needle, err)
    _no_partials(tmp_path / "out")
    assert not (tmp_path / "out" / "best.safetensors").exists()


# ----------------------------------------------------------------------------- outputs vs inputs
def test_outputs_never_destroy_inputs(world: World, tmp_path: Path, capsys) -> None:
    src = tmp_path / "a.wav"
    sf.write(str(src), tone(0.3, 16000), 16000)
    victim_input = tmp_path / "a_adv.wav"  # an input that is also a's output name
    sf.write(str(victim_input), tone(0.3, 16000, seed=1), 16000)
    before = victim_input.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, _, err = _run(["attack", str(src), str(victim_input), "--generator", str(world.gan),
                             "--out", str(tmp_path), *extra], capsys)  # fmt: skip
        assert code == 1 and "would overwrite an input file" in err
        assert victim_input.read_bytes() == before
    out = tmp_path / "out"
    assert (
        _run(["attack", str(src), "--generator", str(world.gan), "--out", str(out)], capsys)[0] == 0
    )
    first = (out / "a_adv.wav").read_bytes()
    code, _, err = _run(
        ["attack", str(src), "--generator", str(world.gan), "--out", str(out)], capsys
    )  # the same command again resumes: a done file is skipped, not rewritten
    assert code == 0 and "1 already done" in err and (out / "a_adv.wav").read_bytes() == first
    own = tmp_path / "own"
    own.mkdir()
    (own / "a_adv.wav").write_bytes(b"a file no earlier run wrote")
    code, _, err = _run(
        ["attack", str(src), "--generator", str(world.gan), "--out", str(own)], capsys
    )
    assert code == 1 and "use --overwrite" in err
    assert (own / "a_adv.wav").read_bytes() == b"a file no earlier run wrote"
    code, _, err = _run(
        ["attack", str(src), "--generator", str(world.gan), "--out", str(src)], capsys
    )
    assert code == 1 and "not a directory" in err
    (out / "summary.json").write_text("{}")
    code, _, err = _run(["evaluate", "attack", "--attack", "fgsm", "--victim", str(world.victim),
                         "--dataset", "esc10", "--root", "bundled", "--out", str(out)], capsys)  # fmt: skip
    assert code == 1 and "already holds results" in err
    assert (out / "summary.json").read_text() == "{}"


# ----------------------------------------------------------------------------- API validation
def _api_cases():
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.data import segments
    from ssgan.metrics import snr_db
    from ssgan.models.generators.spec import GeneratorSpec
    from ssgan.models.victim import ClipClassifier, crop_starts
    from ssgan.streaming import attack_file

    x = torch.zeros(2, 100)
    return {
        "split-1d": (lambda: segments.split_segments(torch.zeros(100), 10), ValueError, "(100,)"),
        "split-length": (lambda: segments.split_segments(x, 0), ValueError, "0"),
        "stitch-too-long": (
            lambda: segments.stitch_segments(torch.zeros(1, 2, 10), 30),
            ValueError,
            "time=30",
        ),
        "hop-too-big": (lambda: segments.split_overlapping(x, 10, 20), ValueError, "hop=20"),
        "crops-empty": (lambda: segments.random_crops([], 10), ValueError, "at least one"),
        "snr-shape": (lambda: snr_db(x, torch.zeros(2, 99)), ValueError, ""),
        "generator-kernel": (lambda: GeneratorSpec(block_kernel=2), ValueError, "2"),
        "generator-delta": (lambda: GeneratorSpec(max_delta=1.5), ValueError, "1.5"),
        "attack-chunk": (lambda: SSGANAttack(chunk_segments=0), ValueError, "chunk_segments"),
        "attack-seconds": (lambda: SSGANAttack(segment_seconds=-1.0), ValueError, "-1"),
        "clip-window": (lambda: ClipClassifier(torch.nn.Identity(), window=0), ValueError, "0"),
        "crop-starts": (lambda: crop_starts(5, 10, 3), ValueError, "padded_length=5"),
        "stream-type": (lambda: attack_file(None, "a.wav", "b.wav"), TypeError, "NoneType"),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("case", sorted(_api_cases()))
def test_api_validation(case: str) -> None:
    call, error, needle = _api_cases()[case]
    with pytest.raises(error) as info:
        call()
    assert needle in str(info.value)


def test_audio_errors_cross_process_boundaries_intact() -> None:
    import pickle

    from ssgan.errors import AudioError

    err = pickle.loads(pickle.dumps(AudioError("a.wav", "silent")))
    assert isinstance(err, AudioError) and str(err) == "a.wav: silent" and err.reason == "silent"
