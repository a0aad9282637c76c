"""The SSGAN attack on clips of any length, a short training that really flips decisions, and
``ssgan attack`` on files (ssgan.attacks.ssgan, ssgan.cli.attack)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from ssgan.attacks.ssgan import SSGANAttack
from ssgan.cli import main
from ssgan.errors import CheckpointError
from ssgan.gan_validation import validate_generator
from ssgan.metrics import snr_db
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.training.gan import PROFILES, train_gan

SR = 16_000
OFFSETS = (-0.02, 0.02)


class OffsetVictim(nn.Module):
    """Two classes told apart by the sign of a small DC offset under a loud tone.

    Why not the ``tiny_victim`` fixture: its decisions hinge on which tone carries the energy,
    so flipping them takes a perturbation about as loud as the clip (an unconstrained
    C&W-style optimisation needs ~5 dB SNR, Linf PGD at 0.3 fails), and no attack can pass a
    20 dB bar on it. Here the cue is 31 dB below the clip, local, and depends on the input, so
    a generator must read each clip to flip it: a universal offset flips only half.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sign = nn.Parameter(torch.tensor([-1.0, 1.0]), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 100.0 * x.mean(dim=1, keepdim=True) * self.sign


def offset_clips(n: int, time: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    t = torch.arange(time) / SR
    f0 = 2000 + 2000 * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    x = 0.7 * torch.sin(2 * math.pi * f0 * t + phase) + 0.05 * torch.randn(n, time, generator=g)
    return (x + torch.tensor(OFFSETS)[y][:, None]).float(), y


CONFIG = dataclasses.replace(
    PROFILES["smoke"],
    segment_seconds=1000 / SR,
    epochs=8,
    batch_size=16,
    steps_per_epoch=10,
    lr=1e-2,
    lr_halve_every=10,
    beta=0.1,
    margin=2.0,
    g_channels=4,
    g_blocks=2,
    val_clips=16,
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    x, y = offset_clips(64, 4000, 1)
    xv, yv = offset_clips(16, 4000, 2)
    summary = train_gan(
        CONFIG, OffsetVictim(), (list(x), y.tolist()), (list(xv), yv.tolist()), out,
        progress=False, validate=validate_generator,
    )  # fmt: skip
    return out, summary


@pytest.mark.slow
def test_short_training_flips_most_clips_at_high_snr(trained_run) -> None:
    run, summary = trained_run
    victim = OffsetVictim()
    x, y = offset_clips(32, 5000, 7)  # unseen clips, a length that is not a segment multiple
    assert bool((victim(x).argmax(1) == y).all())
    x_adv = SSGANAttack.from_run(run)(victim, x, y)
    flipped = victim(x_adv).argmax(1) != y
    snr = snr_db(x, x_adv)
    assert float(flipped.float().mean()) >= 0.8
    assert float(snr[flipped].mean()) > 20.0
    assert summary["best"]["val/asr"] >= 0.8


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("time", [1, 99, 100, 101, 199, 200, 201, 1234])
def test_any_length_keeps_the_length(time: int, overlap: bool) -> None:
    attack = SSGANAttack.from_generator(
        _generator(), segment_seconds=100 / SR, overlap=overlap, chunk_segments=3
    )
    x = torch.rand(2, time, generator=torch.Generator().manual_seed(time)) * 1.8 - 0.9
    delta = attack.perturbation(x)
    assert delta.shape == x.shape
    assert float(delta.abs().max()) <= attack.max_delta
    x_adv = attack(OffsetVictim(), x, torch.zeros(2, dtype=torch.long))
    assert x_adv.shape == x.shape and float(x_adv.abs().max()) <= 1.0


def _generator() -> Generator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_generator(GeneratorSpec(channels=4, n_blocks=1)).eval()


def test_from_generator_reads_the_shape_and_refuses_a_contradicting_one() -> None:
    g = _generator()
    same = SSGANAttack.from_generator(g, segment_seconds=100 / SR, channels=4, n_blocks=1)
    assert same.generator is g and (same.channels, same.n_blocks) == (4, 1)
    with pytest.raises(ValueError, match="channels=8 but the generator has 4"):
        SSGANAttack.from_generator(g, segment_seconds=100 / SR, channels=8)


def test_each_segment_is_perturbed_independently_and_chunking_does_not_matter() -> None:
    g = _generator()
    x = torch.rand(1, 350, generator=torch.Generator().manual_seed(0)) * 2 - 1
    one = SSGANAttack.from_generator(g, segment_seconds=100 / SR, chunk_segments=1)
    many = SSGANAttack.from_generator(g, segment_seconds=100 / SR, chunk_segments=64)
    delta = one.perturbation(x)
    torch.testing.assert_close(delta, many.perturbation(x), rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(delta[:, 100:200], g(x[:, 100:200]), rtol=1e-5, atol=1e-7)


def test_save_load_round_trip_and_refusals(tmp_path, trained_run) -> None:
    run, _ = trained_run
    attack = SSGANAttack.from_run(run)
    attack.save(tmp_path / "saved")
    again = SSGANAttack.load(tmp_path / "saved")
    x, y = offset_clips(2, 3000, 3)
    assert torch.equal(attack.perturbation(x), again.perturbation(x))
    with pytest.raises(ValueError, match="targeted"):
        attack(OffsetVictim(), x, y, target=y)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "best.json").write_text('{"kind": "ssgan-victim"}')
    (tmp_path / "other" / "best.safetensors").write_bytes((run / "best.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="not an SSGAN checkpoint"):
        SSGANAttack.from_run(tmp_path / "other")
    with pytest.raises(RuntimeError, match="not fitted"):
        SSGANAttack().perturbation(x)


def test_from_run_can_cut_longer_segments_than_it_was_trained_on(trained_run) -> None:
    run, _ = trained_run
    trained = SSGANAttack.from_run(run)
    whole = SSGANAttack.from_run(run, segment_seconds=3000 / SR)
    assert whole.segment_samples == 3000 != trained.segment_samples
    x, _ = offset_clips(2, 3000, 3)
    with torch.no_grad():
        torch.testing.assert_close(whole.perturbation(x), whole.generator(x), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="segment_seconds"):
        SSGANAttack.from_run(run, segment_seconds=0.0)


def test_cli_attack_writes_adversarial_audio_at_the_input_level(tmp_path, trained_run, capsys):
    run, _ = trained_run
    x, _ = offset_clips(2, 4000, 5)
    inputs = []
    for i, clip in enumerate(x):
        path = tmp_path / f"clip{i}.wav"
        rate = 22_050 if i else SR  # any rate: resampled to 16 kHz
        data = clip.numpy() * 0.5
        if rate != SR:
            import soxr

            data = soxr.resample(data, SR, rate)
        sf.write(path, data, rate, subtype="FLOAT")
        inputs.append(path)
    out = tmp_path / "out"
    assert main(["attack", "--generator", str(run), *map(str, inputs), "--out", str(out)]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()] == lines
    *lines, summary = lines  # one line per file, then the summary
    assert len(lines) == 2 and all(line["snr_db"] > 20 for line in lines)
    assert summary["summary"]["files"] == 2 and summary["summary"]["done"] == 2
    adv, rate = sf.read(out / "clip0_adv.wav", dtype="float32")
    assert rate == SR and adv.shape == (4000,)
    peak_in = 0.5 * float(x[0].abs().max())
    assert abs(float(np.abs(adv).max()) - peak_in) < 0.05 * peak_in  # the input's own level
    assert sf.info(out / "clip1_adv.wav").samplerate == 22_050  # the input's own rate
    # a rerun skips what is done (--overwrite would redo it); an input is never overwritten
    before = (out / "clip0_adv.wav").read_bytes()
    assert main(["attack", "--generator", str(run), str(inputs[0]), "--out", str(out)]) == 0
    assert "1 already done (skipped), 0 to attack" in capsys.readouterr().err
    assert (out / "clip0_adv.wav").read_bytes() == before
    own = tmp_path / "clip0_adv.wav"  # an input named like the output of clip0.wav
    sf.write(own, x[0].numpy() * 0.5, SR)
    code = main(["attack", "--generator", str(run), str(inputs[0]), str(own),
                 "--out", str(tmp_path), "--overwrite"])  # fmt: skip
    assert code == 1
    assert "would overwrite an input" in capsys.readouterr().err


def test_bfloat16_precision_keeps_the_bound_and_stays_close_to_float32() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        g = build_generator(GeneratorSpec(channels=4, n_blocks=1, max_delta=0.01)).eval()
    with torch.no_grad():  # saturate the tanh: bf16(0.01) would round past the bound
        g.net[-1].bias.fill_(20.0)
    x = torch.rand(3, 777, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fp32 = SSGANAttack.from_generator(g, segment_seconds=100 / SR)
    bf16 = SSGANAttack.from_generator(g, segment_seconds=100 / SR, precision="bfloat16")
    d32, d16 = fp32.perturbation(x), bf16.perturbation(x)
    assert d16.dtype == torch.float32 and d16.shape == x.shape
    assert float(d16.abs().max()) <= 0.01
    torch.testing.assert_close(d16, d32, rtol=0, atol=0.01 * 0.05)
    with torch.no_grad():
        g.net[-1].bias.zero_()
    torch.testing.assert_close(bf16.perturbation(x), fp32.perturbation(x), rtol=0.05, atol=2e-4)
    with pytest.raises(ValueError, match="precision='half'"):
        SSGANAttack(precision="half")
