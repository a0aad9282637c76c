"""The method must learn: on the bundled ESC-10 clips, a small real victim and a generator trained
with the default recipe for a bounded number of steps fool clearly more crops than Gaussian noise
at the same SNR. If a change stops the generator from learning anything about the victim, this
fails (noise alone is the floor it has to beat)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from conftest import TinyVictim
from ssgan.data import bundled_root, load_dataset, make_split
from ssgan.data.segments import random_crops
from ssgan.models.generators.base import scale_to_snr
from ssgan.training.gan import PROFILES, fit_gan

CROP = 4000  # 0.25 s: the victim's window and the generator's segment
SNR_DB = 25.0


def _train_victim(clips: list[torch.Tensor], labels: list[int]) -> nn.Module:
    torch.manual_seed(0)
    victim = TinyVictim(n_classes=10)
    opt = torch.optim.Adam(victim.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    y_all = torch.tensor(labels)
    for _ in range(300):
        idx = torch.randint(0, len(clips), (32,), generator=g)
        x = random_crops([clips[i] for i in idx.tolist()], CROP, generator=g)
        loss = nn.functional.cross_entropy(victim(x), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    victim.eval()
    for p in victim.parameters():
        p.requires_grad_(False)
    return victim


@pytest.mark.slow
@pytest.mark.parametrize(
    ("convention", "snr"),
    # the true SNR of the recipe; the paper's budget in [16]'s box convention, 35.7 dB there
    [("true", SNR_DB), ("box", 35.7)],
)
def test_default_recipe_fools_more_crops_than_noise_at_the_same_snr(
    convention: str, snr: float
) -> None:
    ds = load_dataset("esc10", bundled_root())
    train, _ = make_split(ds, "fold:5")
    clips = [c.float() for c in train.waveforms()]
    labels = train.labels()
    victim = _train_victim(clips, labels)

    config = dataclasses.replace(
        PROFILES["cpu"],
        segment_seconds=CROP / 16000,
        crop_seconds=None,
        snr_db=snr,
        snr_convention=convention,
        epochs=6,
        steps_per_epoch=25,
        lr_halve_every=4,
        val_clips=0,
        seed=0,
    )
    assert config.g_output == "snr" and config.gamma == 0  # the recipe under test is the default
    state = fit_gan(config, victim, (clips, labels))
    G = state.G.eval()

    g = torch.Generator().manual_seed(123)
    idx = torch.arange(len(clips)).repeat(8)
    x = random_crops([clips[i] for i in idx.tolist()], CROP, generator=g)
    y = torch.tensor(labels)[idx]
    with torch.no_grad():
        right = victim(x).argmax(1) == y
        x, y = x[right], y[right]
        fooled_g = (victim((x + G(x)).clamp(-1, 1)).argmax(1) != y).float().mean().item()
        noise = scale_to_snr(torch.randn(x.shape, generator=g), x, snr, convention)
        fooled_n = (victim((x + noise).clamp(-1, 1)).argmax(1) != y).float().mean().item()
    assert len(y) >= 100  # enough crops the victim gets right to compare rates
    print(f"{convention} {snr} dB: G fools {fooled_g:.3f}, noise {fooled_n:.3f}")
    # Measured on an AMD EPYC: true 25 dB: 17.8 % of the crops against 1.1 % for noise.
    assert fooled_g >= max(3 * fooled_n, fooled_n + 0.1), (fooled_g, fooled_n)
