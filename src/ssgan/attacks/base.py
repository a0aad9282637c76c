"""The attack interface every ssgan attack implements (foolbox-style).

An attack is built once with its hyperparameters (keyword-only, validated in ``__init__``) and then
called on any victim::

    attack = PGD(norm="linf", eps=0.002, steps=10)
    x_adv = attack(model, x, y)                   # untargeted
    x_adv = attack(model, x, y, target=t)         # targeted

The public ``__call__`` is final: it checks the inputs, puts the victim in eval mode with frozen
weights, calls the subclass's small ``_run``, projects the result onto the attack's budget
(``budget()``, exact Linf / L2) and clips it to ``[-1, 1]``; then it restores the victim's modes
and ``requires_grad`` flags. A subclass therefore cannot get that bookkeeping wrong.

Learned attacks (universal perturbations, SSGAN) subclass ``LearnedAttack`` and add ``fit`` and
``save`` / ``load`` of their state (safetensors + JSON, see ``ssgan.io``).

Conventions: waveforms are float ``(batch, time)`` tensors in ``[-1, 1]`` at 16 kHz; ``y`` and
``target`` are ``(batch,)`` integer class indices; a victim is any ``nn.Module`` mapping
``(batch, time)`` to logits ``(batch, n_classes)``.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssgan.errors import CheckpointError
from ssgan.io import load_checkpoint, save_checkpoint
from ssgan.losses import input_gradient as input_gradient  # re-exported: defined in losses
from ssgan.losses import logit_margin as margin  # the one margin; attacks call it margin
from ssgan.metrics import check_convention, snr_reference
from ssgan.models.victim import victim_frozen
from ssgan.targets import check_targets

logger = logging.getLogger(__name__)

Norm = Literal["linf", "l2"]
LearnedT = TypeVar("LearnedT", bound="LearnedAttack")

# A checkpoint written by ``LearnedAttack.save`` is ``<dir>/attack.safetensors`` + ``attack.json``.
CHECKPOINT_NAME = "attack"
CHECKPOINT_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Budget:
    """A perturbation budget: ``||x_adv - x||_norm <= eps`` per clip (waveform units, [-1, 1]).

    With ``snr_db`` (L2 only, ``eps`` then unused) each clip has its own radius
    ``||r|| 10^(-snr_db / 20)`` (``snr_radius``): ``x_adv`` is at least ``snr_db`` dB of SNR in
    ``snr_convention`` (``r = x``, or ``x + 1`` for ``"box"``; ``ssgan.metrics``).
    """

    norm: Norm
    eps: float
    snr_db: float | None = None
    snr_convention: str = "true"

    def __post_init__(self) -> None:
        check_convention(self.snr_convention)
        if self.snr_db is not None and self.norm != "l2":
            raise ValueError(f"an SNR budget is an L2 ball, got norm={self.norm!r}")

    def radius(self, x: Tensor) -> Tensor | float:
        """The L2 / Linf radius: ``eps``, or each clip's ``(batch, 1)`` radius at ``snr_db``."""
        if self.snr_db is None:
            return self.eps
        return snr_radius(x, self.snr_db, self.snr_convention)[:, None]


# ----------------------------------------------------------------------------- validation helpers


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """``ValueError`` naming ``name`` unless ``value`` is a finite number > 0 (>= 0 if allowed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}={value!r}: expected a number")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or value != value or value == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r}: must be finite and {bound}")
    return float(value)


def check_int(name: str, value: int, *, minimum: int) -> int:
    """``ValueError`` naming ``name`` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r}: expected an integer")
    if value < minimum:
        raise ValueError(f"{name}={value!r}: must be >= {minimum}")
    return value


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value


# ----------------------------------------------------------------------------- tensor helpers


def snr_radius(x: Tensor, snr_db: float, convention: str = "true") -> Tensor:
    """``(batch,)``: the L2 norm of a perturbation of ``x (batch, time)`` at exactly ``snr_db``
    dB of SNR in ``convention``, ``||r|| 10^(-snr_db / 20)`` with ``r = snr_reference(x)``."""
    ref = snr_reference(x.detach().double(), convention)
    return (ref.flatten(1).norm(dim=1) * 10.0 ** (-float(snr_db) / 20.0)).to(x.dtype)


