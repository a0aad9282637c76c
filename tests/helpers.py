"""Helpers shared by more than one test file (import them with ``from helpers import ...``).

Test files never import each other; what several of them use lives here (fixtures stay in
``conftest.py``). ``tests/`` is on ``sys.path`` both under pytest (rootdir-relative ``prepend``
import of ``conftest.py``) and when ``dist_worker.py`` runs as a torchrun script (its folder).

- Evaluation stand-ins: ``FakeClip``, ``FakeDataset`` (synthetic clips of two lengths),
  ``FGSM`` (a one-step Linf attack that counts its calls), ``Identity`` (a no-op attack).
- CLI run directories and audio: ``CLASSES``, ``make_victim_run`` (an untrained EnvNet victim
  run), ``tone`` (a noisy 300 Hz tone array); ``SEGMENT_SECONDS``, ``G_SHAPE``,
  ``make_generator``, ``make_gan_run`` (a seeded small-G run), ``write_tone`` (a noisy 440 Hz
  tone written to a file).
- Training configs: ``TINY_GAN`` (the tiny ``GANTrainConfig``), ``TINY_VICTIM`` (the tiny EnvNet
  ``VictimTrainConfig``), ``SNR_CONFIG`` (the exact-SNR recipe's tiny GAN config),
  ``MemoryClips`` and ``victim_data`` (in-memory synthetic train / test clips).
- ``ssgan reproduce`` options: ``TINY_VICTIM_ARGS``, ``TINY_GAN_ARGS`` (CLI ``--*-set`` lists).
- Fake datasets: ``SUBTYPES``, ``noise_clip``, ``make_fake_us8k`` (a fake UrbanSound8K tree).
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from conftest import synth_batch
from ssgan.io import flatten_state_dicts, save_checkpoint
from ssgan.models.envnet import ENVNET_MIN_WINDOW, ENVNET_WINDOW, MODELS
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.victim import VICTIM_KIND
from ssgan.training.gan import PROFILES
from ssgan.training.gan_checkpoint import GAN_KIND
from ssgan.training.victim import VictimTrainConfig


# ---------------------------------------------------- evaluation stand-ins (from test_evaluation)
@dataclass
class FakeClip:
    name: str


class FakeDataset:
    """Clips of two lengths, so that evaluation must batch by length."""

    def __init__(self, n: int = 10, seed: int = 0) -> None:
        xa, ya = synth_batch(n // 2, 4000, seed=seed)
        xb, yb = synth_batch(n - n // 2, 3000, seed=seed + 1)
        # Interleave lengths: 4000, 3000, 4000, ...
        self._x = [w for pair in zip(xa, xb, strict=False) for w in pair]
        self._y = [int(v) for pair in zip(ya, yb, strict=False) for v in pair]
        self.class_names = ["low", "mid", "high", "top"]
        self.clips = [FakeClip(f"clip_{i:02d}.wav") for i in range(len(self._x))]

    def waveforms(self) -> list[torch.Tensor]:
        return list(self._x)

    def labels(self) -> list[int]:
        return list(self._y)


class FGSM:
    """Goodfellow et al. 2015, Linf step of size eps; the test's stand-in for a real attack."""

    def __init__(self, eps: float) -> None:
        self.eps = eps
        self.calls = 0

    def __call__(self, model: nn.Module, x, y, *, target=None, generator=None):
        self.calls += 1
        x = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
        return (x + self.eps * grad.sign()).clamp(-1, 1).detach()


class Identity:
    def __call__(self, model, x, y, *, target=None, generator=None):
        return x.clone()


# ------------------------------------------------------ CLI runs and audio (from test_bad_inputs)
CLASSES = ["dog", "rain"]


