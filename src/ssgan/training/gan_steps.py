"""One SSGAN training step: the training state, the D and G steps, and the epoch's batches.

A ``GANState`` dataclass holds G, D, their optimisers, schedulers, the epoch and the generator
RNG (after descript-audio-codec); ``d_step`` and ``g_step`` each return a dict of namespaced
scalar losses. D learns from soft labels, flipped with probability ``flip_prob``; G learns
against the victim (frozen, never updated) on the crop and, if ``gamma > 0``, against D. Reading a
dataset's clips and labels, and drawing each epoch's batches of clip indices, are here too.

Randomness: weights are initialised under ``torch.random.fork_rng`` seeded from ``config.seed``
and every random draw of training (clip order, crops, soft labels, flips) comes from one
``torch.Generator`` kept in the state, so nothing global is touched. The epoch loop that drives
these steps is ``ssgan.training.gan``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ssgan.data import segments as sip
from ssgan.losses import discriminator_loss, generator_loss, input_gradient
from ssgan.models.discriminator import Discriminator
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import Generator
from ssgan.models.victim import ClipClassifier, pad_clip, victim_frozen
from ssgan.targets import choose_targets
from ssgan.training.gan_config import GANTrainConfig
from ssgan.transforms import eot_for

__all__ = ["ClipSource", "GANState", "d_step", "g_step", "make_state"]


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
    best: tuple[float, float, float] | None = None  # selection_score of the best epoch so far
    # Data parallel (torchrun, ssgan.training.parallel): the clip order comes from a generator
    # every rank shares, while ``rng`` is this rank's own (crops, labels, offsets); G and D
    # train through their DistributedDataParallel wrappers. None in a single process: ``rng``
    # draws everything and G and D train as they are.
    order_rng: torch.Generator | None = None
    G_train: nn.Module | None = dataclasses.field(default=None, repr=False)
    D_train: nn.Module | None = dataclasses.field(default=None, repr=False)

    @property
    def batch_rng(self) -> torch.Generator:
        """The generator of each epoch's clip order (the same on every rank)."""
        return self.rng if self.order_rng is None else self.order_rng


def make_state(config: GANTrainConfig, *, device: str | torch.device = "cpu") -> GANState:
    """Fresh G, D, Adam optimisers and step schedulers, initialised from ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        G = build_generator(config.generator_spec())
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
        grad = victim_gradient(state, x, y, victim)
    # D judges realism, whatever G aimed at: any class will do as the conditional G's target.
    target = _any_class(state, batch)
    with torch.no_grad(), _autocast(x, cfg.bf16):
        delta = _perturb(state.G, x, cfg.segment_samples, grad, target).float()
        x_adv = (x + delta).clamp(-1.0, 1.0)
    D = state.D if state.D_train is None else state.D_train
    d_real = D(x)
    d_fake = D(x_adv)
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
            grad = victim_gradient(state, x, y, victim)
        with _autocast(x, cfg.bf16):
            G = state.G if state.G_train is None else state.G_train
            delta = _perturb(G, x, cfg.segment_samples, grad, g_target).float()
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
    G: nn.Module,
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


def victim_gradient(
    state: GANState, x: Tensor, y: Tensor | None, victim: nn.Module | None
) -> Tensor | None:
    """The victim's input gradient at the clean crops, for a ``grad_input`` generator (else
    None): the clip-level victim with ``grad_crops`` crops, the weights frozen."""
    if not state.G.grad_input:
        return None
    if y is None or victim is None:
        raise ValueError("a grad_input generator needs the victim and the labels")
    view = training_victim(victim, state.config.grad_crops)
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


def training_victim(victim: nn.Module, n_crops: int | None) -> nn.Module:
    """The victim the G step scores: the same network with ``n_crops`` crops, if it is a
    ``ClipClassifier`` and ``n_crops`` is set (shares its weights; validation uses ``victim``)."""

    if n_crops is None or not isinstance(victim, ClipClassifier):
        return victim
    return ClipClassifier(victim.net, window=victim.window, n_crops=n_crops,
                          crop_batch=victim.crop_batch)  # fmt: skip


# ----------------------------------------------------------------------------- data


class _ClipSource(Protocol):
    def waveforms(self) -> list[Tensor]: ...

    def labels(self) -> list[int]: ...


ClipSource = _ClipSource | tuple[Sequence[Tensor], Sequence[int]]


def clips_and_labels(source: ClipSource, what: str) -> tuple[list[Tensor], list[int]]:
    if isinstance(source, tuple):
        clips, labels = list(source[0]), [int(v) for v in source[1]]
    else:
        clips, labels = source.waveforms(), source.labels()
    if len(clips) != len(labels):
        raise ValueError(f"{what}: {len(clips)} clips but {len(labels)} labels")
    return [c.float() for c in clips], labels


def crop_batches(n: int, config: GANTrainConfig, rng: torch.Generator) -> list[Tensor]:
    """Clip indices of each batch of one epoch: shuffled passes, as many as the steps need."""
    steps = config.steps_per_epoch or math.ceil(n / config.batch_size)
    need = steps * config.batch_size
    order = torch.cat([torch.randperm(n, generator=rng) for _ in range(math.ceil(need / n))])
    return [order[i * config.batch_size : (i + 1) * config.batch_size] for i in range(steps)]