def project(x: Tensor, x_adv: Tensor, budget: Budget | None) -> Tensor:
    """Project ``x_adv`` onto the ball ``||x_adv - x|| <= eps`` (per row of ``(batch, time)``).

    Linf clamps each sample of ``delta``; L2 rescales rows whose norm exceeds ``eps`` (each
    row's own with an SNR budget).
    """
    if budget is None:
        return x_adv
    delta = x_adv - x
    if budget.norm == "linf":
        delta = delta.clamp(-budget.eps, budget.eps)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        eps = budget.radius(x)
        eps = eps.view(-1) if isinstance(eps, Tensor) else eps
        # 1 - 1e-6 keeps the float32 norm of the result at or below eps despite rounding.
        scale = (eps * (1 - 1e-6) / norms).clamp(max=1.0)
        delta = delta * scale.view(-1, *([1] * (delta.dim() - 1)))
    return x + delta


def objective(
    logits: Tensor, y: Tensor, target: Tensor | None, loss: Literal["ce", "margin"]
) -> Tensor:
    """Per-clip objective to *ascend*: ``(batch, n_classes) -> (batch,)``.

    Untargeted: cross-entropy of the true label ``y`` (or minus its logit margin); targeted:
    minus the cross-entropy of ``target`` (or the target's logit margin).
    """
    if target is None:
        if loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        return -margin(logits, y)
    if loss == "ce":
        return -F.cross_entropy(logits, target, reduction="none")
    return margin(logits, target)


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """The passed generator, or a fresh CPU generator seeded with 0 (reproducible, not global)."""
    return generator if generator is not None else torch.Generator().manual_seed(0)


def rand_like_cpu(
    x: Tensor, generator: torch.Generator, *, kind: Literal["uniform", "normal"] = "uniform"
) -> Tensor:
    """Random tensor shaped like ``x`` drawn on CPU from ``generator``, moved to ``x``'s device.

    Drawing on CPU makes the same seed give the same numbers on every device.
    """
    if kind == "uniform":
        r = torch.rand(x.shape, generator=generator, dtype=torch.float32)
    else:
        r = torch.randn(x.shape, generator=generator, dtype=torch.float32)
    return r.to(device=x.device, dtype=x.dtype)


def _check_labels(name: str, labels: Tensor, batch: int, n_classes: int | None) -> None:
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(labels.shape)}")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} contains a negative class index {int(labels.min())}")
    if n_classes is not None and labels.numel() and int(labels.max()) >= n_classes:
        raise ValueError(
            f"{name} contains class index {int(labels.max())} but the victim has "
            f"{n_classes} classes"
        )


