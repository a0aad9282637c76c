"""Argument checks shared by the attacks: hyperparameters when an attack is built, waveforms and
labels when it is called or fitted. Each raises naming the argument."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


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
    """``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value


def check_labels(name: str, labels: Tensor, batch: int, n_classes: int | None) -> None:
    """Raise unless ``labels`` is an integer ``(batch,)`` tensor of class indices (below
    ``n_classes`` when it is known)."""
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
