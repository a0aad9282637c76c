"""Anatomy of a victim epoch and a GAN step: the whole against the sum of its parts, with the
CPU time split into user and system (kernel) time, under both allocator settings.

For each allocator setting (``ssgan.memory``: glibc as it comes, ``SSGAN_MALLOC=system``; and
the package's default, freed memory kept) a child process:

1. trains the victim with ``ssgan.training.victim.train_victim`` for ``--epochs`` epochs (the
   profile's settings; test evaluation and the resumable checkpoint at the last epoch only), and
   reads each epoch's wall time from the run's ``metrics.jsonl``; the last-but-one epoch is a
   training-only epoch, the last one adds the evaluation and the checkpoint writes;
2. replays one epoch's batches piece by piece on the same network: data and augmentation
   (``make_batch``), forward, loss, backward, the fused SGD step; then one 10-crop evaluation of
   the test fold (``evaluate_accuracy``) and one checkpoint write (``save_checkpoint`` of
   ``last`` with its optimiser state, and ``best``);
3. times one GAN step (``d_step`` + ``g_step``) whole and in parts
   (``step_anatomy.gan_anatomy``).

Every part carries wall, user and system seconds (``resource.getrusage``, all threads) and the
minor page faults it caused. Targets (issue 31): a training epoch <= 1.25x the sum of its parts
and system time < 5 % of the CPU time.

    python benchmarks/epoch_anatomy.py --root ../shared/data/ESC-50 --out epoch_anatomy.json
    python benchmarks/epoch_anatomy.py --quick          # bundled clips, tiny network (a test)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common
import torch
import torch.nn.functional as F


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="../shared/data/ESC-50", help="ESC-50 folder or 'bundled'")
    p.add_argument("--dataset", default="esc10")
    p.add_argument("--split", default="fold:5")
    p.add_argument("--profile", default="cpu", help="victim training profile (default cpu)")
    # cpu-tanh: its G step scores the clip-level victim, which the parts replay step by step
    # (step_anatomy.gan_anatomy); the default recipe's window view is not replayed in parts.
    p.add_argument(
        "--gan-profile", default="cpu-tanh", help="GAN profile of the step (default cpu-tanh)"
    )
    p.add_argument("--epochs", type=int, default=3, help="whole epochs trained (>= 2)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed GAN steps (median)")
    p.add_argument(
        "--allocator",
        choices=("both", "system", "kept"),
        default="both",
        help="glibc as it comes (system), ssgan's default (kept), or both side by side",
    )
    p.add_argument("--quick", action="store_true", help="bundled clips, tiny settings (seconds)")
    p.add_argument("--out", help="write the figures as JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p


class _Usage:
    """Wall, user and system seconds and minor page faults of named parts, summed."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {}

    @staticmethod
    def now() -> tuple[float, float, float, float]:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), r.ru_utime, r.ru_stime, float(r.ru_minflt)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        a = self.now()
        yield
        b = self.now()
        row = self.parts.setdefault(name, {"wall_s": 0, "user_s": 0, "sys_s": 0, "minflt": 0})
        for key, i in (("wall_s", 0), ("user_s", 1), ("sys_s", 2), ("minflt", 3)):
            row[key] += b[i] - a[i]


