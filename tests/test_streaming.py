"""Bounded-memory attack (ssgan.streaming): streamed output equals the in-memory path exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from torch import nn

from helpers import G_SHAPE, SEGMENT_SECONDS, make_gan_run, make_generator, write_tone
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.audio import decode, load_audio, load_audio_with_peak
from ssgan.errors import AudioError
from ssgan.models.victim import ClipClassifier
from ssgan.streaming import (
    attack_file,
    iter_mono_blocks,
    output_format,
    output_subtype,
    scan_audio,
)


def make_attack(chunk_segments: int = 3, seed: int = 0) -> SSGANAttack:
    return SSGANAttack.from_generator(
        make_generator(seed), segment_seconds=SEGMENT_SECONDS, chunk_segments=chunk_segments,
        **{k: G_SHAPE[k] for k in ("channels", "n_down", "n_blocks", "block_kernel")},
    )  # fmt: skip


def make_victim(window: int = 400, n_classes: int = 3) -> ClipClassifier:
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Linear(window, 16), nn.Tanh(), nn.Linear(16, n_classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return ClipClassifier(net, window=window).eval()


def reference(attack: SSGANAttack, path: Path, target: Path, subtype: str = "PCM_16") -> np.ndarray:
    """What ``attack_file`` must write, computed on whole arrays: the perturbation of the
    normalised 16 kHz clip, at the file's level, resampled to the input's rate and added to every
    channel of the original samples; written with ``subtype`` and read back as int16."""
    data, rate = decode(path)
    x_np, peak = load_audio_with_peak(path)
    x = torch.from_numpy(x_np)[None]
    delta = ((x + attack.perturbation(x)).clamp(-1.0, 1.0) - x)[0] * peak
    up = soxr.resample(delta.numpy(), 16000, rate, quality="HQ")
    up = np.pad(up, (0, max(0, data.shape[0] - up.size)))[: data.shape[0]]
    sf.write(str(target), np.clip(data + up[:, None], -1.0, 1.0), rate, subtype=subtype)
    return sf.read(str(target), dtype="int16", always_2d=True)[0]


@pytest.mark.parametrize(
    ("seconds", "rate", "channels", "block_frames"),
    [
        (1.03, 16000, 1, 1000),  # last segment filled from the clip's start
        (1.2, 16000, 1, 777),  # exact multiple of the segment
        (0.9, 44100, 2, 4096),  # resampled + mixed down in blocks, stereo written back
        (0.7, 8000, 1, 333),
        (0.8, 8000, 2, 1024),
        (0.85, 48000, 2, 5000),
    ],
)
def test_streamed_equals_whole_array_reference_at_the_input_rate(
    tmp_path: Path, seconds: float, rate: int, channels: int, block_frames: int
) -> None:
    attack = make_attack(chunk_segments=3)
    src = write_tone(tmp_path / "in.wav", seconds, rate, channels)
    expected = reference(attack, src, tmp_path / "ref.wav")
    result = attack_file(attack, src, tmp_path / "out.wav", block_frames=block_frames)
    got, out_rate = sf.read(str(tmp_path / "out.wav"), dtype="int16", always_2d=True)
    assert result.streamed and out_rate == rate == result.sample_rate
    assert got.shape == expected.shape == (sf.info(str(src)).frames, channels)
    np.testing.assert_array_equal(got, expected)
    # The SNR from running sums matches the whole-clip formula (16 kHz, normalised: eq. 10).
    x_np, _ = load_audio_with_peak(src)
    x = torch.from_numpy(x_np).double()
    delta = (x + attack.perturbation(x[None].float())[0].double()).clamp(-1, 1) - x
    want = 10 * np.log10(float((x**2).sum()) / float((delta**2).sum()))
    assert result.snr_db == pytest.approx(want, abs=1e-3)
    box = 10 * np.log10(float(((x + 1) ** 2).sum()) / float((delta**2).sum()))  # [16]'s
    assert result.snr_box_db == pytest.approx(box, abs=1e-3)


@pytest.mark.parametrize(("rate", "overlap"), [(8000, False), (44100, False), (48000, True)])
def test_written_file_carries_the_16k_perturbation_on_every_channel(
    tmp_path: Path, rate: int, overlap: bool
) -> None:
    """Read back at 16 kHz, output - input is G's perturbation (what of it the input's rate can
    carry: an 8 kHz file holds none of its 4-8 kHz band); both channels get the same."""
    attack = make_attack(chunk_segments=4)
    attack.overlap = overlap
    src = write_tone(tmp_path / "in.wav", 1.0, rate, 2, subtype="FLOAT")
    result = attack_file(attack, src, tmp_path / "out.wav")
    assert result.streamed is not overlap
    orig, _ = sf.read(str(src), always_2d=True)
    out, out_rate = sf.read(str(tmp_path / "out.wav"), always_2d=True)
    assert out_rate == rate and out.shape == orig.shape  # FLOAT in, FLOAT out: no quantisation
    np.testing.assert_allclose(out[:, 0] - orig[:, 0], out[:, 1] - orig[:, 1], atol=1e-6)
    x_np, peak = load_audio_with_peak(src)
    x = torch.from_numpy(x_np)[None]
    want = ((x + attack.perturbation(x)).clamp(-1, 1) - x)[0].numpy() * peak
    want = soxr.resample(soxr.resample(want, 16000, rate, "HQ"), rate, 16000, "HQ")[: want.size]
    got = load_audio(tmp_path / "out.wav", normalize=False) - load_audio(src, normalize=False)
    assert got.shape == want.shape
    # The same perturbation up to float rounding at the two rate changes.
    assert np.linalg.norm(got - want) < 1e-3 * np.linalg.norm(want)


def test_format_family_and_sample_format_follow_the_input(tmp_path: Path) -> None:
    attack = make_attack()
    src = write_tone(tmp_path / "in.flac", 0.9, 44100, 2, subtype="PCM_24")
    attack_file(attack, src, tmp_path / "out.flac")
    info = sf.info(str(tmp_path / "out.flac"))
    written = (info.format, info.subtype, info.samplerate, info.channels)
    assert written == ("FLAC", "PCM_24", 44100, 2)
    attack_file(attack, src, tmp_path / "out.wav", subtype="PCM_16")
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", 44100)
    with pytest.raises(ValueError, match="flac stores one of"):
        attack_file(attack, src, tmp_path / "bad.flac", subtype="FLOAT")
    assert output_format(tmp_path / "a.FLAC") == "flac" and output_format("a.mp3") == "wav"
    assert output_format("a.flac", "wav") == "wav"
    assert output_subtype("PCM_U8", "wav") == output_subtype("FLOAT", "flac") == "PCM_16"


def test_g_never_sees_more_than_chunk_segments(tmp_path: Path) -> None:
    attack = make_attack(chunk_segments=2)
    rows: list[int] = []
    attack.generator.register_forward_hook(lambda m, inp, out: rows.append(inp[0].shape[0]))
    src = write_tone(tmp_path / "in.wav", 1.0, 16000)
    attack_file(attack, src, tmp_path / "out.wav", block_frames=500)
    assert max(rows) == 2 and sum(rows) == 20  # 16000 / 800 segments, two at a time


@pytest.mark.parametrize("seconds", [1.3, 0.05])  # streamed; in memory (shorter than a window)
def test_victim_decisions_are_on_the_input_and_the_written_file_as_loaded(
    tmp_path: Path, seconds: float
) -> None:
    attack, victim = make_attack(chunk_segments=4), make_victim()
    src = write_tone(tmp_path / "in.wav", seconds, 22050, 2)
    result = attack_file(attack, src, tmp_path / "out.wav", victim=victim, block_frames=1500)
    assert result.streamed is (seconds > 1)
    assert result.clean_logits is not None and result.adv_logits is not None
    x = torch.from_numpy(load_audio(src))[None]
    x_adv = torch.from_numpy(load_audio(tmp_path / "out.wav"))[None]
    torch.testing.assert_close(result.clean_logits, victim(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(result.adv_logits, victim(x_adv), rtol=0, atol=1e-6)


def test_blocks_equal_load_audio_and_scan_finds_the_peak(tmp_path: Path) -> None:
    src = write_tone(tmp_path / "in.flac", 0.8, 48000, 2, level=0.25)
    whole, peak = load_audio_with_peak(src)
    blocks = np.concatenate(list(iter_mono_blocks(src, block_frames=999)))
    np.testing.assert_array_equal((blocks / peak).astype(np.float32), whole)
    info = scan_audio(src, head_samples=100)
    assert info.peak == peak and info.n_samples == whole.size and info.head.size == 100
    assert (info.sample_rate_in, info.channels) == (48000, 2)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am text\n" * 20, "not audio"),
        (None, "silent"),
        ("nan", "NaN or Inf"),
    ],
)
def test_bad_input_leaves_no_output(tmp_path: Path, content: object, reason: str) -> None:
    src = tmp_path / "bad.wav"
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        x = np.zeros(16000, dtype=np.float32)
        if content == "nan":
            x[:] = 0.1
            x[8000] = np.nan
        sf.write(str(src), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=reason) as info:
        attack_file(make_attack(), src, tmp_path / "out" / "bad_adv.wav")
    assert "bad.wav" in str(info.value)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_argument_validation(tmp_path: Path) -> None:
    src = write_tone(tmp_path / "in.wav", 0.5)
    with pytest.raises(TypeError, match="SSGANAttack"):
        attack_file(object(), src, tmp_path / "o.wav")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported output format"):
        attack_file(make_attack(), src, tmp_path / "o.mp3")
    with pytest.raises(ValueError, match="block_frames=0"):
        list(iter_mono_blocks(src, block_frames=0))


def test_cli_attack_streams_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ssgan.cli import main

    run = make_gan_run(tmp_path / "gan")
    src = write_tone(tmp_path / "my clip.wav", 1.1, 44100, 2, level=0.3)
    out = tmp_path / "out"
    code = main(["attack", str(src), "--generator", str(run), "--out", str(out),
                 "--chunk-segments", "5"])  # fmt: skip
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[0])  # then the summary
    attack = SSGANAttack.from_run(run, checkpoint="last", chunk_segments=5)
    expected = reference(attack, src, tmp_path / "ref.wav")
    got = sf.read(str(out / "my clip_adv.wav"), dtype="int16", always_2d=True)[0]
    np.testing.assert_array_equal(got, expected)
    assert record["snr_db"] > 0 and record["seconds"] == pytest.approx(1.1)
    assert record["snr_box_db"] > record["snr_db"]  # both conventions, each named
    assert (record["sample_rate"], record["channels"]) == (44100, 2)
    assert sorted(p.name for p in out.iterdir()) == ["my clip_adv.wav", "results.jsonl"]


def test_cli_attack_keeps_flac_and_honours_format(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ssgan.cli import main

    run = make_gan_run(tmp_path / "gan")
    src = write_tone(tmp_path / "rec.flac", 0.9, 48000, 2)
    assert main(["attack", str(src), "--generator", str(run), "--out", str(tmp_path / "a")]) == 0
    info = sf.info(str(tmp_path / "a" / "rec_adv.flac"))
    assert (info.format, info.samplerate, info.channels) == ("FLAC", 48000, 2)
    argv = ["attack", str(src), "--generator", str(run), "--out", str(tmp_path / "b"),
            "--format", "wav"]  # fmt: skip
    assert main(argv) == 0
    assert sf.info(str(tmp_path / "b" / "rec_adv.wav")).format == "WAV"
    capsys.readouterr()


def test_victim_querying_steps_attack_the_whole_file_in_memory(tmp_path: Path) -> None:
    victim = make_victim()
    attack = make_attack(chunk_segments=4)
    attack.refine_steps, attack.quietest = 10, True
    src = write_tone(tmp_path / "in.wav", 1.5, 16000, 1)  # long enough to stream otherwise
    with pytest.raises(ValueError, match="queries the victim"):
        attack_file(attack, src, tmp_path / "no.wav")
    assert not (tmp_path / "no.wav").exists()
    result = attack_file(attack, src, tmp_path / "out.wav", victim=victim)
    assert not result.streamed
    assert result.clean_logits is not None and result.adv_logits is not None
    # the written file, read back as any file, changes the victim's own decision on the input
    assert int(result.adv_logits.argmax(1)) != int(result.clean_logits.argmax(1))
    x = torch.from_numpy(load_audio(src))[None]
    own = victim(x).argmax(1)
    want = attack(victim, x, own)
    snr = 20 * torch.log10(x.norm() / (want - x).norm())
    assert result.snr_db == pytest.approx(float(snr), abs=1e-3)
