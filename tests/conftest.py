"""Shared fixtures: tiny synthetic audio and a tiny victim trained on it.

The synthetic task: class k is a sine at a class-specific frequency with random phase, amplitude
and a little noise, 16 kHz. A small conv net learns it in a couple of seconds on CPU, which gives
every attack test a victim whose decisions can really be flipped.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

SR = 16_000
FREQS_HZ = (220.0, 660.0, 1500.0, 3000.0)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def synth_batch(n: int, length: int, seed: int, n_classes: int = len(FREQS_HZ)):
    """``n`` clips of ``length`` samples, labels cycling over classes; deterministic by seed."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    t = torch.arange(length, dtype=torch.float32) / SR
    freqs = torch.tensor(FREQS_HZ[:n_classes])[y]
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    amp = 0.5 + 0.4 * torch.rand(n, 1, generator=g)
    x = amp * torch.sin(2 * math.pi * freqs[:, None] * t[None, :] + phase)
    x = x + 0.02 * torch.randn(n, length, generator=g)
    x = x / x.abs().amax(dim=1, keepdim=True)
    return x.float(), y


class TinyVictim(nn.Module):
    """A small 1-D conv classifier: (batch, time) -> logits, any length (global pooling)."""

    def __init__(self, n_classes: int = len(FREQS_HZ)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, 64, stride=8),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Conv1d(8, 16, 16, stride=4),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
        )
        self.fc = nn.Linear(16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x.unsqueeze(1)).flatten(1))


def train_tiny_victim(seed: int = 0, steps: int = 150) -> TinyVictim:
    torch.manual_seed(seed)
    model = TinyVictim()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        x, y = synth_batch(32, 4000, seed=1000 + step)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def train_tiny_snr_gan(out: Path, *, seed: int, data_seed: int, **config) -> torch.Tensor:
    """Two steps of the exact-SNR recipe (t1 = 0.05 s) against a tiny EnvNet, written to
    ``out``; ``config`` adds generator options. Returns the 6 clips: 4 trained on, 2 validated."""
    import dataclasses

    from ssgan.gan_validation import validate_generator
    from ssgan.models.envnet import EnvNet
    from ssgan.models.victim import ClipClassifier
    from ssgan.training.gan import PROFILES, train_gan

    torch.manual_seed(seed)
    net = EnvNet(4, fc_width=16).eval()
    victim = ClipClassifier(net, window=net.window, n_crops=2)
    settings = dataclasses.replace(
        PROFILES["smoke"], segment_seconds=0.05, epochs=1, batch_size=2, steps_per_epoch=2,
        g_channels=2, val_clips=2, g_output="snr", gamma=0.0, beta=0.0, margin=2.0,
        victim_view="windows", **config,
    )  # fmt: skip
    x, y = synth_batch(6, 4000, seed=data_seed)
    train_gan(settings, victim, (list(x[:4]), y[:4].tolist()), (list(x[4:]), y[4:].tolist()),
              out, progress=False, validate=validate_generator)  # fmt: skip
    return x


@pytest.fixture(scope="session")
def tiny_victim() -> TinyVictim:
    """A trained tiny victim (eval mode, frozen). Accuracy on ``synth_batch`` is ~100 %."""
    return train_tiny_victim()


@pytest.fixture()
def synth():
    """The synthetic clip maker: ``synth(n, length, seed) -> (x, y)``."""
    return synth_batch


def data_root() -> Path:
    return Path(
        os.environ.get("SSGAN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """The real ESC-50 / UrbanSound8K copies; tests using it are skipped when absent."""
    root = data_root()
    if not (root / "ESC-50" / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real data not found under {root} (set SSGAN_DATA)")
    return root