def make_victim_run(directory: Path) -> Path:
    """An (untrained, seeded) EnvNet victim run that ``load_victim`` accepts."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = MODELS["envnet"](len(CLASSES), window=ENVNET_WINDOW, fc_width=8)
    meta = {
        "kind": VICTIM_KIND, "class_names": CLASSES, "n_crops": 2, "sample_rate": 16000,
        "window": ENVNET_WINDOW,
        "model": {"name": "envnet", "n_classes": 2, "window": ENVNET_WINDOW, "fc_width": 8},
    }  # fmt: skip
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    for name in ("best", "last"):
        save_checkpoint(directory, name, tensors, meta)
    return directory


def tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * rate))
    t = np.arange(n) / rate
    x = np.sin(2 * np.pi * 300 * t)[:, None] + 0.2 * rng.standard_normal((n, channels))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


# ------------------------------------------- generator runs and audio files (from test_streaming)
SEGMENT_SECONDS = 0.05  # 800 samples: many segments in a 1 s file
G_SHAPE = {"channels": 2, "n_down": 1, "n_blocks": 1, "block_kernel": 3, "max_delta": 0.05}


def make_generator(seed: int = 0) -> Generator:
    """A small generator with seeded random weights (no global RNG)."""
    g = build_generator(GeneratorSpec(**G_SHAPE))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return g.eval()


def make_gan_run(directory: Path, seed: int = 0) -> Path:
    """A run directory that ``SSGANAttack.from_run`` / ``ssgan attack --generator`` accept."""
    g = make_generator(seed)
    meta = {"kind": GAN_KIND, "generator": dict(G_SHAPE), "segment_seconds": SEGMENT_SECONDS}
    for name in ("best", "last"):
        save_checkpoint(directory, name, flatten_state_dicts(G=g.state_dict()), meta)
    return directory


def write_tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1,
               level: float = 0.5, subtype: str = "PCM_16", seed: int = 0) -> Path:  # fmt: skip
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = np.sin(2 * np.pi * 440 * t)[:, None] + 0.3 * rng.standard_normal((t.size, channels))
    x = level * x / np.abs(x).max()
    sf.write(str(path), x.astype(np.float32), rate, subtype=subtype)
    return path


# ----------------------------------------------------------- training configs and in-memory clips
# test_train_gan's tiny GAN config: 0.05 s crops of 0.25 s clips, a small G.
TINY_GAN = dataclasses.replace(
    PROFILES["smoke"],
    segment_seconds=0.05,
    epochs=2,
    batch_size=4,
    steps_per_epoch=2,
    g_channels=4,
    g_blocks=1,
    val_clips=4,
    margin=2.0,
)

# test_train_victim's tiny EnvNet (narrow FC layers, shortest window) so that an epoch takes well under a second.
TINY_VICTIM = VictimTrainConfig(
    window=ENVNET_MIN_WINDOW,
    fc_width=32,
    epochs=2,
    batch_size=8,
    lr=0.05,
    bf16=True,
    n_crops=2,
    gain_db=3.0,
    time_stretch=1.1,
    seed=3,
)

# test_recipe's exact-SNR recipe config (no D, margin loss), tiny shapes.
SNR_CONFIG = dataclasses.replace(
    PROFILES["smoke"],
    segment_seconds=0.05,
    batch_size=4,
    g_channels=4,
    g_blocks=1,
    g_output="snr",
    snr_db=30.0,
    gamma=0.0,
    beta=0.0,
    margin=2.0,
)


class MemoryClips:
    """An in-memory stand-in for ``ssgan.data.ClipDataset``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.class_names = ["a", "b", "c", "d"]

    def waveforms(self) -> list[torch.Tensor]:
        return list(self.x)

    def labels(self) -> list[int]:
        return self.y.tolist()


def victim_data() -> tuple[MemoryClips, MemoryClips]:
    """test_train_victim's clips: 16 to train on, 8 to test on, 6000 samples each."""
    x, y = synth_batch(16, 6000, seed=10)
    xt, yt = synth_batch(8, 6000, seed=11)
    return MemoryClips(x, y), MemoryClips(xt, yt)


# -------------------------------------------------- ssgan reproduce options (from test_reproduce)
TINY_VICTIM_ARGS = [
    "--set", "victim.fc_width=16", "--set", "victim.epochs=1", "--set", "victim.window=5294",
]  # fmt: skip
TINY_GAN_ARGS = [
    "--set", "gan.epochs=1", "--set", "gan.steps_per_epoch=1", "--set", "gan.val_clips=2",
]  # fmt: skip


# ------------------------------------------------------------- fake datasets (from test_datasets)
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def noise_clip(seed: int, n: int, channels: int) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-0.8, 0.8, size=(n, channels)).astype(np.float32)
    return x


def make_fake_us8k(root: Path) -> list[dict]:
    names = ["air_conditioner", "car_horn", "children_playing"]
    rows = []
    k = 0
    for fold in (1, 2, 3):
        (root / "audio" / f"fold{fold}").mkdir(parents=True)
        for cid, cname in enumerate(names):
            for j in range(2):
                stem = f"{100 + k}-{cid}-0-{j}"
                rate = (44100, 48000)[k % 2]
                n = int(rate * (0.2 + 0.05 * k))
                sf.write(
                    root / "audio" / f"fold{fold}" / f"{stem}.wav",
                    noise_clip(k, n, 2),
                    rate,
                    subtype=SUBTYPES[k % 3],
                )
                rows.append(
                    {
                        "slice_file_name": f"{stem}.wav",
                        "fsID": 100 + k,
                        "start": 0,
                        "end": n / rate,
                        "salience": 1,
                        "fold": fold,
                        "classID": cid,
                        "class": cname,
                    }
                )
                k += 1
    (root / "metadata").mkdir()
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows
