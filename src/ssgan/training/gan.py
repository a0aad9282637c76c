"""Training the SSGAN generator: config, state, D step, G step and the epoch loop.

The paper's recipe (section V-A): G and D trained alternately, D first then G on each batch, D
with soft labels and labels flipped with probability 0.05, Adam at lr 1e-4 halved every 10
epochs, batch 16, 150 epochs, ``alpha = 10``, ``beta = 1``, ``m = 10``. Each batch holds one
random ``t1``-second crop per clip (SIP, ``ssgan.data.segments.random_crops``); the victim (the
clip-level classifier) scores the ``t1`` crop and is never updated.

Structure (after descript-audio-codec): a ``GANState`` dataclass holds G, D, their optimisers,
schedulers, the epoch and the generator RNG; ``d_step`` and ``g_step`` each return a dict of
namespaced scalar losses; ``train_gan`` runs epochs, validates each one with the full any-length
attack (``SSGANAttack`` on whole held-out clips against the clip-level victim: ASR and MSNR as
``ssgan.metrics`` defines them), appends ``metrics.jsonl``, and writes checkpoints atomically:

- ``last.{safetensors,json,state.pt}``: G + D weights, metadata, optimiser / scheduler / RNG
  state, every epoch (``resume=True`` continues from it exactly, bitwise on CPU);
- ``best.{safetensors,json}``: the generator of the epoch with the best validation
  (highest ASR, then highest MSNR) -- what ``SSGANAttack.from_run`` loads;
- ``config.json``: the resolved config.

Randomness: weights are initialised under ``torch.random.fork_rng`` seeded from ``config.seed``
and every random draw of training (clip order, crops, soft labels, flips) comes from one
``torch.Generator`` kept in the state, so nothing global is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ssgan import SAMPLE_RATE
from ssgan.attacks.base import input_gradient
from ssgan.config import from_dict, to_dict
from ssgan.data import segments as sip
from ssgan.data.segments import random_crops
from ssgan.errors import CheckpointError, OutputError
from ssgan.losses import discriminator_loss, generator_loss
from ssgan.metrics import attack_success_rate, msnr_db, snr_db, success_mask
from ssgan.models.discriminator import Discriminator
from ssgan.models.generator import DEFAULT_MAX_DELTA, Generator
from ssgan.models.victim import victim_frozen
from ssgan.targets import choose_targets
from ssgan.training.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    flatten_state_dicts,
    json_safe,
    load_checkpoint,
    save_checkpoint,
    unflatten_state_dict,
)
from ssgan.transforms import eot_for

logger = logging.getLogger(__name__)

__all__ = [
    "PROFILES",
    "GANState",
    "GANTrainConfig",
    "d_step",
    "fit_gan",
    "g_step",
    "make_state",
    "train_gan",
    "validate",
]

FORMAT = 1


@dataclasses.dataclass
class GANTrainConfig:
    """Hyperparameters of one SSGAN training run (defaults = the paper's, section V-A)."""

    segment_seconds: float = 1.6  # t1; the paper's best of {0.8, 1.6, 3.2, 4.0}
    epochs: int = 150
    batch_size: int = 16
    # Batches per epoch; None = one pass over the training clips (ceil(n / batch_size)).
    steps_per_epoch: int | None = None
    lr: float = 1e-4  # Adam, both G and D
    lr_halve_every: int = 10  # epochs; lr *= 0.5 each time
    alpha: float = 10.0  # weight of L_adv
    beta: float = 1.0  # weight of L_pert
    margin: float = 10.0  # m of L_adv, on the victim's logits
    # None: the paper's L_pert = E||delta||_2. A number: penalise ||delta|| only where the
    # example's SNR falls below it (hinge; see ssgan.losses.perturbation_loss for why).
    pert_target_snr_db: float | None = None
    real_label_min: float = 0.9  # soft labels: real ~ U[min, max], fake ~ U[min, max]
    real_label_max: float = 1.0
    fake_label_min: float = 0.0
    fake_label_max: float = 0.1
    flip_prob: float = 0.05  # probability of swapping an example's real / fake label for D
    target_class: int | None = None  # None: untargeted; else every clip is pushed to this class
    # One class-conditional G for every target: each G step aims each crop at a class drawn
    # uniformly among the other classes (ssgan.targets); n_classes 0 = the victim's count.
    targeted: bool = False
    n_classes: int = 0
    g_channels: int = 8
    g_down: int = 2
    g_blocks: int = 4
    g_block_kernel: int = 3
    max_delta: float = DEFAULT_MAX_DELTA
    g_norm: bool = False  # instance norm in G
    g_context: bool = False  # FiLM G's bottleneck from its mean over the segment
    # G also reads the victim's input gradient (the clip-level victim with grad_crops crops in
    # training, the victim as given at attack time) and starts as the L2 fast gradient method.
    g_grad: bool = False
    grad_crops: int | None = 2
    # "tanh": the paper's bounded output; "snr": G's direction at exactly snr_db per segment.
    g_output: str = "tanh"
    snr_db: float = 30.0
    # g_output="snr": G picks each segment's SNR in snr_db +- loudness_range_db, and the loss
    # adds loudness_weight * mean(snr_db + loudness_range_db - SNR) / 10 dB (quieter is better).
    loudness_range_db: float = 0.0
    loudness_weight: float = 0.0
    gamma: float = 1.0  # weight of L_fool (D's term); 0 drops D: no D step at all
    # Mean of L_adv over the examples the victim still gets right, not the whole batch.
    adv_unfooled_only: bool = False
    # What the G step scores: "clip" = the clip-level victim on the crop (victim_crops crops);
    # "windows" = the victim's window network on victim_crops (default 1) windows at random
    # offsets inside the crop, so G learns perturbations that work wherever a window falls.
    victim_view: str = "clip"
    # Training crop length; None = t1. A longer crop is cut into t1 segments, each perturbed
    # by G and stitched back exactly as the attack does, so the victim sees segment seams.
    crop_seconds: float | None = None
    # Epochs whose validation MSNR is below this rank after every epoch that reaches it (the
    # `best` checkpoint is never chosen on ASR alone). None: snr_db for g_output="snr", else
    # pert_target_snr_db.
    select_snr_db: float | None = None
    d_mfe_channels: int = 16
    d_del_channels: int = 16
    # bfloat16 autocast for G only. D and the victim stay float32: bf16 keeps 8 mantissa bits, so
    # x + delta rounded to bf16 loses a 30 dB perturbation (relative size 0.03) almost entirely.
    # Crops the clip-level victim scores in the G step (None: the victim's own, 10 officially).
    # The t1 segment is only a proxy of the clip the attack meets later (whose 10 crops fall
    # elsewhere), so scoring fewer evenly spaced crops is an equally good proxy at a fraction of
    # the cost: the victim's forward+backward is ~90 % of a CPU training step.
    victim_crops: int | None = None
    bf16: bool = False
    # Expectation over transformation (docs/robustness.md): the G step's victim scores x_adv
    # after one of these ssgan.transforms specs, drawn per crop with probability eot_prob, so G
    # learns perturbations that survive the channel (MP3, resampling: straight-through gradient).
    eot: tuple[str, ...] = ()
    eot_prob: float = 1.0
    seed: int = 0
    val_clips: int | None = 64  # held-out clips attacked each epoch; None = all of them
    val_batch_size: int = 8
    chunk_segments: int = 64  # segments through G at once during validation

    def __post_init__(self) -> None:
        positive = {
            "segment_seconds": self.segment_seconds,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "lr_halve_every": self.lr_halve_every,
            "g_channels": self.g_channels,
            "val_batch_size": self.val_batch_size,
            "chunk_segments": self.chunk_segments,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name}={value!r}: must be > 0")
        for name in ("alpha", "beta", "margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be >= 0")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={self.steps_per_epoch!r}: must be >= 1 or None")
        if self.victim_crops is not None and self.victim_crops < 1:
            raise ValueError(f"victim_crops={self.victim_crops!r}: must be >= 1 or None")
        if self.val_clips is not None and self.val_clips < 0:
            raise ValueError(f"val_clips={self.val_clips!r}: must be >= 0 or None")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob={self.flip_prob!r}: must be in [0, 1]")
        for lo, hi in (("real_label_min", "real_label_max"), ("fake_label_min", "fake_label_max")):
            a, b = getattr(self, lo), getattr(self, hi)
            if not 0.0 <= a <= b <= 1.0:
                raise ValueError(f"{lo}={a!r}, {hi}={b!r}: need 0 <= {lo} <= {hi} <= 1")
        if not 0.0 < self.max_delta <= 1.0:
            raise ValueError(f"max_delta={self.max_delta!r}: must be in (0, 1]")
        choices = {"g_output": ("tanh", "snr"), "victim_view": ("clip", "windows")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        for name in ("gamma", "loudness_range_db", "loudness_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be >= 0")
        if self.loudness_range_db > 0 and self.g_output != "snr":
            raise ValueError("loudness_range_db > 0 needs g_output='snr'")
        if self.g_grad and self.g_output != "snr":
            raise ValueError("g_grad=true needs g_output='snr'")
        if self.grad_crops is not None and self.grad_crops < 1:
            raise ValueError(f"grad_crops={self.grad_crops!r}: must be >= 1 or None")
        if self.eot:
            eot_for(tuple(self.eot), self.eot_prob)  # ValueError naming a bad spec or prob
        if self.targeted and self.target_class is not None:
            raise ValueError(
                "targeted=True (every target) and target_class (one) exclude each other"
            )
        if self.crop_seconds is not None and self.crop_seconds < self.segment_seconds:
            raise ValueError(
                f"crop_seconds={self.crop_seconds!r}: must be >= segment_seconds "
                f"({self.segment_seconds}) or None"
            )

    @property
    def segment_samples(self) -> int:
        return max(1, round(self.segment_seconds * SAMPLE_RATE))

    @property
    def crop_samples(self) -> int:
        if self.crop_seconds is None:
            return self.segment_samples
        return max(1, round(self.crop_seconds * SAMPLE_RATE))

    @property
    def selection_snr_db(self) -> float | None:
        if self.select_snr_db is not None:
            return self.select_snr_db
        return self.snr_db if self.g_output == "snr" else self.pert_target_snr_db

    def generator_shape(self) -> dict[str, Any]:
        """The ``Generator`` / ``SSGANAttack`` keyword arguments this config builds."""
        return {
            "channels": self.g_channels,
            "n_down": self.g_down,
            "n_blocks": self.g_blocks,
            "block_kernel": self.g_block_kernel,
            "max_delta": self.max_delta,
            "norm": self.g_norm,
            "output": self.g_output,
            "snr_db": self.snr_db,
            "loudness_range_db": self.loudness_range_db,
            "context": self.g_context,
            "grad_input": self.g_grad,
            "num_classes": self.n_classes if self.targeted else 0,
        }


_RECIPE = GANTrainConfig(
    epochs=30,
    batch_size=16,
    steps_per_epoch=100,
    lr=1e-3,
    lr_halve_every=10,
    val_clips=None,
    g_output="snr",
    snr_db=30.0,
    gamma=0.0,
    beta=0.0,
    margin=5.0,
    victim_view="windows",
)

PROFILES: dict[str, GANTrainConfig] = {
    # Seconds: the tests and a CLI check.
    "smoke": GANTrainConfig(
        epochs=2, batch_size=8, steps_per_epoch=4, lr=1e-3, val_clips=8, lr_halve_every=10
    ),
    # Minutes on the bundled clips. A higher lr than the paper's: far fewer steps.
    # Minutes on the bundled clips: the cpu recipe with fewer steps (see docs/recipe.md).
    "demo": dataclasses.replace(
        _RECIPE, epochs=3, steps_per_epoch=50, lr_halve_every=2, snr_db=25.0, val_clips=32
    ),
    # Our recipe, the default (docs/recipe.md has the sweep behind each choice): G's output at
    # an exact SNR (no norm loss, so no collapse to nothing and no noise at a bound), no D, the
    # margin on the victim's window network at a random offset inside the crop.
    "cpu": _RECIPE,
    # The recipe with the gradient-informed G (it queries the victim's gradient at attack time:
    # its own row), scored on the clip victim with 2 crops so training keeps its FGM start
    # (docs/recipe.md, "Whole clips and the gradient-informed generator").
    "cpu-grad": dataclasses.replace(_RECIPE, g_grad=True, victim_view="clip", victim_crops=2),
    # The old CPU recipe (tanh bounded at 0.01, SNR hinge, D on, 4 clip crops), for comparison.
    "cpu-tanh": GANTrainConfig(
        epochs=30,
        batch_size=16,
        lr=1e-3,
        lr_halve_every=10,
        val_clips=None,
        victim_crops=4,
        pert_target_snr_db=30.0,
        margin=5.0,
        max_delta=0.01,
    ),
    # The paper's values (section V-A): a GPU job. Measured on an H200 against a 85.0 % EnvNet
    # on ESC-10 (docs/history.md, "On a GPU"): test ASR 58.8-60.3 % at 5.7-6.2 dB for every t1, flat
    # from epoch ~11 on; ESC-10 gives 18 steps an epoch where the paper's ESC-50 gave 112.
    "paper": GANTrainConfig(),
}


@dataclasses.dataclass
class GANState:
    """Everything that changes during training (checkpointed every epoch)."""

    config: GANTrainConfig
    G: Generator
    D: Discriminator
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    sched_G: torch.optim.lr_scheduler.StepLR
    sched_D: torch.optim.lr_scheduler.StepLR
    rng: torch.Generator  # clip order, crops, soft labels, flips
    epoch: int = 0  # completed epochs
    best: tuple[float, float, float] | None = None  # _score of the best epoch so far


def make_state(config: GANTrainConfig, *, device: str | torch.device = "cpu") -> GANState:
    """Fresh G, D, Adam optimisers and step schedulers, initialised from ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        G = Generator(**config.generator_shape())
        D = Discriminator(mfe_channels=config.d_mfe_channels, del_channels=config.d_del_channels)
    G.to(device)
    D.to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr)
    return GANState(
        config=config,
        G=G,
        D=D,
        opt_G=opt_G,
        opt_D=opt_D,
        sched_G=torch.optim.lr_scheduler.StepLR(opt_G, config.lr_halve_every, gamma=0.5),
        sched_D=torch.optim.lr_scheduler.StepLR(opt_D, config.lr_halve_every, gamma=0.5),
        rng=torch.Generator().manual_seed(config.seed + 1),
    )


@contextlib.contextmanager
def _no_param_grads(module: nn.Module) -> Iterator[None]:
    """Freeze ``module``'s weights (so a loss through it trains only the other network)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _autocast(x: Tensor, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)


def _uniform(n: int, lo: float, hi: float, rng: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=rng)


def d_step(
    state: GANState,
    x: Tensor,
    y: Tensor | None = None,
    victim: nn.Module | None = None,
    *,
    grad: Tensor | None = None,
) -> dict[str, float]:
    """One discriminator update on clean crops ``x (batch, time)``; G is not updated.

    A ``grad_input`` G needs the victim's input gradient at ``x``: pass it as ``grad`` (the
    training loop computes it once for both steps) or pass ``y`` and ``victim``.

    ``x_adv = x + G(x)`` is computed without gradient (the fake is detached). Labels are soft
    (real ~ U[0.9, 1], fake ~ U[0, 0.1] by default) and each example's pair is swapped with
    probability ``flip_prob`` (the paper's label flipping), all drawn from ``state.rng``.
    """
    cfg = state.config
    batch = x.shape[0]
    real = _uniform(batch, cfg.real_label_min, cfg.real_label_max, state.rng)
    fake = _uniform(batch, cfg.fake_label_min, cfg.fake_label_max, state.rng)
    flip = torch.rand(batch, generator=state.rng) < cfg.flip_prob
    real, fake = torch.where(flip, fake, real), torch.where(flip, real, fake)
    real, fake = real.to(x.device), fake.to(x.device)
    state.D.train()
    if grad is None:
        grad = _victim_gradient(state, x, y, victim)
    # D judges realism, whatever G aimed at: any class will do as the conditional G's target.
    target = _any_class(state, batch)
    with torch.no_grad(), _autocast(x, cfg.bf16):
        delta = _perturb(state.G, x, cfg.segment_samples, grad, target).float()
        x_adv = (x + delta).clamp(-1.0, 1.0)
    d_real = state.D(x)
    d_fake = state.D(x_adv)
    loss = discriminator_loss(d_real, d_fake, real, fake)
    state.opt_D.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_D.step()
    return {
        "d/loss": float(loss.detach()),
        "d/real": float(d_real.detach().mean()),
        "d/fake": float(d_fake.detach().mean()),
    }


def g_step(
    state: GANState, x: Tensor, y: Tensor, victim: nn.Module, *, grad: Tensor | None = None
) -> dict[str, float]:
    """One generator update: ``L_G = L_fool + alpha L_adv + beta L_pert`` on crops ``x``.

    ``grad``: the victim's input gradient at ``x`` for a ``grad_input`` G, if already computed.

    ``y`` are the true labels ``(batch,)`` (with ``config.target_class`` set, the target). D and
    the victim are frozen (``requires_grad`` off, restored afterwards) and the victim runs in
    eval mode (restored afterwards), so only G's weights receive gradients.
    """
    cfg = state.config
    labels = y.to(x.device, torch.long)
    targeted = cfg.target_class is not None or cfg.targeted
    g_target = None
    if cfg.targeted:
        g_target = choose_targets("random", labels, n_classes=state.G.num_classes,
                                  generator=state.rng)  # fmt: skip
        labels = g_target
    elif targeted:
        labels = torch.full_like(labels, int(cfg.target_class or 0))
    state.G.train()
    with victim_frozen(victim), _no_param_grads(state.D):
        if grad is None:
            grad = _victim_gradient(state, x, y, victim)
        with _autocast(x, cfg.bf16):
            delta = _perturb(state.G, x, cfg.segment_samples, grad, g_target).float()
        x_adv = x + delta
        if cfg.gamma > 0:
            d_fake = state.D(x_adv).float()
        else:
            d_fake = torch.ones(x.shape[0], device=x.device)  # L_fool = 0, D never runs
        # EOT: the victim hears x_adv through a random channel.
        heard = (
            eot_for(tuple(cfg.eot), cfg.eot_prob)(x_adv, generator=state.rng) if cfg.eot else x_adv
        )
        logits, scored = _score_victim(victim, heard, labels, cfg, state.rng)
        loss, parts = generator_loss(
            d_fake,
            logits,
            scored,
            delta,
            alpha=cfg.alpha,
            beta=cfg.beta,
            margin=cfg.margin,
            targeted=targeted,
            x=x,
            target_snr_db=cfg.pert_target_snr_db,
            gamma=cfg.gamma,
            unfooled_only=cfg.adv_unfooled_only,
        )
        if cfg.loudness_weight > 0:
            eps = torch.finfo(torch.float32).tiny
            snr = 20 * torch.log10(x.norm(dim=1).clamp_min(eps) / delta.norm(dim=1).clamp_min(eps))
            loud = (cfg.snr_db + cfg.loudness_range_db - snr).mean() / 10.0
            parts["loud"] = loud
            loss = loss + cfg.loudness_weight * loud
    state.opt_G.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_G.step()
    with torch.no_grad():
        fooled = (logits.argmax(1) == scored) if targeted else (logits.argmax(1) != scored)
    out = {"g/loss": float(loss.detach())}
    out.update({f"g/{k}": float(v.detach()) for k, v in parts.items()})
    out["g/fooled"] = float(fooled.float().mean())
    return out


def _any_class(state: GANState, batch: int) -> Tensor | None:
    """Uniform random classes for a class-conditional G (None for an unconditional one)."""
    if not state.G.num_classes:
        return None
    return torch.randint(0, state.G.num_classes, (batch,), generator=state.rng)


def _perturb(
    G: Generator,
    x: Tensor,
    segment: int,
    grad: Tensor | None = None,
    target: Tensor | None = None,
) -> Tensor:
    """``delta`` for training crops ``x``: G on the crop, or, for crops longer than one segment,
    on its t1 segments stitched back as ``SSGANAttack`` does at attack time. ``grad``: the
    victim's input gradient at ``x``, for a ``grad_input`` generator (cut the same way);
    ``target``: the class-conditional G's target per crop."""
    if x.shape[1] <= segment:
        return G(x, grad, target=target)
    segs = sip.split_segments(x, segment)
    batch, n, _ = segs.shape
    flat_grad = None
    if grad is not None:
        flat_grad = sip.split_segments(grad, segment).reshape(batch * n, segment)
    seg_target = None if target is None else target.repeat_interleave(n)
    deltas = G(segs.reshape(batch * n, segment), flat_grad, target=seg_target)
    deltas = deltas.reshape(batch, n, segment)
    return sip.stitch_segments(deltas, x.shape[1])


def _victim_gradient(
    state: GANState, x: Tensor, y: Tensor | None, victim: nn.Module | None
) -> Tensor | None:
    """The victim's input gradient at the clean crops, for a ``grad_input`` generator (else
    None): the clip-level victim with ``grad_crops`` crops, the weights frozen."""
    if not state.G.grad_input:
        return None
    if y is None or victim is None:
        raise ValueError("a grad_input generator needs the victim and the labels")
    view = _training_victim(victim, state.config.grad_crops)
    with victim_frozen(view):
        return input_gradient(view, x, y.to(x.device, torch.long))


def _score_victim(
    victim: nn.Module, x_adv: Tensor, labels: Tensor, cfg: GANTrainConfig, rng: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Logits the G step's adversarial term sees, and the labels they are scored against.

    ``victim_view="clip"``: the (clip-level) victim on the crop. ``"windows"``: the window
    network of a ``ClipClassifier`` on ``victim_crops`` windows per crop at random offsets
    (labels repeated); other victims fall back to ``"clip"``.
    """
    from ssgan.models.victim import ClipClassifier, pad_clip

    if cfg.victim_view == "clip" or not isinstance(victim, ClipClassifier):
        return victim(x_adv).float(), labels
    k = cfg.victim_crops or 1
    window = victim.window
    if x_adv.shape[1] < window:
        x_adv = pad_clip(x_adv, window)
    batch, time = x_adv.shape
    starts = torch.randint(0, time - window + 1, (batch, k), generator=rng).to(x_adv.device)
    idx = starts[..., None] + torch.arange(window, device=x_adv.device)
    windows = x_adv[torch.arange(batch, device=x_adv.device)[:, None, None], idx]
    logits = victim.net(windows.reshape(batch * k, window)).float()
    return logits, labels.repeat_interleave(k)


# ----------------------------------------------------------------------------- data


class _ClipSource(Protocol):
    def waveforms(self) -> list[Tensor]: ...

    def labels(self) -> list[int]: ...


ClipSource = _ClipSource | tuple[Sequence[Tensor], Sequence[int]]


def _clips_and_labels(source: ClipSource, what: str) -> tuple[list[Tensor], list[int]]:
    if isinstance(source, tuple):
        clips, labels = list(source[0]), [int(v) for v in source[1]]
    else:
        clips, labels = source.waveforms(), source.labels()
    if len(clips) != len(labels):
        raise ValueError(f"{what}: {len(clips)} clips but {len(labels)} labels")
    return [c.float() for c in clips], labels


def _epoch_batches(n: int, config: GANTrainConfig, rng: torch.Generator) -> list[Tensor]:
    """Clip indices of each batch of one epoch: shuffled passes, as many as the steps need."""
    steps = config.steps_per_epoch or math.ceil(n / config.batch_size)
    need = steps * config.batch_size
    order = torch.cat([torch.randperm(n, generator=rng) for _ in range(math.ceil(need / n))])
    return [order[i * config.batch_size : (i + 1) * config.batch_size] for i in range(steps)]


# ----------------------------------------------------------------------------- validation


def validate(
    state: GANState,
    victim: nn.Module,
    clips: list[Tensor],
    labels: list[int],
    *,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Attack whole held-out clips with the any-length SSGAN attack; ASR and MSNR.

    ``val/asr`` = ``N_success / N_right`` and ``val/msnr_db`` = mean SNR of the successful
    clips (``ssgan.metrics``, paper eqs. 9-11); ``val/acc`` the clean accuracy; ``val/snr_db``
    the mean SNR over all attacked clips. Clips of equal length are batched.
    """
    from ssgan.attacks.ssgan import SSGANAttack

    cfg = state.config
    attack = SSGANAttack.from_generator(
        state.G, segment_seconds=cfg.segment_seconds, chunk_segments=cfg.chunk_segments
    )
    order = sorted(range(len(clips)), key=lambda i: clips[i].shape[-1])
    ys, clean, adv, snrs, aims = [], [], [], [], []
    aim_rng = torch.Generator().manual_seed(0)  # the same targets at every validation
    state.G.eval()
    start = 0
    while start < len(order):
        length = clips[order[start]].shape[-1]
        stop = start
        while (
            stop < len(order)
            and stop - start < cfg.val_batch_size
            and clips[order[stop]].shape[-1] == length
        ):
            stop += 1
        idx = order[start:stop]
        x = torch.stack([clips[i] for i in idx]).to(device)
        y = torch.tensor([labels[i] for i in idx], device=device)
        aim = None
        if cfg.targeted:
            aim = choose_targets("random", y, n_classes=state.G.num_classes, generator=aim_rng)
            aims.append(aim.cpu())
        x_adv = attack(victim, x, y, target=aim)
        with victim_frozen(victim), torch.no_grad():
            clean.append(victim(x).argmax(1).cpu())
            adv.append(victim(x_adv).argmax(1).cpu())
        ys.append(y.cpu())
        snrs.append(snr_db(x.cpu(), x_adv.cpu()))
        start = stop
    if not ys:
        return {}
    y_all, c_all, a_all, s_all = (torch.cat(v) for v in (ys, clean, adv, snrs))
    target = None
    if cfg.target_class is not None:
        target = torch.full_like(y_all, cfg.target_class)
    elif cfg.targeted:
        target = torch.cat(aims)
    success = success_mask(y_all, c_all, a_all, target=target)
    return {
        "val/acc": float((c_all == y_all).double().mean()),
        "val/asr": attack_success_rate(y_all, c_all, a_all, target=target),
        "val/msnr_db": msnr_db(s_all, success),
        "val/snr_db": float(s_all[torch.isfinite(s_all)].mean()),
        "val/clips": float(len(y_all)),
    }


def _score(
    metrics: dict[str, float], min_snr_db: float | None = None
) -> tuple[float, float, float]:
    """Ordering of epochs for ``best``: first whether the validation MSNR reaches
    ``min_snr_db`` (an epoch that fools loudly never beats one that fools at the target
    loudness), then ASR, then MSNR (nan counts as lowest)."""
    asr = metrics.get("val/asr", math.nan)
    msnr = metrics.get("val/msnr_db", math.nan)
    # 1.5 dB of slack: an exact-SNR clip can be louder than its segments (the last segment is
    # filled with the clip's start, then trimmed; clipping to [-1, 1]), by ~1 dB on ESC-10.
    quiet = min_snr_db is None or (not math.isnan(msnr) and msnr >= min_snr_db - 1.5)
    return (
        float(quiet),
        -1.0 if math.isnan(asr) else asr,
        -math.inf if math.isnan(msnr) else msnr,
    )


# ----------------------------------------------------------------------------- checkpoints


def _meta(state: GANState, metrics: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
    from ssgan.attacks.ssgan import GAN_KIND

    return {
        "kind": GAN_KIND,
        "format": FORMAT,
        "epoch": state.epoch,
        "config": to_dict(state.config),
        "generator": state.config.generator_shape(),
        "segment_seconds": state.config.segment_seconds,
        "sample_rate": SAMPLE_RATE,
        "metrics": json_safe(metrics),
        **extra,
    }


def _save(
    out_dir: Path, state: GANState, metrics: dict[str, float], extra: dict[str, Any], best: bool
) -> None:
    meta = _meta(state, metrics, extra)
    if best:
        save_checkpoint(out_dir, "best", flatten_state_dicts(G=state.G.state_dict()), meta)
    training_state = {
        "opt_G": state.opt_G.state_dict(),
        "opt_D": state.opt_D.state_dict(),
        "sched_G": state.sched_G.state_dict(),
        "sched_D": state.sched_D.state_dict(),
        "rng": state.rng.get_state(),
        "epoch": state.epoch,
        "best": list(state.best) if state.best is not None else None,
    }
    tensors = flatten_state_dicts(G=state.G.state_dict(), D=state.D.state_dict())
    save_checkpoint(out_dir, "last", tensors, meta, training_state)


def _resume(out_dir: Path, config: GANTrainConfig, device: str | torch.device) -> GANState:
    tensors, meta, saved = load_checkpoint(out_dir, "last", with_state=True)
    where = out_dir / "last.json"
    from ssgan.attacks.ssgan import GAN_KIND

    if meta.get("kind") != GAN_KIND or saved is None:
        raise CheckpointError(f"{where}: not an SSGAN training checkpoint")
    old = from_dict(GANTrainConfig, meta.get("config", {}))
    if dataclasses.replace(old, epochs=config.epochs) != config:
        changed = [
            f.name
            for f in dataclasses.fields(config)
            if f.name != "epochs" and getattr(old, f.name) != getattr(config, f.name)
        ]
        raise CheckpointError(
            f"{where}: cannot resume with a different config (changed: {', '.join(changed)}); "
            "only epochs may change"
        )
    state = make_state(config, device=device)
    try:
        state.G.load_state_dict(unflatten_state_dict(tensors, "G"))
        state.D.load_state_dict(unflatten_state_dict(tensors, "D"))
        state.opt_G.load_state_dict(saved["opt_G"])
        state.opt_D.load_state_dict(saved["opt_D"])
        state.sched_G.load_state_dict(saved["sched_G"])
        state.sched_D.load_state_dict(saved["sched_D"])
        state.rng.set_state(saved["rng"])
    except (KeyError, RuntimeError, ValueError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{where}: training state does not fit ({first})") from None
    state.epoch = int(saved["epoch"])
    best = saved.get("best")
    if best is not None and len(best) == 2:  # written before the SNR rank existed
        best = [1.0, *best]
    state.best = (float(best[0]), float(best[1]), float(best[2])) if best is not None else None
    return state


def _keep_metrics_until(path: Path, epoch: int) -> None:
    """Drop metrics lines of epochs after the checkpoint we resume from (a crash between the
    metrics line and the checkpoint leaves one)."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("epoch", 0) <= epoch
    ]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


# ----------------------------------------------------------------------------- the loop


def _training_victim(victim: nn.Module, n_crops: int | None) -> nn.Module:
    """The victim the G step scores: the same network with ``n_crops`` crops, if it is a
    ``ClipClassifier`` and ``n_crops`` is set (shares its weights; validation uses ``victim``)."""
    from ssgan.models.victim import ClipClassifier

    if n_crops is None or not isinstance(victim, ClipClassifier):
        return victim
    return ClipClassifier(victim.net, window=victim.window, n_crops=n_crops,
                          crop_batch=victim.crop_batch)  # fmt: skip


def _victim_classes(victim: nn.Module, clip: Tensor) -> int:
    """The victim's class count: its ``n_classes`` attribute, else one forward pass."""
    n = getattr(victim, "n_classes", None)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    with victim_frozen(victim), torch.no_grad():
        return int(victim(clip[None].to(next(victim.parameters()).device)).shape[-1])


def _run(
    config: GANTrainConfig,
    victim: nn.Module,
    train: ClipSource,
    val: ClipSource | None,
    out_dir: Path | None,
    *,
    resume: bool,
    device: str | torch.device,
    progress: bool,
    extra_meta: dict[str, Any],
) -> tuple[GANState, dict[str, Any]]:
    clips, labels = _clips_and_labels(train, "train")
    if not clips:
        raise ValueError("train: no clips to train on")
    if config.targeted and not config.n_classes:
        config = dataclasses.replace(config, n_classes=_victim_classes(victim, clips[0]))
    val_clips, val_labels = _clips_and_labels(val, "val") if val is not None else ([], [])
    if config.val_clips is not None:
        val_clips, val_labels = val_clips[: config.val_clips], val_labels[: config.val_clips]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if resume and out_dir is not None and not (out_dir / "last.json").exists():
        # Killed before the first checkpoint (or a new directory): nothing to resume, start
        # fresh, as the victim trainer does. Tensor files without last.json come from a first
        # checkpoint killed mid-write (the JSON is written last, as the commit): uncommitted,
        # so the first new checkpoint replaces them. A *damaged* committed checkpoint still
        # fails loudly below.
        if (out_dir / "last.safetensors").exists() or (out_dir / "last.state.pt").exists():
            logger.warning("%s: an unfinished first checkpoint; starting afresh", out_dir)
        resume = False
        if (out_dir / "metrics.jsonl").exists():
            (out_dir / "metrics.jsonl").unlink()
    if resume:
        if out_dir is None:
            raise ValueError("resume=True needs an out_dir")
        state = _resume(out_dir, config, device)
        _keep_metrics_until(out_dir / "metrics.jsonl", state.epoch)
        logger.info("resuming %s after epoch %d", out_dir, state.epoch)
    else:
        if out_dir is not None and (out_dir / "last.json").exists():
            raise OutputError(f"{out_dir}: already holds a GAN run; resume it or pick a new --out")
        state = make_state(config, device=device)
    if out_dir is not None:
        atomic_write_json(out_dir / "config.json", to_dict(config))
        if not resume and (out_dir / "metrics.jsonl").exists():
            (out_dir / "metrics.jsonl").unlink()

    started = time.perf_counter()
    last: dict[str, float] = {}
    length = config.crop_samples
    train_victim = _training_victim(victim, config.victim_crops)
    epochs = tqdm(
        range(state.epoch, config.epochs),
        desc="epochs",
        disable=not progress,
        initial=state.epoch,
        total=config.epochs,
    )
    with victim_frozen(victim):
        for epoch in epochs:
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            batches = _epoch_batches(len(clips), config, state.rng)
            for idx in tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not progress):
                x = random_crops([clips[i] for i in idx.tolist()], length, generator=state.rng)
                x = x.to(device)
                y = torch.tensor([labels[i] for i in idx.tolist()], device=device)
                # One victim backward per step for a grad_input G, shared by D and G.
                grad = _victim_gradient(state, x, y, train_victim)
                losses = d_step(state, x, grad=grad) if config.gamma > 0 else {}
                losses.update(g_step(state, x, y, train_victim, grad=grad))
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
            state.sched_G.step()
            if config.gamma > 0:  # without D its optimiser never steps
                state.sched_D.step()
            state.epoch = epoch + 1
            metrics: dict[str, float] = {k: v / len(batches) for k, v in sums.items()}
            if val_clips:
                metrics.update(validate(state, victim, val_clips, val_labels, device=device))
            metrics["lr"] = state.opt_G.param_groups[0]["lr"]
            metrics["epoch_s"] = time.perf_counter() - t0
            score = _score(metrics, config.selection_snr_db)
            is_best = state.best is None or score > state.best
            if is_best:
                state.best = score
            last = metrics
            epochs.set_postfix(
                {k.split("/")[-1]: f"{v:.3g}" for k, v in metrics.items() if k.startswith("val/")}
            )
            logger.info("epoch %d: %s", state.epoch, metrics)
            if out_dir is not None:
                with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(json_safe({"epoch": state.epoch, **metrics})) + "\n")
                _save(out_dir, state, metrics, extra_meta, best=is_best)
    summary: dict[str, Any] = {
        "epochs": state.epoch,
        "last": last,
        "best": {"val/asr": state.best[1], "val/msnr_db": state.best[2]} if state.best else None,
        "wall_s": time.perf_counter() - started,
        "out_dir": str(out_dir) if out_dir is not None else None,
    }
    return state, json_safe(summary)


def fit_gan(
    config: GANTrainConfig,
    victim: nn.Module,
    train: ClipSource,
    val: ClipSource | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> GANState:
    """Train in memory (no files) and return the final state; used by ``SSGANAttack.fit``."""
    state, _ = _run(
        config,
        victim,
        train,
        val,
        None,
        resume=False,
        device=device,
        progress=progress,
        extra_meta={},
    )
    return state


def train_gan(
    config: GANTrainConfig,
    victim: nn.Module,
    train_ds: ClipSource,
    val_ds: ClipSource | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train SSGAN's G and D against ``victim`` and write a run directory (see module doc).

    Args:
        config: hyperparameters (``PROFILES[...]`` with overrides).
        victim: the clip-level classifier ``(batch, time) -> logits``; frozen and in eval mode
            throughout (its modes and flags are restored afterwards).
        train_ds, val_ds: datasets with ``waveforms()`` and ``labels()`` (e.g. ``ClipDataset``)
            or ``(clips, labels)`` tuples; ``val_ds`` may be ``None`` (no validation).
        out_dir: the run directory.
        resume: continue from ``out_dir/last`` (same config; ``epochs`` may grow).
        extra_meta: JSON-ready fields added to every checkpoint's metadata (victim run, class
            names, dataset...).

    Returns:
        ``{"epochs", "last": metrics of the last epoch, "best": {"val/asr", "val/msnr_db"},
        "wall_s", "out_dir"}``.
    """
    _, summary = _run(
        config,
        victim,
        train_ds,
        val_ds,
        Path(out_dir),
        resume=resume,
        device=device,
        progress=progress,
        extra_meta=extra_meta or {},
    )
    return summary
