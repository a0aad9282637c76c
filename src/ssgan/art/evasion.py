"""ssgan's attacks as ART evasion attacks (``ssgan.art``): SSGAN, universal perturbations, DDN."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ssgan.art.toolkit import (
    BaseEstimator,
    ClassifierMixin,
    EvasionAttack,
    PyTorchClassifier,
    label_indices,
)
from ssgan.art.victim import victim_from_art
from ssgan.attacks.base import Attack
from ssgan.attacks.checks import check_int
from ssgan.attacks.ddn import DDN
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.attacks.universal import UAPIterative, UAPPenalty

__all__ = ["DDNEvasion", "SSGANEvasion", "UniversalEvasion"]


class _Unqueried(nn.Module):
    """The victim handed to an attack that never queries it (a fitted generator on an estimator
    that is not a ``PyTorchClassifier``): it knows the class count and refuses a forward."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("this attack needs the victim: use an art PyTorchClassifier")


class _Evasion(EvasionAttack):
    """Runs an ssgan ``Attack`` as an ART evasion attack; subclasses say which (``_attack``)."""

    attack_params: ClassVar[list[str]] = [
        *EvasionAttack.attack_params,
        "targeted",
        "batch_size",
        "seed",
    ]
    _estimator_requirements: tuple[Any, ...] = (PyTorchClassifier,)

    def __init__(
        self, estimator: Any, *, targeted: bool = False, batch_size: int = 32, seed: int = 0
    ) -> None:
        super().__init__(estimator=estimator)
        self.targeted = targeted
        self.batch_size = batch_size
        self.seed = seed
        self._victim: nn.Module | None = None
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.targeted, bool):
            raise ValueError(f"targeted={self.targeted!r}: expected a bool")
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("seed", self.seed, minimum=0)

    # ------------------------------------------------------------------ for subclasses

    def _attack(self) -> Attack:
        raise NotImplementedError

    def _device(self) -> torch.device:
        return torch.device(getattr(self.estimator, "device", "cpu"))

    def victim(self) -> nn.Module:
        """The estimator as an ssgan victim (built once): ``victim_from_art``, or for another
        estimator, a stand-in that attacks without victim queries accept."""
        if self._victim is None:
            if isinstance(self.estimator, PyTorchClassifier):
                self._victim = victim_from_art(self.estimator)
            else:
                self._victim = _Unqueried(int(self.estimator.nb_classes))
        return self._victim

    # ------------------------------------------------------------------ ART's interface

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples for ``x`` ``(n, *input_shape)`` (or ``(n, time)``).

        Args:
            x: clean waveforms in ``[-1, 1]``, float.
            y: untargeted: the true labels (default: the estimator's predictions); targeted:
                the target labels (required). One-hot ``(n, n_classes)`` or indices ``(n,)``.

        Returns:
            ``x_adv``, float32, shaped like ``x``, clipped to the estimator's ``clip_values``.
            Targeted: a clip the estimator already gives its target is returned unchanged.
        """
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, *input_shape), got {x.shape}")
        n_classes = int(self.estimator.nb_classes)
        if self.targeted and y is None:
            raise ValueError("targeted=True: pass the target labels as y")
        target = label_indices(y, n_classes, len(x)) if self.targeted and y is not None else None
        if y is None or self.targeted:  # ART's convention: the true labels are the predictions
            labels = np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1)
        else:
            labels = label_indices(y, n_classes, len(x))
        attack = self._attack()
        model = self.victim()
        device = self._device()
        flat = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1))
        y_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        t_t = None if target is None else torch.as_tensor(np.asarray(target), dtype=torch.long)
        self._before(attack, model, flat.to(device), y_t.to(device))
        generator = torch.Generator().manual_seed(self.seed)
        out = flat.clone()
        todo = torch.arange(len(flat)) if t_t is None else torch.nonzero(t_t != y_t).flatten()
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            t_b = None if t_t is None else t_t[idx].to(device)
            x_adv = attack(
                model, flat[idx].to(device), y_t[idx].to(device), target=t_b, generator=generator
            )
            out[idx] = x_adv.detach().float().cpu()
        x_adv_np = out.numpy().reshape(x.shape).astype(np.float32)
        clip = self.estimator.clip_values
        if clip is not None:
            x_adv_np = np.clip(x_adv_np, clip[0], clip[1]).astype(np.float32)
        return x_adv_np

    def _before(self, attack: Attack, model: nn.Module, x: Tensor, y: Tensor) -> None:
        """Hook run once per ``generate`` before the batches (fitting, for universal)."""


class SSGANEvasion(_Evasion):
    """A trained SSGAN generator (``SSGANAttack``) as an ART evasion attack.

    The generator needs no victim query unless the attack asks for one (``grad_input``,
    ``quietest``, ``refine_steps``), so it transfers to any ART classifier; those options need a
    ``PyTorchClassifier``. A class-conditional generator is targeted (``targeted=True``).

    Args:
        estimator: an ART classifier.
        attack: the fitted ``SSGANAttack`` (``SSGANAttack.from_run(...)``).
        targeted: ``y`` holds targets (class-conditional generators).
        batch_size: clips per attack call.
        seed: seeds the attack's random choices (``generator=`` of the ssgan call).

    Example::

        x_adv = SSGANEvasion(classifier, SSGANAttack.from_run("runs/gan")).generate(x)
    """

    attack_params: ClassVar[list[str]] = [*_Evasion.attack_params, "attack"]
    _estimator_requirements = (BaseEstimator, ClassifierMixin)

    def __init__(
        self,
        estimator: Any,
        attack: SSGANAttack,
        *,
        targeted: bool = False,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.attack = attack
        super().__init__(estimator, targeted=targeted, batch_size=batch_size, seed=seed)

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.attack, SSGANAttack):
            raise TypeError(f"attack must be an SSGANAttack, got {type(self.attack).__name__}")
        if not self.attack.is_fitted:
            raise ValueError("the SSGANAttack has no generator: load one (SSGANAttack.from_run)")
        if self.attack.queries_victim and not isinstance(self.estimator, PyTorchClassifier):
            raise ValueError(
                "this SSGANAttack queries the victim (grad_input, quietest or refine_steps): "
                f"it needs an art PyTorchClassifier, got {type(self.estimator).__name__}"
            )

    def _attack(self) -> Attack:
        return self.attack

    def _device(self) -> torch.device:
        param = next(self.attack.generator.parameters(), None)
        return param.device if param is not None else super()._device()


class UniversalEvasion(_Evasion):
    """A universal perturbation (``UAPIterative`` / ``UAPPenalty``) as an ART evasion attack.

    As ART's ``UniversalPerturbation``: ``generate`` fits the perturbation on ``x`` (against
    the estimator, with the true labels ``y`` or its predictions) unless the attack is already
    fitted (``fit=False`` never fits; ``fit=True`` always refits), then adds it to every clip.
    The perturbation is ``noise`` ``(length,)`` afterwards; ``fooling_rate`` is the fit's.

    Args:
        estimator: an ART ``PyTorchClassifier`` (fitting queries it).
        attack: a ``UAPIterative`` or ``UAPPenalty``, fitted or not.
        fit: ``None`` (default): fit if not fitted; ``True``: refit on each ``generate``;
            ``False``: only apply.
        targeted: ``y`` holds targets; they must all be the attack's ``target_class``.
        batch_size, seed: as ``SSGANEvasion``.
    """

    attack_params: ClassVar[list[str]] = [*_Evasion.attack_params, "attack", "fit"]

    def __init__(
        self,
        estimator: Any,
        attack: UAPIterative | UAPPenalty,
        *,
        fit: bool | None = None,
        targeted: bool = False,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.attack = attack
        self.fit = fit
        super().__init__(estimator, targeted=targeted, batch_size=batch_size, seed=seed)

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.attack, UAPIterative | UAPPenalty):
            raise TypeError(
                f"attack must be a UAPIterative or UAPPenalty, got {type(self.attack).__name__}"
            )
        if self.fit is False and not self.attack.is_fitted:
            raise ValueError("fit=False but the universal perturbation is not fitted")

    @property
    def noise(self) -> np.ndarray | None:
        """The fitted perturbation ``(length,)`` float32, or ``None`` before fitting."""
        v = self.attack.v
        return None if v is None else v.detach().float().cpu().numpy()

    @property
    def fooling_rate(self) -> float | None:
        return self.attack.fooling_rate

    def _attack(self) -> Attack:
        return self.attack

    def _before(self, attack: Attack, model: nn.Module, x: Tensor, y: Tensor) -> None:
        if self.fit or (self.fit is None and not self.attack.is_fitted):
            generator = torch.Generator().manual_seed(self.seed)
            self.attack.fit(model, x, y, generator=generator)


class DDNEvasion(_Evasion):
    """ssgan's DDN (decoupled direction and norm, a minimum-norm L2 attack at SNRs no louder
    than ``min_snr_db``) as an ART evasion attack; the arguments are ``ssgan.attacks.DDN``'s.

    Args:
        estimator: an ART ``PyTorchClassifier`` (DDN needs its gradients).
        steps, gamma, step_scale, init_snr_db, min_snr_db, loss, quietest, snr_convention:
            see ``DDN``.
        targeted, batch_size, seed: as ``SSGANEvasion``.
    """

    _ddn_params = (
        "steps",
        "gamma",
        "step_scale",
        "init_snr_db",
        "min_snr_db",
        "loss",
        "quietest",
        "snr_convention",
    )
    attack_params: ClassVar[list[str]] = [*_Evasion.attack_params, *_ddn_params]

    def __init__(
        self,
        estimator: Any,
        *,
        steps: int = 20,
        gamma: float = 0.1,
        step_scale: float = 1.0,
        init_snr_db: float = 30.0,
        min_snr_db: float = 10.0,
        loss: Literal["ce", "margin"] = "ce",
        quietest: bool = False,
        snr_convention: str = "true",
        targeted: bool = False,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.steps = steps
        self.gamma = gamma
        self.step_scale = step_scale
        self.init_snr_db = init_snr_db
        self.min_snr_db = min_snr_db
        self.loss = loss
        self.quietest = quietest
        self.snr_convention = snr_convention
        super().__init__(estimator, targeted=targeted, batch_size=batch_size, seed=seed)

    def _check_params(self) -> None:
        super()._check_params()
        self._attack()  # DDN validates its arguments

    def _attack(self) -> Attack:
        return DDN(**{name: getattr(self, name) for name in self._ddn_params})
