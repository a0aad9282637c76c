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

The pieces attacks are built from live beside this module: ``budget`` (the norm ball and its
projection), ``checks`` (argument checks), ``objective`` (what a gradient attack ascends) and
``randomness`` (reproducible draws); the margin and the victim's input gradient are
``ssgan.losses.logit_margin`` and ``ssgan.losses.input_gradient``.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar, final

import torch
from torch import Tensor, nn

from ssgan.attacks.budget import Budget, project
from ssgan.attacks.checks import check_labels, check_waveforms
from ssgan.attacks.randomness import default_generator
from ssgan.errors import CheckpointError
from ssgan.io import load_checkpoint, save_checkpoint
from ssgan.models.victim import victim_frozen
from ssgan.targets import check_targets

LearnedT = TypeVar("LearnedT", bound="LearnedAttack")

# A checkpoint written by ``LearnedAttack.save`` is ``<dir>/attack.safetensors`` + ``attack.json``.
CHECKPOINT_NAME = "attack"
CHECKPOINT_FORMAT = 1


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
        check_labels("y", y, x.shape[0], None)
        if target is not None:
            if not self.targeted_supported:
                raise ValueError(f"attack {self.name!r} does not support targeted attacks")
            check_labels("target", target, x.shape[0], None)
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
                check_labels("y", y, x.shape[0], n_classes)
                if target is not None:
                    check_labels("target", target, x.shape[0], n_classes)
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
        check_labels("labels", label_t, len(clip_list), None)
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