def check_waveforms(x: Tensor, *, name: str = "x") -> None:
    """Raise unless ``x`` is a finite float ``(batch, time)`` tensor in [-1, 1]."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (batch, time), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite samples")
    if x.numel() and float(x.abs().max()) > 1.0:
        raise ValueError(
            f"{name} must lie in [-1, 1] (peak-normalised waveforms), got peak "
            f"{float(x.abs().max()):.4g}"
        )


def _n_classes(model: nn.Module, x: Tensor, *, probe: bool) -> int | None:
    """The victim's class count, for checking label ranges.

    Read from an integer ``n_classes`` attribute when the model has one (``ClipClassifier``
    and the EnvNets do); otherwise, if ``probe``, from one forward pass on ``x[:1]``; else
    ``None`` (the labels are not range-checked). The probe costs a full 10-crop victim forward:
    ~0.13 s for a 5 s clip on 2 CPU cores, 20x the whole SSGAN attack it would precede.
    """
    n = getattr(model, "n_classes", None)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    if not probe:
        return None
    with torch.no_grad():
        return int(model(x[:1]).shape[-1])


# ----------------------------------------------------------------------------- the interface


class Attack(abc.ABC):
    """Base class of all attacks; subclasses implement ``_run`` (and optionally ``budget``).

    Hyperparameters are constructor keyword arguments stored as attributes of the same name, so
    ``config()`` can report them and ``LearnedAttack.load`` can rebuild the attack.

    Class attributes:
        name: the registry name (``"pgd"``, ``"uap-penalty"``...).
        targeted_supported: whether ``target=`` may be passed.
        queries_victim: whether ``_run`` calls the victim (gradient and score attacks do; a
            fitted generator or universal perturbation does not). An attack that does not
            query the victim costs no victim forward pass at all per call (see ``__call__``).
    """

    name: ClassVar[str] = "attack"
    targeted_supported: ClassVar[bool] = True
    queries_victim: ClassVar[bool] = True

    @final
    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        target: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Attack ``model`` on ``x`` and return ``x_adv``.

        Args:
            model: the victim, ``(batch, time) -> logits (batch, n_classes)``. Its train/eval
                modes and weights' ``requires_grad`` are restored afterwards; it runs in eval.
            x: clean waveforms ``(batch, time)``, float, in ``[-1, 1]``.
            y: true labels ``(batch,)``, integer.
            target: target labels ``(batch,)`` for a targeted attack, or ``None`` (untargeted).
                A target equal to its clip's true label is a ``ValueError`` (``ssgan.targets``).
            generator: a CPU ``torch.Generator`` for random choices (random starts); ``None``
                means a generator seeded with 0, so results are always reproducible.

        Returns:
            ``x_adv`` ``(batch, time)``, same dtype and device as ``x``, detached, in ``[-1, 1]``
            and within ``budget()``.
        """
        check_waveforms(x)
        _check_labels("y", y, x.shape[0], None)
        if target is not None:
            if not self.targeted_supported:
                raise ValueError(f"attack {self.name!r} does not support targeted attacks")
            _check_labels("target", target, x.shape[0], None)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        x = x.detach()
        y = y.detach().to(device=x.device, dtype=torch.long)
        if target is not None:
            target = target.detach().to(device=x.device, dtype=torch.long)
            check_targets(y, target)
        if isinstance(self, LearnedAttack):
            self._require_fitted()
        if x.shape[0] == 0:
            return x.clone()
        with victim_frozen(model):
            n_classes = _n_classes(model, x, probe=self.queries_victim)
            if n_classes is not None:
                _check_labels("y", y, x.shape[0], n_classes)
                if target is not None:
                    _check_labels("target", target, x.shape[0], n_classes)
            x_adv = self._run(model, x, y, target, default_generator(generator))
        if x_adv.shape != x.shape:
            raise RuntimeError(
                f"{type(self).__name__}._run returned shape {tuple(x_adv.shape)}, "
                f"expected {tuple(x.shape)}"
            )
        x_adv = project(x, x_adv.detach().to(x.dtype), self.budget()).clamp(-1.0, 1.0)
        return x_adv.detach()

    @abc.abstractmethod
    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        """Return an (unclipped, unprojected is fine) ``x_adv`` ``(batch, time)``.

        Called with the victim in eval mode, frozen, and grad enabled; inputs already checked.
        """

    def budget(self) -> Budget | None:
        """The norm ball ``x_adv`` is projected onto, or ``None`` (only the [-1, 1] box)."""
        return None

    def _project(self, x: Tensor, x_adv: Tensor) -> Tensor:
        """Project ``x_adv`` onto ``budget()`` (exact Linf / L2)."""
        return project(x, x_adv, self.budget())

    @classmethod
    def keyword_settings(cls) -> dict[str, Any]:
        """Settings the constructor takes through ``**kwargs`` (name -> type), beside its named
        parameters: what ``make_attack`` and ``--set attack.KEY=VALUE`` may also set."""
        return {}

    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments, read back from attributes of the same name."""
        out: dict[str, Any] = {}
        for pname, param in inspect.signature(type(self).__init__).parameters.items():
            if pname == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            out[pname] = getattr(self, pname)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class LearnedAttack(Attack):
    """An attack with learned state: ``fit`` it on clips, then ``save`` / ``load`` it.

    Subclasses implement ``_fit``, ``state_tensors`` and ``load_state_tensors``; the state is
    saved as ``<dir>/attack.safetensors`` and ``<dir>/attack.json`` (attack name + ``config()``).
    """

    @property
    @abc.abstractmethod
    def is_fitted(self) -> bool:
        """Whether the attack has state (from ``fit`` or ``load``) and can be called."""

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"attack {self.name!r} is not fitted: call fit(...) or load(...)")

    @final
    def fit(
        self: LearnedT,
        model: nn.Module,
        clips: Sequence[Tensor] | Tensor,
        labels: Sequence[int] | Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> LearnedT:
        """Learn the attack's state on ``clips`` against ``model``; returns ``self``.

        Args:
            model: the victim (eval mode and frozen during fitting, restored afterwards).
            clips: a list of 1-D waveforms ``(time,)`` (lengths may differ) or a ``(batch, time)``
                tensor, in ``[-1, 1]``.
            labels: their true labels, ``(batch,)`` or a list of ints.
            generator: CPU generator for random choices (``None``: seeded with 0).
            progress: show a tqdm progress bar (for the CLI; the library logs otherwise).
        """
        clip_list = list(clips.unbind(0)) if isinstance(clips, Tensor) else list(clips)
        if not clip_list:
            raise ValueError("fit needs at least one clip")
        for i, clip in enumerate(clip_list):
            if not isinstance(clip, Tensor) or clip.dim() != 1:
                shape = tuple(clip.shape) if isinstance(clip, Tensor) else type(clip).__name__
                raise ValueError(f"clip {i} must be a 1-D waveform (time,), got {shape}")
            check_waveforms(clip[None], name=f"clip {i}")
        label_t = torch.as_tensor(labels).detach().to(dtype=torch.long).cpu()
        _check_labels("labels", label_t, len(clip_list), None)
        with victim_frozen(model):
            self._fit(model, clip_list, label_t, default_generator(generator), progress)
        return self

    @abc.abstractmethod
    def _fit(
        self,
        model: nn.Module,
        clips: list[Tensor],
        labels: Tensor,
        generator: torch.Generator,
        progress: bool,
    ) -> None:
        """Learn the state; the victim is already in eval mode and frozen, grad enabled."""

    @abc.abstractmethod
    def state_tensors(self) -> dict[str, Tensor]:
        """The learned state as a flat name -> tensor dict (saved as safetensors)."""

    @abc.abstractmethod
    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore the learned state from ``state_tensors()`` output."""

    def meta(self) -> dict[str, Any]:
        """Extra JSON metadata saved next to the config (override to add fields)."""
        return {}

    def save(self, directory: str | Path) -> Path:
        """Write ``<directory>/attack.safetensors`` + ``attack.json``; returns the JSON path."""
        self._require_fitted()
        meta = {
            "format": CHECKPOINT_FORMAT,
            "attack": self.name,
            "config": self.config(),
            "meta": self.meta(),
        }
        return save_checkpoint(directory, CHECKPOINT_NAME, self.state_tensors(), meta)

    @classmethod
    def load(cls: type[LearnedT], directory: str | Path) -> LearnedT:
        """Rebuild an attack saved by ``save``; ``CheckpointError`` if it is not one of ours."""
        tensors, meta, _ = load_checkpoint(directory, CHECKPOINT_NAME)
        json_path = Path(directory) / f"{CHECKPOINT_NAME}.json"
        if meta.get("attack") != cls.name:
            raise CheckpointError(
                f"{json_path}: holds attack {meta.get('attack')!r}, expected {cls.name!r}"
            )
        config = meta.get("config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{json_path}: no attack config")
        try:
            attack = cls(**config)
            attack.load_state_tensors(tensors)
        except (TypeError, ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{json_path}: cannot rebuild attack ({exc})") from None
        return attack
