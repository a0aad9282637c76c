"""Running stages: a ``Stage`` is one resumable step, done when its final file exists; a rerun
skips what is done. Under torchrun rank 0 decides what is done and writes (docs/distributed.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ssgan import distributed

log = logging.getLogger("ssgan.reproduce")

Reporter = Callable[[str], None]


@dataclass
class Stage:
    """One resumable step: ``run()`` does it, ``done()`` says it has been done."""

    name: str
    done: Callable[[], bool]
    run: Callable[[], None]


def run_stages(stages: Sequence[Stage], report: Reporter) -> dict[str, float]:
    """Run the stages not done yet, in order, reporting each one; returns seconds per stage."""

    # Under torchrun rank 0 decides what is done; every rank runs each stage (the trainings are
    # data-parallel, the evaluations sharded, a fit runs on rank 0) and waits for the others.
    done = distributed.on_main(lambda: [s.done() for s in stages])
    pending = [s for s, finished in zip(stages, done, strict=True) if not finished]
    report(
        f"{len(stages)} stages, {len(stages) - len(pending)} already done, {len(pending)} to run: "
        + ", ".join(s.name for s in pending)
    )
    seconds: dict[str, float] = {}
    for i, stage in enumerate(pending, 1):
        report(f"[{i}/{len(pending)}] {stage.name} ...")
        t0 = time.perf_counter()
        stage.run()
        distributed.barrier(f"waiting for the other ranks to finish {stage.name}")
        seconds[stage.name] = time.perf_counter() - t0
        left = len(pending) - i
        report(
            f"[{i}/{len(pending)}] {stage.name} done in {_fmt_s(seconds[stage.name])}"
            + (f"; {left} stage(s) left" if left else "")
        )
    return seconds


def on_main_write(write: Callable[[], Path]) -> Path:
    """A table written by rank 0 alone (its path on every rank)."""

    return distributed.on_main(write)


def _fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.1f} s"


def resume_or_clear(run_dir: Path) -> bool:
    """Whether a training stage resumes from its checkpoint; a folder without one is cleared."""
    resume = (run_dir / "last.json").is_file()
    if run_dir.exists() and not resume:
        _clear_incomplete(run_dir)
    return resume


def _clear_incomplete(run_dir: Path) -> None:
    """A stage folder without a checkpoint holds only the start of a crashed run: restart it."""
    for p in sorted(run_dir.iterdir()):
        if p.is_file():
            p.unlink()
