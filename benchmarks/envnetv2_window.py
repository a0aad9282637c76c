"""The cost of EnvNet-v2's window at 16 kHz: 24,180 samples (1.51 s) against 66,650 (4.17 s).

The official EnvNet-v2 takes 66,650 samples at 44.1 kHz (1.51 s). At 16 kHz the same duration
is 24,180 samples (our default); keeping the sample count instead (66,650 at 16 kHz = 4.17 s,
longer than most UrbanSound8K clips) makes every layer's map 2.8x longer and the FC input
larger. Per window, this script measures on random weights and inputs:

- ``train step``: forward + backward of a training batch (``--batch``, bf16 autocast where the
  CPU has it, train mode), what an epoch is made of;
- ``10-crop clip``: the clip-level victim (``ClipClassifier``) on one 4 s clip, no gradient,
  float32, what evaluation and every attack's forward pay;
- the FC input size and the parameter count.

The accuracy side of the choice comes from two training runs (docs/results.md).

    python benchmarks/envnetv2_window.py --out benchmarks/results/envnetv2_window.json
"""

from __future__ import annotations

import argparse
from typing import Any

import common
import torch

from ssgan.models.envnet import EnvNetV2
from ssgan.models.victim import ClipClassifier

WINDOWS = (24_180, 66_650)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32, help="training batch (default 32)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per setting (median)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--out", metavar="FILE.json", help="write the results as JSON here")
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    return p


def measure(window: int, args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    fc = 16 if args.quick else 4096
    net = EnvNetV2(10, window=window, fc_width=fc)
    bf16 = common.bf16_supported()
    x = torch.randn(args.batch, window) * 0.1

    def train_step() -> None:
        net.train().zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x).float().logsumexp(1).mean()
        loss.backward()

    victim = ClipClassifier(net, window=window)
    clip = torch.randn(1, 4 * 16_000) * 0.1

    def clip_forward() -> None:
        net.eval()
        with torch.no_grad():
            victim(clip)

    train = common.bench(train_step, repeats=args.repeats)["median_s"]
    infer = common.bench(clip_forward, repeats=args.repeats)["median_s"]
    c, h, w = net.feature_shape
    return {
        "window": window,
        "window_seconds": window / 16_000,
        "fc_input": c * h * w,
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_step_s": train,
        "clip_10crop_s": infer,
        "bf16_train": bf16,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.batch, args.repeats = 2, 1
    with common.num_threads(args.threads):
        rows = [measure(w, args) for w in WINDOWS]
        base = rows[0]
        for r in rows:
            r["train_x"] = r["train_step_s"] / base["train_step_s"]
            r["clip_x"] = r["clip_10crop_s"] / base["clip_10crop_s"]
        print(
            common.table(
                rows,
                [
                    ("window", "window", "d"),
                    ("window_seconds", "s", ".2f"),
                    ("fc_input", "FC in", "d"),
                    ("parameters", "params", "d"),
                    ("train_step_s", f"train step (batch {args.batch}) s", ".3f"),
                    ("train_x", "x", ".2f"),
                    ("clip_10crop_s", "10-crop 4 s clip s", ".3f"),
                    ("clip_x", "x", ".2f"),
                ],
            )
        )
        payload = {
            "benchmark": "envnetv2_window",
            "machine": common.machine_info("cpu"),
            "quick": args.quick,
            "rows": rows,
        }
    common.write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    common.run_cli(main)