def _child(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import step_anatomy

    from ssgan.data import load_dataset, make_split
    from ssgan.io import rng_state, save_checkpoint
    from ssgan.memory import allocator_settings
    from ssgan.models.victim import ClipClassifier
    from ssgan.training.victim import (
        TrainState,
        evaluate_accuracy,
        get_profile,
        make_batch,
        train_victim,
    )
    from ssgan.training.victim_checkpoint import checkpoint_meta, model_weights

    torch.set_num_threads(args.threads)
    usage = _Usage()
    with usage.part("load data"):
        dataset = load_dataset(args.dataset, args.root)
        train, test = make_split(dataset, args.split)
    changes: dict[str, Any] = {
        "epochs": args.epochs,
        "eval_every": args.epochs,
        "checkpoint_every": args.epochs,
        "num_threads": args.threads,
    }
    if args.quick:
        changes.update(fc_width=16, batch_size=4, window=5294)
    config = dataclasses.replace(get_profile(args.profile, "envnet"), **changes)
    run_dir = Path(tempfile.mkdtemp(prefix="epoch_anatomy_"))
    before = usage.now()
    train_victim(config, train, test, run_dir / "victim", progress=False)
    after = usage.now()
    epochs = [
        json.loads(line) for line in (run_dir / "victim" / "metrics.jsonl").read_text().splitlines()
    ]
    whole = {
        "training_epoch_s": epochs[-2]["seconds"],
        "last_epoch_s": epochs[-1]["seconds"],  # + evaluation + checkpoints
        "run": {
            "wall_s": after[0] - before[0],
            "user_s": after[1] - before[1],
            "sys_s": after[2] - before[2],
            "minflt": after[3] - before[3],
        },
    }

    # The same epoch, part by part, on a network in the state training left it in.
    from ssgan.models.victim import load_victim
    from ssgan.training.victim_steps import make_optimizer

    clf, _ = load_victim(run_dir / "victim", checkpoint="last")
    assert isinstance(clf, ClipClassifier)
    net = clf.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    net.requires_grad_(True)  # load_victim hands it back frozen
    opt = make_optimizer(net, config)  # as train_victim makes it
    state = TrainState(net, opt, torch.Generator().manual_seed(1))
    clips, labels = train.waveforms(), torch.tensor(train.labels())
    window = config.resolved_window
    from ssgan.training.victim_steps import bf16_is_fast, epoch_batches

    bf16 = config.bf16 and bf16_is_fast(torch.device("cpu"))
    parts = _Usage()
    for pass_ in range(2):  # the first pass warms up (allocator, kernels); the second counts
        rec = parts if pass_ else _Usage()
        for batch in epoch_batches(len(clips), config.batch_size, state.generator):
            with rec.part("data + augmentation"):
                x = make_batch(
                    [clips[i] for i in batch.tolist()], window, state.generator,
                    gain_db=config.gain_db, stretch=config.time_stretch,
                )  # fmt: skip
                y = labels[batch]
            net.train()
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with rec.part("forward"), ctx:
                logits = net(x)
            with rec.part("loss"):
                loss = F.cross_entropy(logits.float(), y)
            with rec.part("backward"):
                opt.zero_grad(set_to_none=True)
                loss.backward()
            with rec.part("optimiser (fused SGD)"):
                opt.step()
    test_clips, test_labels = test.waveforms(), torch.tensor(test.labels())
    with parts.part("evaluation (10 crops, test fold)"):
        evaluate_accuracy(
            net, test_clips, test_labels, window=window, n_crops=config.n_crops,
            batch_size=config.eval_batch,
        )  # fmt: skip
    ckpt = run_dir / "ckpt"
    ckpt.mkdir()
    with parts.part("checkpoint write (last + best)"):
        meta = checkpoint_meta(config, list(train.class_names), state, 0.0, {})
        save_checkpoint(ckpt, "best", model_weights(net), meta)
        save_checkpoint(
            ckpt, "last", model_weights(net), meta,
            state={"optimizer": opt.state_dict(), "rng": rng_state()},
        )  # fmt: skip
    sizes = {p.name: p.stat().st_size for p in ckpt.iterdir()}
    shutil.rmtree(run_dir)  # ~1 GB of EnvNet checkpoints

    # One GAN step against the trained victim, whole and in parts.
    from ssgan.training.gan import PROFILES as GAN_PROFILES

    gan_args = argparse.Namespace(
        profile=args.gan_profile,
        batch_size=2 if args.quick else None,
        victim_crops=1 if args.quick else GAN_PROFILES[args.gan_profile].victim_crops,
        repeats=args.repeats,
    )
    with usage.part("GAN step anatomy"):
        gan = step_anatomy.gan_anatomy(
            gan_args, clf, [w.float() for w in clips], train.labels(), torch.device("cpu")
        )
    training_parts = (
        "data + augmentation", "forward", "loss", "backward", "optimiser (fused SGD)"
    )  # fmt: skip
    sum_training = sum(parts.parts[k]["wall_s"] for k in training_parts)
    return {
        "allocator": allocator_settings() or "glibc defaults",
        "config": {k: getattr(config, k) for k in ("batch_size", "bf16", "gain_db", "time_stretch")}
        | {"epochs": args.epochs, "n_train": len(clips), "n_test": len(test_clips)},
        "whole": whole,
        "epochs": epochs,
        "parts": parts.parts,
        "sum_training_parts_s": sum_training,
        "epoch_over_parts": whole["training_epoch_s"] / sum_training,
        "sys_share_of_run": whole["run"]["sys_s"]
        / max(whole["run"]["user_s"] + whole["run"]["sys_s"], 1e-9),
        "checkpoint_bytes": sizes,
        "gan_step": {k: gan[k] for k in ("whole_step_s", "sum_of_parts_s", "whole_over_parts")}
        | {"parts_s": gan["parts_s"], "usage": usage.parts["GAN step anatomy"]},
    }


def _print(res: dict[str, Any]) -> None:
    print(f"\nallocator: {res['allocator']}  {res['config']}")
    rows = [{"part": k, **v} for k, v in res["parts"].items()]
    rows.append({"part": "sum of the training parts", "wall_s": res["sum_training_parts_s"]})
    rows.append(
        {"part": "whole training epoch (train_victim)", "wall_s": res["whole"]["training_epoch_s"]}
    )
    rows.append(
        {"part": "last epoch (+ evaluation + checkpoints)", "wall_s": res["whole"]["last_epoch_s"]}
    )
    rows.append({"part": f"whole run, {res['config']['epochs']} epochs", **res["whole"]["run"]})
    cols = [
        ("part", "part", ""),
        ("wall_s", "wall s", ".3g"),
        ("user_s", "user s", ".3g"),
        ("sys_s", "sys s", ".3g"),
        ("minflt", "minor faults", ".0f"),
    ]
    print(common.table(rows, cols))
    print(
        f"  epoch / sum of parts: {res['epoch_over_parts']:.2f} (aim <= 1.25); system time "
        f"{res['sys_share_of_run']:.1%} of the run's CPU time (aim < 5 %)"
    )
    g = res["gan_step"]
    print(
        f"  GAN step: whole {g['whole_step_s']:.3g} s, parts {g['sum_of_parts_s']:.3g} s "
        f"(x{g['whole_over_parts']:.2f}); its usage {g['usage']}"
    )
    print(f"  checkpoint files: {res['checkpoint_bytes']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.root, args.epochs, args.repeats = "bundled", 2, 1
        args.profile = "smoke"
        args.gan_profile = "smoke"
    if args.epochs < 2:
        raise SystemExit("--epochs: at least 2 (a training-only epoch, then the last one)")
    if args.child:
        print("RESULT " + json.dumps(_child(args), default=str))
        return 0
    settings = ("system", "kept") if args.allocator == "both" else (args.allocator,)
    results = {}
    for setting in settings:
        env = dict(os.environ, SSGAN_MALLOC="system" if setting == "system" else "kept")
        cmd = [sys.executable, __file__, "--child", *(argv if argv is not None else sys.argv[1:])]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"child ({setting}) failed:\n{proc.stderr[-3000:]}")
        results[setting] = json.loads(lines[-1][len("RESULT ") :])
        _print(results[setting])
    common.write_json(
        args.out,
        {
            "benchmark": "epoch_anatomy",
            "machine": common.machine_info("cpu"),
            "quick": args.quick,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    common.run_cli(main)
