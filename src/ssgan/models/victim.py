"""The official clip-level protocol of EnvNet / EnvNet-v2 as a differentiable victim.

Tokozume & Harada (ICASSP 2017) and Tokozume et al. (ICLR 2018, official code
``mil-tokyo/bc_learning_sound``) classify a clip of any length from fixed-length windows:

- training: pad the clip with ``window // 2`` zeros on both sides and take one random
  window-long crop (``random_crop``);
- testing: pad the same way, take ``n_crops`` (10) evenly spaced crops, average the softmax over
  the crops (``ClipClassifier``).

``ClipClassifier.forward`` returns ``log(mean_k softmax(net(crop_k)))``. These are valid logits:
their softmax is exactly the averaged probability, so ``argmax`` is the official prediction and
margin losses (C&W, the SSGAN adversarial loss) work on them. The function is differentiable with
respect to the waveform, so every attack and every metric sees the function the user deploys.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssgan.errors import CheckpointError
from ssgan.io import load_checkpoint
from ssgan.models.registry import MODELS
from ssgan.pretrained import resolve_run

VICTIM_KIND = "ssgan-victim"


def pad_clip(x: torch.Tensor, window: int) -> torch.Tensor:
    """Pad ``(..., time)`` with ``window // 2`` zeros at both ends, then up to ``window`` if short.

    The extra padding of a clip still shorter than a window (only possible for an empty clip or an
    odd window) is split between both ends, the larger half at the end.
    """
    half = window // 2
    x = F.pad(x, (half, half))
    short = window - x.shape[-1]
    if short > 0:
        x = F.pad(x, (short // 2, short - short // 2))
    return x


def crop_starts(padded_length: int, window: int, n_crops: int) -> list[int]:
    """Start indices of the ``n_crops`` evenly spaced test crops of a padded clip.

    As in the official ``multi_crop``: stride ``(padded_length - window) // (n_crops - 1)``, crop
    ``k`` starts at ``k * stride``. One crop is the centre crop.
    """
    if padded_length < window:
        raise ValueError(f"padded_length={padded_length} is shorter than window={window}")
    if n_crops == 1:
        return [(padded_length - window) // 2]
    stride = (padded_length - window) // (n_crops - 1)
    return [k * stride for k in range(n_crops)]


def random_crop(
    x: torch.Tensor, window: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One random window-long training crop per clip from the padded clip.

    Args:
        x: ``(time,)`` or ``(batch, time)`` waveforms.
        window: crop length in samples.
        generator: the source of randomness (CPU generator); crops are drawn per clip.

    Returns:
        ``(window,)`` or ``(batch, window)``.
    """
    if window < 1:
        raise ValueError(f"window={window}: must be positive")
    single = x.dim() == 1
    xb = x[None] if single else x
    if xb.dim() != 2:
        raise ValueError(f"expected (time,) or (batch, time), got shape {tuple(x.shape)}")
    padded = pad_clip(xb, window)
    n_starts = padded.shape[-1] - window + 1
    starts = torch.randint(0, n_starts, (xb.shape[0],), generator=generator)
    idx = starts[:, None].to(padded.device) + torch.arange(window, device=padded.device)
    out = torch.gather(padded, 1, idx)
    return out[0] if single else out


