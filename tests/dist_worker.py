"""A worker that tests/test_distributed.py starts with torchrun (2 processes, gloo).

``python dist_worker.py train OUT [--stop-after N] [--resume] [--die-after-batches N]``: trains
the tiny victim of ``TINY_DDP`` on the synthetic clips; ``--die-after-batches`` makes rank 1 exit
hard after making that many batches (a crashed rank). ``python dist_worker.py evaluate OUT
VICTIM_PT [--target random|CLASS]``: FGSM over synthetic clips of two lengths against the saved
``TinyVictim`` weights; with ``--target``, ``evaluate_targeted_clips``.
``python dist_worker.py gan OUT VICTIM_PT [--epochs N] [--resume]``: trains the tiny GAN of
``TINY_GAN`` (G and D) against those weights.

Each rank records which files it wrote through the trainer/evaluator (``OUT.writes.rankR.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from conftest import TinyVictim, synth_batch
from helpers import TINY_VICTIM
from ssgan import distributed

# The victim config of the data-parallel tests: helpers.TINY_VICTIM, the tiny EnvNet (dropout and
# augmentation on, 2 epochs of 2 global batches of 8) in float32, for tight comparisons.
TINY_DDP = dataclasses.replace(TINY_VICTIM, bf16=False)


class MemoryClips:
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.class_names = ["a", "b", "c", "d"]
        self.clips = [SimpleNamespace(name=f"clip{i}.wav") for i in range(len(y))]
        self.name = "synth"

    def waveforms(self) -> list[torch.Tensor]:
        return list(self.x)

    def labels(self) -> list[int]:
        return self.y.tolist()


def gan_data() -> tuple[MemoryClips, MemoryClips]:
    x, y = synth_batch(12, 4000, seed=20)
    xv, yv = synth_batch(4, 4000, seed=21)
    return MemoryClips(x, y), MemoryClips(xv, yv)


def tiny_gan() -> Any:
    """The GAN config of the data-parallel tests: G and D (gamma 1), 0.05 s crops, global batch
    of 8 (4 a rank), 2 epochs of 3 steps."""
    from ssgan.training.gan import PROFILES

    return dataclasses.replace(
        PROFILES["smoke"], segment_seconds=0.05, epochs=2, batch_size=8, steps_per_epoch=3,
        g_channels=4, g_blocks=1, val_clips=4, margin=2.0,
    )  # fmt: skip


TINY_GAN = tiny_gan()


def train_data() -> tuple[MemoryClips, MemoryClips]:
    x, y = synth_batch(16, 6000, seed=10)
    xt, yt = synth_batch(6, 6000, seed=11)
    return MemoryClips(x, y), MemoryClips(xt, yt)


class EvalClips(MemoryClips):
    """11 clips of two lengths (batches grouped by length, as ``evaluate_attack`` does)."""

    def __init__(self) -> None:
        x, y = synth_batch(11, 5000, seed=12)
        super().__init__(x, y)
        self.wav = [w[:4000] if i % 3 == 0 else w for i, w in enumerate(x)]

    def waveforms(self) -> list[torch.Tensor]:
        return list(self.wav)


def evaluate_targeted_clips(model: torch.nn.Module, target: str, out: Path) -> None:
    """The targeted evaluation of the data-parallel tests: FGSM aimed at ``target`` (``random``
    or a class index) over ``EvalClips``, 2 clips a batch, with a channel transform and a
    transfer victim (a copy of ``model``), so every part of the records is sharded and merged."""
    from ssgan.attacks import make_attack
    from ssgan.evaluation import evaluate_targeted

    other = TinyVictim()
    other.load_state_dict(model.state_dict())
    aim: str | int = int(target) if target.isdigit() else target
    evaluate_targeted(
        make_attack("fgsm", {"eps": "0.5"}), model, EvalClips(), target=aim, batch_size=2,
        out_dir=out, transforms=["noise:snr_db=20"], transfer_victims={"copy": other},
    )  # fmt: skip


def _spy(module: Any, name: str, log: list[str]) -> None:
    real = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        log.append(f"{name}:{Path(str(args[0])).name}")
        return real(*args, **kwargs)

    setattr(module, name, wrapper)


def _die_after(module: Any, name: str, calls: int) -> None:
    """Make this process exit hard (code 3) on call ``calls + 1`` of ``module.name``."""
    real = getattr(module, name)
    made = [0]

    def dying(*args: Any, **kwargs: Any) -> Any:
        made[0] += 1
        if made[0] > calls:
            os._exit(3)  # a crashed process: no cleanup, no goodbye to the others
        return real(*args, **kwargs)

    setattr(module, name, dying)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=("train", "evaluate", "gan"))
    parser.add_argument("out", type=Path)
    parser.add_argument("victim", nargs="?")
    parser.add_argument("--stop-after", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--die-after-batches", type=int, default=None)
    parser.add_argument("--target", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    distributed.init_from_env("cpu")
    rank = distributed.rank()
    writes: list[str] = []
    if args.task == "train":
        from ssgan.training import victim

        for name in ("save_checkpoint", "atomic_write_json", "trim_metrics"):
            _spy(victim, name, writes)
        if args.die_after_batches is not None and rank == 1:
            _die_after(victim, "make_batch", args.die_after_batches)
        train, test = train_data()
        victim.train_victim(
            TINY_DDP, train, test, args.out, resume=args.resume, progress=False,
            stop_after_epoch=args.stop_after,
        )  # fmt: skip
    elif args.task == "gan":
        from ssgan.training import gan, gan_checkpoint

        _spy(gan, "save_run", writes)
        _spy(gan_checkpoint, "atomic_write_json", writes)
        if args.die_after_batches is not None and rank == 1:
            _die_after(gan, "random_crops", args.die_after_batches)
        _spy(gan_checkpoint, "save_checkpoint", writes)
        model = TinyVictim()
        model.load_state_dict(torch.load(args.victim, weights_only=True))
        cfg = dataclasses.replace(TINY_GAN, epochs=args.epochs or TINY_GAN.epochs)
        train, val = gan_data()
        from ssgan.gan_validation import validate_generator

        gan.train_gan(cfg, model, train, val, args.out, resume=args.resume, progress=False,
                      validate=validate_generator)  # fmt: skip
    else:
        from ssgan.attacks import make_attack
        from ssgan.evaluation import loop

        for name in ("atomic_write_text", "atomic_write_json", "write_report",
                     "write_targeted_report"):  # fmt: skip
            _spy(loop, name, writes)
        model = TinyVictim()
        model.load_state_dict(torch.load(args.victim, weights_only=True))
        if args.target is not None:
            evaluate_targeted_clips(model, args.target, args.out)
        else:
            attack = make_attack("fgsm", {"eps": "0.5"})
            loop.evaluate_attack(attack, model, EvalClips(), batch_size=2, out_dir=args.out)
    log = args.out.parent / f"{args.out.name}.writes.rank{rank}.json"
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(writes) + "\n")
    distributed.shutdown(completed=True)


if __name__ == "__main__":
    sys.exit(main())
