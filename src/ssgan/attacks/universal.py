"""Universal adversarial audio perturbations of Abdoli et al. (2019), in PyTorch.

S. Abdoli, L. G. Hafemann, J. Rony, I. Ben Ayed, P. Cardinal, A. L. Koerich, "Universal
adversarial audio perturbations", arXiv:1908.03173 (public Keras code: sajabdoli/UAP).

One perturbation ``v`` of fixed length (``length`` samples) is learned for all clips:

- ``UAPIterative``: the universal-perturbation loop of Moosavi-Dezfooli et al. (CVPR 2017) with
  DDN (Rony et al., CVPR 2019) as the per-sample minimal attack, as in their code.
- ``UAPPenalty``: Adam on a hinge loss on the logits plus the perturbation's level in dB, with the
  box handled by tanh.

Clips of any length: ``v`` is tiled (repeated) and cropped to the clip's length, so a clip
shorter than ``v`` sees its first samples and a longer clip sees ``v`` repeated. During fitting
the per-clip update (length ``time``) is folded back onto ``v`` by averaging the positions that
share a sample of ``v`` (the adjoint of tiling, normalised).

Both re-run the method with our conventions: waveforms in [-1, 1] (their code uses [0, 1], so
their ``xi`` = 0.2 is 0.4 here) and the fooling rate counts clips whose prediction changes.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ssgan.attacks.base import LearnedAttack
from ssgan.attacks.budget import Budget
from ssgan.attacks.checks import check_int, check_positive
from ssgan.attacks.ddn import ddn
from ssgan.losses import logit_margin

logger = logging.getLogger(__name__)

_TANH_SHRINK = 1.0 - 1e-6


def tile_to(v: Tensor, time: int) -> Tensor:
    """Repeat ``v`` ``(length,)`` and crop it to ``(time,)``."""
    repeats = math.ceil(time / v.shape[-1])
    return v.repeat(repeats)[:time]


def fold_to(delta: Tensor, length: int) -> Tensor:
    """Adjoint of ``tile_to``, averaged: ``(time,) -> (length,)``.

    Sample ``i`` of the result is the mean of ``delta[i], delta[i + length], ...``; positions the
    clip does not reach (``time < length``) are 0.
    """
    time = delta.shape[-1]
    repeats = math.ceil(time / length)
    padded = F.pad(delta, (0, repeats * length - time))
    counts = F.pad(torch.ones_like(delta), (0, repeats * length - time))
    total = padded.view(repeats, length).sum(0)
    n = counts.view(repeats, length).sum(0)
    return total / n.clamp_min(1)


def _length_batches(
    clips: list[Tensor], batch_size: int, generator: torch.Generator | None
) -> list[list[int]]:
    """Index batches of clips sharing a length (so they stack); shuffled given a generator."""
    by_length: dict[int, list[int]] = {}
    for i, clip in enumerate(clips):
        by_length.setdefault(clip.shape[0], []).append(i)
    batches: list[list[int]] = []
    for idx in by_length.values():
        if generator is not None:
            order = torch.randperm(len(idx), generator=generator).tolist()
            idx = [idx[j] for j in order]
        batches += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
    if generator is not None:
        order = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[j] for j in order]
    return batches


class _UAP(LearnedAttack):
    """Shared state and helpers: ``v`` ``(length,)``, tiled and cropped to each clip.

    ``target_class``: fit a *targeted* universal perturbation (Abdoli et al.'s targeted variant):
    one ``v`` that sends clips of the other classes to that class; it is then called with
    ``target=`` equal to that class (one fitted perturbation per target class).
    """

    targeted_supported: ClassVar[bool] = False
    queries_victim: ClassVar[bool] = False  # applying v is an addition; only fit queries

    def __init__(
        self, *, length: int | None, delta: float, batch_size: int, target_class: int | None
    ) -> None:
        self.target_class = (
            None if target_class is None else check_int("target_class", target_class, minimum=0)
        )
        self.targeted_supported = self.target_class is not None  # type: ignore[misc]
        self.length = None if length is None else check_int("length", length, minimum=1)
        if not 0 <= delta < 1 or isinstance(delta, bool):
            raise ValueError(f"delta={delta!r}: must be in [0, 1) (target fooling rate 1 - delta)")
        self.delta = float(delta)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.v: Tensor | None = None
        self.fooling_rate: float | None = None

    @property
    def is_fitted(self) -> bool:
        return self.v is not None

    def state_tensors(self) -> dict[str, Tensor]:
        assert self.v is not None
        return {"v": self.v}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        v = tensors["v"]
        if v.dim() != 1 or (self.length is not None and v.shape[0] != self.length):
            raise ValueError(f"v has shape {tuple(v.shape)}, expected ({self.length},)")
        self.v = v.float().clone()
        self.length = v.shape[0]

    def meta(self) -> dict[str, object]:
        return {"fooling_rate": self.fooling_rate, "target_class": self.target_class}

    def _training_set(self, clips: list[Tensor], labels: Tensor) -> list[Tensor]:
        """The clips a fit learns from: all of them, or (targeted) those not of the target."""
        if self.target_class is None:
            return clips
        kept = [c for c, y in zip(clips, labels.tolist(), strict=True) if y != self.target_class]
        if not kept:
            raise ValueError(f"no training clip outside the target class {self.target_class}")
        return kept

    def _reached(self, logits: Tensor, clean: Tensor) -> Tensor:
        """Per clip: sent to the target class (targeted), or off its clean prediction."""
        pred = logits.argmax(1)
        return pred == self.target_class if self.target_class is not None else pred != clean

    def _resolve_length(self, clips: list[Tensor]) -> int:
        if self.length is None:
            self.length = max(c.shape[0] for c in clips)
        return self.length

    def _apply(self, x: Tensor, v: Tensor) -> Tensor:
        """``x`` ``(batch, time)`` with ``v`` applied (differentiable in ``v``)."""
        raise NotImplementedError

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        assert self.v is not None
        want = -1 if self.target_class is None else self.target_class
        if target is not None and bool(target.ne(want).any()):
            raise ValueError(
                f"this universal perturbation was fitted for target class {self.target_class}; "
                f"got targets {sorted(set(target.tolist()))} (fit one per target class)"
            )
        return self._apply(x, self.v.to(device=x.device, dtype=x.dtype))

    @torch.no_grad()
    def _fooling_rate(self, model: nn.Module, clips: list[Tensor], v: Tensor) -> float:
        """Fraction of clips whose prediction changes (targeted: becomes the target class) when
        ``v`` is applied."""
        fooled = 0
        for idx in _length_batches(clips, self.batch_size, None):
            x = torch.stack([clips[i] for i in idx]).to(v.device)
            clean = model(x).argmax(1)
            fooled += int(self._reached(model(self._apply(x, v).clamp(-1, 1)), clean).sum())
        return fooled / len(clips)


class UAPIterative(_UAP):
    """Universal perturbation by the iterative (Moosavi-Dezfooli) loop with DDN, as in Abdoli et
    al. 2019 (their "iterative" method).

    Each pass visits the clips in order; for each clip the current ``v`` does not fool (its
    prediction is unchanged), DDN finds a minimal L2 perturbation of ``x + v`` that fools it,
    which is added to ``v`` (folded to ``length``), and ``v`` is projected onto the Linf ball of
    radius ``xi``. Stops at a fooling rate ``>= 1 - delta`` or after ``max_passes``.

    Distance: Linf, ``||v||_inf <= xi`` (so ``x_adv = clip(x + v)`` is within ``xi`` of ``x``).

    Args:
        xi: Linf radius in waveform units (default 0.4 = their 0.2 on [0, 1] audio).
        delta: target fooling rate is ``1 - delta`` (default 0.1).
        max_passes: passes over the clips (default 10; their code: 100).
        ddn_steps: DDN steps per clip (default 50, as theirs).
        ddn_gamma: DDN norm update factor (default 0.05).
        ddn_init_norm: DDN initial L2 norm (default 1.0).
        length: length of ``v`` in samples; ``None`` = the longest training clip.
        batch_size: clips per forward pass when measuring the fooling rate.
        target_class: fit a targeted perturbation towards this class (see ``_UAP``); ``None``
            (default): untargeted.

    Example::

        uap = UAPIterative(xi=0.05, length=25600).fit(model, clips, labels)
        x_adv = uap(model, x, y)
        uap.save("runs/uap")
    """

    name: ClassVar[str] = "uap-iterative"

    def __init__(
        self,
        *,
        xi: float = 0.4,
        delta: float = 0.1,
        max_passes: int = 10,
        ddn_steps: int = 50,
        ddn_gamma: float = 0.05,
        ddn_init_norm: float = 1.0,
        length: int | None = None,
        batch_size: int = 32,
        target_class: int | None = None,
    ) -> None:
        super().__init__(
            length=length, delta=delta, batch_size=batch_size, target_class=target_class
        )
        self.xi = check_positive("xi", xi)
        self.max_passes = check_int("max_passes", max_passes, minimum=1)
        self.ddn_steps = check_int("ddn_steps", ddn_steps, minimum=1)
        self.ddn_gamma = check_positive("ddn_gamma", ddn_gamma)
        if self.ddn_gamma >= 1:
            raise ValueError(f"ddn_gamma={ddn_gamma!r}: must be < 1")
        self.ddn_init_norm = check_positive("ddn_init_norm", ddn_init_norm)

    def budget(self) -> Budget:
        return Budget("linf", self.xi)

    def _apply(self, x: Tensor, v: Tensor) -> Tensor:
        return x + tile_to(v, x.shape[1])

    def _fit(
        self,
        model: nn.Module,
        clips: list[Tensor],
        labels: Tensor,
        generator: torch.Generator,
        progress: bool,
    ) -> None:
        clips = self._training_set(clips, labels)
        length = self._resolve_length(clips)
        device = next((p.device for p in model.parameters()), clips[0].device)
        clips = [c.to(device) for c in clips]
        v = torch.zeros(length, device=device)
        aim = None
        if self.target_class is not None:
            aim = torch.tensor([self.target_class], device=device)
        rate = 0.0
        bar = tqdm(total=self.max_passes, desc="uap-iterative", disable=not progress)
        for pass_ in range(self.max_passes):
            for clip in clips:
                x = clip[None]
                with torch.no_grad():
                    clean = model(x).argmax(1)
                    x_pert = self._apply(x, v).clamp(-1, 1)
                    fooled = bool(self._reached(model(x_pert), clean).item())
                if fooled:
                    continue
                dr = ddn(
                    model,
                    x_pert,
                    clean if aim is None else aim,
                    targeted=aim is not None,
                    steps=self.ddn_steps,
                    gamma=self.ddn_gamma,
                    init_norm=self.ddn_init_norm,
                    generator=generator,
                )
                v = (v + fold_to(dr[0], length)).clamp(-self.xi, self.xi)
            rate = self._fooling_rate(model, clips, v)
            bar.update(1)
            bar.set_postfix(fooling_rate=f"{rate:.3f}")
            logger.info("uap-iterative pass %d: fooling rate %.3f", pass_ + 1, rate)
            if rate >= 1 - self.delta:
                break
        bar.close()
        self.v = v.detach().cpu()
        self.fooling_rate = rate


def perturbation_db(v: Tensor) -> Tensor:
    """The penalty method's loudness term ``20 log10(rms(v))``, with its gradient (the released
    code computes it without one); ``1e-12`` under the root keeps ``v = 0`` finite."""
    return 20 * torch.log10(v.pow(2).mean().add(1e-12).sqrt())


class UAPPenalty(_UAP):
    """Universal perturbation by the penalty method of Abdoli et al. 2019.

    Minimises, with Adam (lr 0.006), over mini-batches of clips
    ``sum_i c * max(z_y - max_{j != y} z_j + kappa, 0) + 20 * log10(rms(v))``, where ``z`` are
    the victim's logits on ``x_adv = tanh(atanh(x) + v)`` (the box handled by tanh; ``v`` lives
    in tanh space, and ``x_adv - x ~= v`` for small signals). Stops at a fooling rate
    ``>= 1 - delta`` on the training clips or after ``max_epochs``.

    Note: their released code computes the dB term outside the graph, so it contributes no
    gradient; here it is differentiated with the rest (``rms`` is floored at 1e-6 so that
    ``v = 0`` has a finite gradient).

    Distance: none fixed (only the [-1, 1] box); the dB term keeps ``v`` quiet.

    Args:
        c: weight of the hinge term (default 0.2).
        kappa: logit margin of the hinge (default 40).
        lr: Adam learning rate (default 0.006).
        max_epochs: passes over the clips (default 100, as theirs).
        delta: target fooling rate is ``1 - delta`` (default 0.1).
        length: length of ``v`` in samples; ``None`` = the longest training clip.
        batch_size: clips per Adam step (default 32).
        target_class: fit a targeted perturbation towards this class (the hinge becomes
            ``max(max_{j != t} z_j - z_t + kappa, 0)``); ``None`` (default): untargeted.

    Example::

        uap = UAPPenalty(length=25600).fit(model, clips, labels)
        x_adv = uap(model, x, y)
    """

    name: ClassVar[str] = "uap-penalty"

    def __init__(
        self,
        *,
        c: float = 0.2,
        kappa: float = 40.0,
        lr: float = 0.006,
        max_epochs: int = 100,
        delta: float = 0.1,
        length: int | None = None,
        batch_size: int = 32,
        target_class: int | None = None,
    ) -> None:
        super().__init__(
            length=length, delta=delta, batch_size=batch_size, target_class=target_class
        )
        self.c = check_positive("c", c)
        self.kappa = check_positive("kappa", kappa, allow_zero=True)
        self.lr = check_positive("lr", lr)
        self.max_epochs = check_int("max_epochs", max_epochs, minimum=1)

    def _apply(self, x: Tensor, v: Tensor) -> Tensor:
        return torch.tanh(torch.atanh(x.clamp(-1, 1) * _TANH_SHRINK) + tile_to(v, x.shape[1]))

    def _fit(
        self,
        model: nn.Module,
        clips: list[Tensor],
        labels: Tensor,
        generator: torch.Generator,
        progress: bool,
    ) -> None:
        if self.target_class is not None:
            keep = labels != self.target_class
            clips = self._training_set(clips, labels)
            labels = labels[keep]
        length = self._resolve_length(clips)
        device = next((p.device for p in model.parameters()), clips[0].device)
        clips = [c.to(device) for c in clips]
        labels = labels.to(device)
        v = torch.zeros(length, device=device, requires_grad=True)
        opt = torch.optim.Adam([v], lr=self.lr, betas=(0.9, 0.999), eps=1e-8)
        rate = 0.0
        bar = tqdm(total=self.max_epochs, desc="uap-penalty", disable=not progress)
        for epoch in range(self.max_epochs):
            for idx in _length_batches(clips, self.batch_size, generator):
                x = torch.stack([clips[i] for i in idx])
                logits = model(self._apply(x, v))
                if self.target_class is None:
                    hinge = (logit_margin(logits, labels[idx]) + self.kappa).clamp_min(0)
                else:
                    aim = torch.full_like(labels[idx], self.target_class)
                    hinge = (self.kappa - logit_margin(logits, aim)).clamp_min(0)
                loss = self.c * hinge.sum() + perturbation_db(v)
                opt.zero_grad()
                loss.backward()
                opt.step()
            rate = self._fooling_rate(model, clips, v.detach())
            bar.update(1)
            bar.set_postfix(fooling_rate=f"{rate:.3f}")
            logger.info("uap-penalty epoch %d: fooling rate %.3f", epoch + 1, rate)
            if rate >= 1 - self.delta:
                break
        bar.close()
        self.v = v.detach().cpu()
        self.fooling_rate = rate
