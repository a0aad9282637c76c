"""Choosing the class a targeted attack aims at: by name or index, at random, or least likely.

A targeted attack succeeds when the victim outputs the target (``ssgan.metrics.success_mask``
with ``target=``); aiming at the class a clip already has would count an unchanged clip as a
success, so a target equal to the true label is refused everywhere (``check_targets``).

Modes (``ssgan evaluate --target``):

- ``"random"``: for each clip a class drawn uniformly among the *other* classes, from a
  ``torch.Generator`` passed in (reproducible);
- ``"least-likely"``: the class with the lowest clean logit among the other classes (the hardest
  target, Kurakin et al. 2017's "least-likely class");
- a class name or index (``"dog"``, ``"3"``): the same target for every clip; clips of that class
  cannot be attacked towards it and are left out by the caller (``fixed_target_keep``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "TARGET_MODES",
    "check_targets",
    "choose_targets",
    "fixed_target_keep",
    "parse_target",
    "resolve_class",
]

TARGET_MODES = ("random", "least-likely")


def resolve_class(spec: str | int, class_names: Sequence[str]) -> int:
    """The class index of ``spec``: an index (int or digits) or a class name (exact, then
    case-insensitive). ``ValueError`` naming the known classes otherwise."""
    n = len(class_names)
    if isinstance(spec, int) and not isinstance(spec, bool):
        index = spec
    elif isinstance(spec, str) and spec.strip().lstrip("-").isdigit():
        index = int(spec.strip())
    elif isinstance(spec, str):
        if spec in class_names:
            return list(class_names).index(spec)
        folded = [name.casefold() for name in class_names]
        if spec.casefold() in folded:
            return folded.index(spec.casefold())
        shown = ", ".join(class_names[:12]) + (", ..." if n > 12 else "")
        raise ValueError(f"unknown class {spec!r}; known: {shown}")
    else:
        raise ValueError(f"target class {spec!r}: expected a class name or index")
    if not 0 <= index < n:
        raise ValueError(f"target class index {index} out of range: the victim has {n} classes")
    return index


def parse_target(spec: str, class_names: Sequence[str]) -> str | int:
    """``"random"`` / ``"least-likely"`` unchanged, anything else resolved to a class index."""
    return spec if spec in TARGET_MODES else resolve_class(spec, class_names)


def check_targets(y: Tensor, target: Tensor) -> None:
    """``ValueError`` if any target equals its clip's true label (it would "succeed" untouched)."""
    same = (target.to(y.device) == y).nonzero().flatten()
    if same.numel():
        i = int(same[0])
        raise ValueError(
            f"target equals the true label for {same.numel()} clip(s) (first: clip {i}, "
            f"class {int(y[i])}); a targeted attack must aim at another class"
        )


def fixed_target_keep(y: Tensor, target_class: int) -> Tensor:
    """Bool ``(batch,)``: the clips that can be attacked towards ``target_class`` (other labels)."""
    return y != target_class


def choose_targets(
    mode: str | int,
    y: Tensor,
    *,
    n_classes: int,
    logits: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Targets ``(batch,)`` for clips of true labels ``y (batch,)``, never equal to ``y``.

    Args:
        mode: ``"random"``, ``"least-likely"`` or a class index (every clip; ``ValueError`` if a
            clip has that label: filter with ``fixed_target_keep`` first).
        n_classes: the victim's class count (>= 2).
        logits: clean logits ``(batch, n_classes)``, needed by ``"least-likely"``.
        generator: CPU generator of ``"random"`` (``None``: seeded with 0).
    """
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes}: a targeted attack needs at least 2 classes")
    y = y.long()
    if mode == "random":
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        # An offset in [1, n - 1] from y is uniform over the other classes and never y.
        offset = torch.randint(1, n_classes, (y.shape[0],), generator=g).to(y.device)
        return (y + offset) % n_classes
    if mode == "least-likely":
        if logits is None or logits.shape != (y.shape[0], n_classes):
            got = None if logits is None else tuple(logits.shape)
            raise ValueError(f"least-likely targets need clean logits ({y.shape[0]}, "
                             f"{n_classes}), got {got}")  # fmt: skip
        masked = logits.detach().float().scatter(1, y[:, None], float("inf"))
        return masked.argmin(dim=1)
    if isinstance(mode, int) and not isinstance(mode, bool):
        if not 0 <= mode < n_classes:
            raise ValueError(f"target class {mode} out of range for {n_classes} classes")
        target = torch.full_like(y, mode)
        check_targets(y, target)
        return target
    raise ValueError(f"target mode {mode!r}: expected one of {', '.join(TARGET_MODES)} or a class")
