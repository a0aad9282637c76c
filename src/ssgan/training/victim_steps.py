"""One victim training step: the training state, the epoch's batches, crops and augmentation.

``TrainState`` holds everything that changes during training; ``epoch_batches`` draws the
epoch's shuffled order from the shared generator; ``make_batch`` cuts each clip's random
window-long crop (with the optional time stretch and gain); ``train_step`` does one optimiser
step on one batch (in bfloat16 if the config asks and ``bf16_is_fast`` says it pays).
``ClipSource`` is what the trainer needs from a dataset. The epoch loop that drives these is
``ssgan.training.victim``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ssgan.errors import DatasetError
from ssgan.models.victim import pad_clip

__all__ = [
    "ClipSource",
    "TrainState",
    "bf16_is_fast",
    "epoch_batches",
    "make_batch",
    "make_optimizer",
    "time_stretch",
    "train_step",
]


class ClipSource(Protocol):
    """What the trainer needs from a dataset (``ssgan.data.ClipDataset`` has it)."""

    class_names: list[str]

    def waveforms(self) -> list[torch.Tensor]: ...

    def labels(self) -> list[int]: ...


@dataclass
class TrainState:
    """Everything that changes during training (and is checkpointed)."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # shuffling; crops and augmentation too in a single process
    epoch: int = 0  # completed epochs
    best_accuracy: float = -1.0
    best_epoch: int = 0
    last_accuracy: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # data parallel only: the DistributedDataParallel wrapper of `net` and this rank's generator
    ddp: nn.Module | None = None
    crop_generator: torch.Generator | None = None

    @property
    def crops(self) -> torch.Generator:
        """The generator of crops and augmentation."""
        return self.generator if self.crop_generator is None else self.crop_generator


def make_optimizer(net: nn.Module, config: Any) -> torch.optim.Optimizer:
    """The victim's optimiser: Nesterov SGD with the config's lr, momentum and weight decay."""
    return torch.optim.SGD(
        net.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
        # one fused kernel over all 48 M parameters: ~2x faster than the per-tensor loop on CPU
        fused=True,
    )


def epoch_batches(
    n_clips: int,
    batch_size: int,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """The epoch's batches of clip indices: a permutation drawn from ``generator``, split into
    ``batch_size`` chunks; a last batch of fewer than 2 clips is dropped (BatchNorm cannot train
    on one example)."""
    order = torch.randperm(n_clips, generator=generator)
    return [b for b in order.split(batch_size) if len(b) >= 2]


def time_stretch(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Resample ``(time,)`` by linear interpolation to ``round(time * factor)`` samples.

    As the official ``random_scale``: ``factor > 1`` makes the sound longer (slower, lower).
    """
    n_out = max(1, int(x.shape[-1] * factor))
    pos = torch.arange(n_out, dtype=torch.float32) / factor
    left = pos.floor().long().clamp(max=x.shape[-1] - 1)
    right = (left + 1).clamp(max=x.shape[-1] - 1)
    frac = (pos - left.float()).to(x.dtype)
    return x[left] * (1 - frac) + x[right] * frac


def make_batch(
    clips: Sequence[torch.Tensor],
    window: int,
    generator: torch.Generator,
    *,
    gain_db: float = 0.0,
    stretch: float = 1.0,
) -> torch.Tensor:
    """Training crops ``(batch, window)``: per clip stretch, pad, random crop, gain."""
    out = []
    for clip in clips:
        # Draw every random number even when an augmentation is off, so that the generator's
        # sequence depends only on the number of clips (simpler to reason about on resume).
        u_stretch, u_start, u_gain = torch.rand(3, generator=generator).tolist()
        if stretch > 1:
            clip = time_stretch(clip, math.exp((2 * u_stretch - 1) * math.log(stretch)))
        padded = pad_clip(clip, window)
        start = int(u_start * (padded.shape[-1] - window + 1))
        crop = padded[start : start + window]
        if gain_db > 0:
            crop = crop * 10 ** ((2 * u_gain - 1) * gain_db / 20)
        out.append(crop)
    return torch.stack(out)


def train_step(
    state: TrainState,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    bf16: bool = False,
) -> dict[str, float]:
    """One SGD step on crops ``x`` ``(batch, window)`` with labels ``y`` ``(batch,)``.

    Returns ``{"loss": mean cross-entropy, "correct": number of crops classified right}``.
    """
    state.net.train()
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    ctx = torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    with ctx:
        logits = (state.net if state.ddp is None else state.ddp)(x)
    loss = F.cross_entropy(logits.float(), y)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    return {"loss": float(loss.detach()), "correct": float((logits.argmax(-1) == y).sum())}


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 autocast pays on ``device``: CUDA, or a CPU with native bfloat16
    (AVX512-BF16 or AMX, oneDNN's check). Without it the CPU emulates bfloat16, measured several
    times slower than float32 for EnvNet (docs/notebook/recipe.md), so ``bf16=true`` falls back."""
    if device.type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_dataset(ds: ClipSource, what: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    clips = [torch.as_tensor(w, dtype=torch.float32) for w in ds.waveforms()]
    labels = torch.as_tensor(list(ds.labels()), dtype=torch.long)
    if not clips:
        raise DatasetError(f"{what} set is empty")
    if len(clips) != len(labels):
        raise DatasetError(f"{what} set: {len(clips)} waveforms but {len(labels)} labels")
    n_classes = len(ds.class_names)
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise DatasetError(f"{what} set: labels outside 0..{n_classes - 1}")
    return clips, labels
