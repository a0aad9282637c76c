"""Bounded-memory attack (ssgan.streaming): streamed output equals the in-memory path exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from ssgan.attacks.ssgan import GAN_KIND, SSGANAttack
from ssgan.audio import load_audio_with_peak, save_audio
from ssgan.errors import AudioError
from ssgan.models.generator import Generator
from ssgan.models.victim import ClipClassifier
from ssgan.streaming import attack_file, iter_mono_blocks, scan_audio
from ssgan.training.checkpoint import flatten_state_dicts, save_checkpoint

SEGMENT_SECONDS = 0.05  # 800 samples: many segments in a 1 s file
G_SHAPE = {"channels": 2, "n_down": 1, "n_blocks": 1, "block_kernel": 3, "max_delta": 0.05}


def make_generator(seed: int = 0) -> Generator:
    """A small generator with seeded random weights (no global RNG)."""
    g = Generator(**G_SHAPE)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return g.eval()


def make_attack(chunk_segments: int = 3, seed: int = 0) -> SSGANAttack:
    return SSGANAttack.from_generator(
        make_generator(seed), segment_seconds=SEGMENT_SECONDS, chunk_segments=chunk_segments,
        **{k: G_SHAPE[k] for k in ("channels", "n_down", "n_blocks", "block_kernel")},
    )  # fmt: skip


def make_gan_run(directory: Path, seed: int = 0) -> Path:
    """A run directory that ``SSGANAttack.from_run`` / ``ssgan attack --generator`` accept."""
    g = make_generator(seed)
    meta = {"kind": GAN_KIND, "generator": dict(G_SHAPE), "segment_seconds": SEGMENT_SECONDS}
    for name in ("best", "last"):
        save_checkpoint(directory, name, flatten_state_dicts(G=g.state_dict()), meta)
    return directory


def make_victim(window: int = 400, n_classes: int = 3) -> ClipClassifier:
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Linear(window, 16), nn.Tanh(), nn.Linear(16, n_classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return ClipClassifier(net, window=window).eval()


def write_tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1,
               level: float = 0.5, subtype: str = "PCM_16", seed: int = 0) -> Path:  # fmt: skip
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = np.sin(2 * np.pi * 440 * t)[:, None] + 0.3 * rng.standard_normal((t.size, channels))
    x = level * x / np.abs(x).max()
    sf.write(str(path), x.astype(np.float32), rate, subtype=subtype)
    return path


def in_memory(attack: SSGANAttack, path: Path, target: Path) -> np.ndarray:
    """The reference: what ``ssgan attack`` computed before streaming, written as 16-bit."""
    x_np, peak = load_audio_with_peak(path)
    x = torch.from_numpy(x_np)[None]
    x_adv = (x + attack.perturbation(x)).clamp(-1.0, 1.0)
    save_audio(target, (x_adv[0] * peak).numpy())
    return sf.read(str(target), dtype="int16")[0]


@pytest.mark.parametrize(
    ("seconds", "rate", "channels", "block_frames"),
    [
        (1.03, 16000, 1, 1000),  # last segment filled from the clip's start
        (1.2, 16000, 1, 777),  # exact multiple of the segment
        (0.9, 44100, 2, 4096),  # resampled + mixed down in blocks
        (0.7, 8000, 1, 333),
    ],
)
def test_streamed_equals_in_memory_sample_for_sample(
    tmp_path: Path, seconds: float, rate: int, channels: int, block_frames: int
) -> None:
    attack = make_attack(chunk_segments=3)
    src = write_tone(tmp_path / "in.wav", seconds, rate, channels)
    expected = in_memory(attack, src, tmp_path / "ref.wav")
    result = attack_file(attack, src, tmp_path / "out.wav", block_frames=block_frames)
    got, out_rate = sf.read(str(tmp_path / "out.wav"), dtype="int16")
    assert result.streamed and out_rate == 16000
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # The SNR from running sums matches the whole-clip formula.
    x_np, _ = load_audio_with_peak(src)
    x = torch.from_numpy(x_np).double()
    delta = (x + attack.perturbation(x[None].float())[0].double()).clamp(-1, 1) - x
    want = 10 * np.log10(float((x**2).sum()) / float((delta**2).sum()))
    assert result.snr_db == pytest.approx(want, abs=1e-3)


def test_g_never_sees_more_than_chunk_segments(tmp_path: Path) -> None:
    attack = make_attack(chunk_segments=2)
    rows: list[int] = []
    attack.generator.register_forward_hook(lambda m, inp, out: rows.append(inp[0].shape[0]))
    src = write_tone(tmp_path / "in.wav", 1.0, 16000)
    attack_file(attack, src, tmp_path / "out.wav", block_frames=500)
    assert max(rows) == 2 and sum(rows) == 20  # 16000 / 800 segments, two at a time


def test_victim_predictions_from_collected_crops_equal_the_full_clip(tmp_path: Path) -> None:
    attack, victim = make_attack(chunk_segments=4), make_victim()
    src = write_tone(tmp_path / "in.wav", 1.3, 22050, 2)
    result = attack_file(attack, src, tmp_path / "out.wav", victim=victim, block_frames=1500)
    x = torch.from_numpy(load_audio_with_peak(src)[0])[None]
    x_adv = (x + attack.perturbation(x)).clamp(-1, 1)
    assert result.streamed and result.clean_logits is not None and result.adv_logits is not None
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
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = in_memory(SSGANAttack.from_run(run, chunk_segments=5), src, tmp_path / "ref.wav")
    np.testing.assert_array_equal(sf.read(str(out / "my clip_adv.wav"), dtype="int16")[0], expected)
    assert record["snr_db"] > 0 and record["seconds"] == pytest.approx(1.1)
    assert sorted(p.name for p in out.iterdir()) == ["my clip_adv.wav", "results.jsonl"]
