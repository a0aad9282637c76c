"""Data-parallel training throughput: training crops per second, 1 process vs torchrun.

``--what victim`` (default) trains EnvNet (``--fc-width`` wide FC layers, default window) on
``--clips`` synthetic 5 s clips for ``--epochs`` epochs with the global batch ``--batch-size``;
``--what gan`` trains the generator of the ``cpu`` recipe (``--gan-steps`` steps an epoch, no
validation) against an untrained EnvNet of that width. Either reports crops per second of the
epochs after the first (warm-up), from the run's ``metrics.jsonl``. Run it once plainly and
once under torchrun with the same arguments; each run appends one JSON line to ``--out``:

    python benchmarks/ddp_throughput.py --out ddp.jsonl
    torchrun --standalone --nproc-per-node 2 benchmarks/ddp_throughput.py --out ddp.jsonl
    python benchmarks/ddp_throughput.py --what gan --out ddp.jsonl

``--threads`` intra-op threads per process (default: cores / processes). ``--quick`` (what
``tests/test_benchmarks.py`` runs, plainly and under torchrun with 2 gloo processes): 8 clips,
2 epochs (the first is the warm-up), global batch 4, 16-wide FC layers, EnvNet's shortest
window; ``--what gan``: 2 G steps an epoch of batch 4, one victim crop.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

import common
import torch

from ssgan import distributed
from ssgan.models.envnet import ENVNET_MIN_WINDOW
from ssgan.training.victim import VictimTrainConfig, train_victim


class Clips:
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(80_000) / 16_000
        self.y = torch.arange(n) % 4
        freqs = torch.tensor([220.0, 660.0, 1500.0, 3000.0])[self.y]
        self.x = torch.sin(2 * math.pi * freqs[:, None] * t) + 0.05 * torch.randn(
            n, 80_000, generator=g
        )
        self.class_names = ["a", "b", "c", "d"]

    def waveforms(self) -> list[torch.Tensor]:
        return list(self.x)

    def labels(self) -> list[int]:
        return self.y.tolist()


def _train_gan(args: argparse.Namespace, threads: int, out: Path) -> None:
    import dataclasses

    from ssgan.models.registry import build_model
    from ssgan.models.victim import wrap_victim
    from ssgan.training.gan import PROFILES, train_gan

    torch.set_num_threads(threads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_model("envnet", 4, window=args.window, fc_width=args.fc_width)
    victim = wrap_victim(net).eval()
    config = dataclasses.replace(
        PROFILES["cpu"], epochs=args.epochs, steps_per_epoch=args.gan_steps,
        batch_size=args.batch_size,
    )  # fmt: skip
    if args.quick:
        config = dataclasses.replace(config, victim_crops=1)
    train_gan(config, victim, Clips(args.clips, 0), None, out, progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--fc-width", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--what", choices=("victim", "gan"), default="victim")
    parser.add_argument("--gan-steps", type=int, default=10, help="G steps an epoch (--what gan)")
    parser.add_argument("--window", type=int, default=None, help="samples a crop (EnvNet's)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one appended a run")
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.epochs, args.batch_size = min(args.clips, 8), 2, min(args.batch_size, 4)
        args.fc_width, args.window, args.gan_steps = 16, ENVNET_MIN_WINDOW, min(args.gan_steps, 2)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is the warm-up, not counted")
    with common.num_threads(None):  # restored afterwards (the trainers set their own)
        _run(args)
    return 0


def _run(args: argparse.Namespace) -> None:
    distributed.init_from_env("cpu")
    world = distributed.world_size()
    threads = args.threads or max(1, (os.cpu_count() or 1) // world)
    config = VictimTrainConfig(
        window=args.window, fc_width=args.fc_width, epochs=args.epochs, batch_size=args.batch_size,
        eval_every=10_000, n_crops=1, num_threads=threads, checkpoint_every=10_000,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run = distributed.broadcast(tmp)  # rank 0's directory
        if args.what == "victim":
            train_victim(config, Clips(args.clips, 0), Clips(2, 1), Path(run) / "r", progress=False)
        else:
            _train_gan(args, threads, Path(run) / "r")
        if distributed.is_main():
            lines = (Path(run) / "r" / "metrics.jsonl").read_text().splitlines()
            key = "seconds" if args.what == "victim" else "epoch_s"
            seconds = [json.loads(s)[key] for s in lines][1:]
            steps = args.clips // args.batch_size if args.what == "victim" else args.gan_steps
            result = {
                "what": args.what,
                "quick": args.quick,
                "processes": world,
                "threads_per_process": threads,
                "fc_width": args.fc_width,
                "window": config.resolved_window,
                "global_batch": args.batch_size,
                "crops_per_second": steps * args.batch_size * len(seconds) / sum(seconds),
                "epoch_seconds": seconds,
                "machine": common.machine_info("cpu"),
            }
            print(json.dumps(result))
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(result) + "\n")
        distributed.barrier()
    distributed.shutdown()


if __name__ == "__main__":
    common.run_cli(main)
