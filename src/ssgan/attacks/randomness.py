"""Random draws of the attacks, reproducible by default and the same on every device."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


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