class ClipClassifier(nn.Module):
    """A window classifier turned into a clip classifier by the official 10-crop protocol.

    Args:
        net: ``(batch, window)`` -> logits ``(batch, n_classes)``.
        window: the window length in samples that ``net`` takes.
        n_crops: crops per clip at test time (10 in the official protocol).
        crop_batch: at most this many crops go through ``net`` at once (bounds memory for long
            batches); ``None`` runs all ``batch * n_crops`` crops in one batch.

    ``forward(x)``: ``(batch, time)`` for any ``time >= 0`` -> ``(batch, n_classes)`` logits
    ``log(mean softmax)``. Differentiable with respect to ``x``.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        window: int,
        n_crops: int = 10,
        crop_batch: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window={window!r}: must be a positive number of samples")
        if n_crops < 1:
            raise ValueError(f"n_crops={n_crops}: need at least one crop")
        if crop_batch is not None and crop_batch < 1:
            raise ValueError(f"crop_batch={crop_batch}: must be positive or None")
        self.net = net
        self.window = window
        self.n_crops = n_crops
        self.crop_batch = crop_batch

    @property
    def n_classes(self) -> int | None:
        """The wrapped network's ``n_classes`` attribute, if it has an integer one."""
        n = getattr(self.net, "n_classes", None)
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    def crops(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> the test crops ``(batch, n_crops, window)``."""
        padded = pad_clip(x, self.window)
        starts = torch.tensor(
            crop_starts(padded.shape[-1], self.window, self.n_crops), device=x.device
        )
        idx = starts[:, None] + torch.arange(self.window, device=x.device)
        return padded[:, idx]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"ClipClassifier expects (batch, time), got shape {tuple(x.shape)}")
        batch = x.shape[0]
        flat = self.crops(x).reshape(batch * self.n_crops, self.window)
        if self.crop_batch is None or flat.shape[0] <= self.crop_batch:
            logits = self.net(flat)
        else:
            logits = torch.cat([self.net(c) for c in flat.split(self.crop_batch)])
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()  # averaging probabilities in half precision loses margins
        log_p = F.log_softmax(logits, dim=-1).reshape(batch, self.n_crops, -1)
        # log(mean_k p_k) computed stably in log space.
        return torch.logsumexp(log_p, dim=1) - math.log(self.n_crops)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> predicted labels ``(batch,)`` (int64)."""
        return self(x).argmax(dim=-1)


def wrap_victim(module: nn.Module, window: int | None = None, *, n_crops: int = 10) -> nn.Module:
    """Make any ``(batch, time) -> logits`` module usable as a victim.

    - a ``ClipClassifier`` is returned unchanged;
    - with ``window`` (or a module with an int ``.window`` attribute, like ``EnvNet``), it is
      wrapped in ``ClipClassifier`` so that it accepts clips of any length;
    - otherwise the module is assumed to accept any length already and returned unchanged.
    """
    if isinstance(module, ClipClassifier):
        return module
    if window is None:
        attr = getattr(module, "window", None)
        window = attr if isinstance(attr, int) else None
    if window is None:
        return module
    return ClipClassifier(module, window=window, n_crops=n_crops)


@torch.no_grad()
def predict_clips(
    model: nn.Module,
    clips: list[torch.Tensor],
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip-level predictions for clips of possibly different lengths.

    Clips of equal length are batched together (at most ``batch_size`` clips a batch).

    Returns:
        ``(labels (n,), probabilities (n, n_classes))``, on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be positive")
    n = len(clips)
    order = sorted(range(n), key=lambda i: clips[i].shape[-1])
    probs: list[torch.Tensor | None] = [None] * n
    start = 0
    while start < n:
        length = clips[order[start]].shape[-1]
        stop = start
        while stop < n and stop - start < batch_size and clips[order[stop]].shape[-1] == length:
            stop += 1
        idx = order[start:stop]
        x = torch.stack([clips[i] for i in idx]).to(device=device, dtype=torch.float32)
        p = torch.softmax(model(x).float(), dim=-1).cpu()
        for j, i in enumerate(idx):
            probs[i] = p[j]
        start = stop
    if n == 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, 0)
    stacked = torch.stack([p for p in probs if p is not None])
    return stacked.argmax(dim=-1), stacked


def load_victim(
    run_dir: str | Path, device: str | torch.device = "cpu", *, checkpoint: str = "last"
) -> tuple[ClipClassifier, dict[str, Any]]:
    """Load a victim trained by ``ssgan train victim`` (no unpickling: safetensors + JSON).

    Args:
        run_dir: the run directory, or ``pretrained:NAME`` (``ssgan.pretrained``).
        device: where to put the model.
        checkpoint: ``"last"`` (the final weights, default) or ``"best"`` (the epoch with the
            highest accuracy on the run's test split: a choice made on test data).

    Returns:
        ``(ClipClassifier in eval mode with frozen weights, meta)``; ``meta`` holds ``class_names``,
        ``sample_rate``, ``window``, ``n_crops``, ``model`` (name, n_classes, window), ``dataset``,
        ``split``, ``seed``, ``accuracy``, ``epoch``.

    Raises:
        CheckpointError: missing, truncated or corrupted files, or a checkpoint of another kind or
        architecture.
    """

    run_dir = resolve_run(run_dir)  # ``pretrained:NAME``: a run shipped in the package
    tensors, meta, _ = load_checkpoint(run_dir, checkpoint)
    where = Path(run_dir) / f"{checkpoint}.json"
    if meta.get("kind") != VICTIM_KIND:
        raise CheckpointError(
            f"{where}: not a victim checkpoint (kind={meta.get('kind')!r}, "
            f"expected {VICTIM_KIND!r})"
        )
    model_meta = meta.get("model")
    if not isinstance(model_meta, dict):
        raise CheckpointError(f"{where}: checkpoint metadata lacks the model description")
    name = model_meta.get("name")
    if name not in MODELS:
        raise CheckpointError(f"{where}: unknown model {name!r} (known: {', '.join(MODELS)})")
    try:
        net = MODELS[name](
            int(model_meta["n_classes"]),
            window=int(model_meta["window"]),
            fc_width=int(model_meta.get("fc_width", 4096)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: bad model description {model_meta!r} ({exc})") from None
    weights = {k[len("net.") :]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"{Path(run_dir) / (checkpoint + '.safetensors')}: weights do not fit model "
            f"{name!r} ({first})"
        ) from None
    window = int(model_meta["window"])
    clf = ClipClassifier(net, window=window, n_crops=int(meta.get("n_crops", 10)))
    clf.to(device)
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    return clf, meta


@contextlib.contextmanager
def victim_frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode with ``requires_grad=False`` weights; restore both afterwards.

    Every submodule's own ``training`` flag is restored (a model may mix modes), and existing
    ``.grad`` fields of the weights are left untouched (none are created).
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
