"""Wall time of attacks: device-synchronised timers and the time per example."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


def _synchronize(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without a sync the timer would measure the launch only.
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)


class Timer:
    """Wall time of a block, synchronising the device first and last so GPU time is included.

    ::

        with Timer(device) as t:
            x_adv = attack(model, x, y)
        t.seconds
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = math.nan
        self._start = 0.0

    def __enter__(self) -> Timer:
        _synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


@dataclass
class TimePerExample:
    """Accumulates ``(seconds, n_examples)`` of batches; the first ``warmup_batches`` are excluded.

    ``seconds_per_example = sum(seconds) / sum(n_examples)`` over the batches after the warm-up
    (the first call pays for lazy initialisation, allocator growth and kernel selection). When
    there are no batches after the warm-up, all batches are used and ``warm`` is False.
    """

    device: str = "cpu"
    warmup_batches: int = 1
    batches: list[tuple[float, int]] = field(default_factory=list)

    def add(self, seconds: float, n_examples: int) -> None:
        self.batches.append((float(seconds), int(n_examples)))

    @property
    def warm(self) -> bool:
        return len(self.batches) > self.warmup_batches

    @property
    def seconds_per_example(self) -> float:
        used = self.batches[self.warmup_batches :] if self.warm else self.batches
        n = sum(k for _, k in used)
        return math.nan if n == 0 else sum(s for s, _ in used) / n

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds_per_example": self.seconds_per_example,
            "device": self.device,
            "warm": self.warm,
            "timed_batches": len(self.batches),
            "warmup_batches": min(self.warmup_batches, len(self.batches)) if self.warm else 0,
        }


def time_per_example(
    fn: Callable[[], object],
    n_examples: int,
    *,
    device: torch.device | str = "cpu",
    warmup: int = 1,
    repeats: int = 3,
) -> float:
    """Seconds per example of ``fn()`` (which processes ``n_examples``), warm and averaged.

    Calls ``fn`` ``warmup`` times untimed, then ``repeats`` times timed with ``Timer(device)``;
    returns ``total_seconds / (repeats * n_examples)``.
    """
    if n_examples < 1:
        raise ValueError(f"n_examples={n_examples!r}: must be >= 1")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup={warmup!r} must be >= 0 and repeats={repeats!r} >= 1")
    for _ in range(warmup):
        fn()
    with Timer(device) as t:
        for _ in range(repeats):
            fn()
    return t.seconds / (repeats * n_examples)
