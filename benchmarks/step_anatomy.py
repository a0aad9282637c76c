"""Anatomy of one training step: where the time goes, against the whole step and the machine.

GAN step (``ssgan.training.gan``): the whole step -- ``random_crops`` from decoded clips in
memory, ``d_step``, ``g_step`` against the victim run wrapped as ``ClipClassifier`` (with
``--victim-crops`` crops, the ``victim_crops`` option) -- is timed, then the same computation is
replayed piece by piece: data, G forward (no grad, for D), D forward / backward / Adam step, G
forward, D forward, victim forward, the loss, D backward, victim backward, G backward, G's Adam
step. The backward passes are separated by cutting the graph at ``x_adv`` (a leaf per network);
the gradients are the same as ``g_step``'s. Target: the whole step within 10 % of the sum of
its parts, the data pipeline never the bottleneck.

Victim step (``ssgan.training.victim.train_step``): whole step, then data (``make_batch``),
forward (bf16 autocast if the run used it), loss, backward, fused SGD step.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls,
forward and backward); achieved GFLOP/s = counted FLOPs / measured seconds, beside a bare
convolution micro-benchmark: EnvNet's conv2 (40 -> 40 channels, kernel (1, 8), 24,007 samples,
batch 16) in channels_last, float32 and bf16, forward and forward + backward. Target: training
convolutions at >= 60 % of the micro-benchmark.

    python benchmarks/step_anatomy.py --victim runs/victim --root ../shared/data/ESC-50 \\
        --victim-crops 2 --out bench/step_anatomy.json
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import common
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p, generator=False)
    p.add_argument(
        "--profile", default="cpu-tanh", help="GAN training profile with D (default cpu-tanh)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="GAN batch (profile's)")
    p.add_argument("--victim-crops", type=int, default=None, help="victim_crops of the G step")
    p.add_argument("--victim-batch", type=int, default=32, help="victim training batch")
    p.add_argument("--repeats", type=int, default=5, help="timed steps (median)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.batch_size = 2
        args.victim_batch = 2
        args.repeats = 1
        if args.victim_crops is None:
            args.victim_crops = 1
    with common.num_threads(args.threads):
        payload = run(args)
    common.write_json(args.out, payload)
    return 0


class _Clock:
    """Accumulates named part timings of one replayed step (device synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.parts: dict[str, list[float]] = {}
        self._t = 0.0

    def start(self) -> None:
        common.sync(self.device)
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        common.sync(self.device)
        now = time.perf_counter()
        self.parts.setdefault(name, []).append(now - self._t)
        self._t = now

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.parts.items()}


def count_flops(fn: Callable[[], object]) -> tuple[float, float]:
    """``(all FLOPs, convolution FLOPs)`` of one call of ``fn`` (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    conv = 0
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        if "convolution" in str(op):
            conv += n
    return float(counter.get_total_flops()), float(conv)


# ----------------------------------------------------------------------------- micro-benchmark


def conv_micro(device: torch.device, quick: bool, repeats: int) -> list[dict[str, Any]]:
    """EnvNet conv2 alone: GFLOP/s forward and forward+backward, fp32 and bf16, channels_last."""
    batch, time_in = (2, 4007) if quick else (16, 24_007)
    x = torch.randn(batch, 40, 1, time_in, device=device).contiguous(
        memory_format=torch.channels_last
    )
    w = torch.randn(40, 40, 1, 8, device=device).contiguous(memory_format=torch.channels_last)
    fwd_flops = 2.0 * batch * 40 * 40 * 8 * (time_in - 7)
    rows = []
    precisions = ["fp32"] + (["bf16"] if common.bf16_supported() or device.type == "cuda" else [])
    for prec in precisions:
        ctx = (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if prec == "bf16"
            else contextlib.nullcontext()
        )
        xg = x.clone().requires_grad_(True)
        wg = w.clone().requires_grad_(True)

        def fwd(ctx: Any = ctx) -> None:
            with torch.no_grad(), ctx:
                F.conv2d(x, w)

        def fwd_bwd(ctx: Any = ctx, xg: torch.Tensor = xg, wg: torch.Tensor = wg) -> None:
            with ctx:
                y = F.conv2d(xg, wg)
            y.float().sum().backward()

        for what, fn, flops in (("fwd", fwd, fwd_flops), ("fwd+bwd", fwd_bwd, 3 * fwd_flops)):
            t = common.bench(fn, device=device, warmup=1, repeats=repeats)
            rows.append(
                {
                    "part": f"conv2 {what} {prec}",
                    "seconds": t["median_s"],
                    "gflop": flops / 1e9,
                    "gflops": flops / t["median_s"] / 1e9,
                }
            )
    return rows


# ----------------------------------------------------------------------------- GAN step


def gan_anatomy(
    args: argparse.Namespace,
    victim: Any,
    clips: list[torch.Tensor],
    labels: list[int],
    device: torch.device,
) -> dict[str, Any]:
    import dataclasses

    from ssgan.data.segments import random_crops
    from ssgan.losses import generator_loss
    from ssgan.models.victim import ClipClassifier, victim_frozen
    from ssgan.training.gan import PROFILES, d_step, g_step, make_state

    config = PROFILES[args.profile]
    changes: dict[str, Any] = {"victim_crops": args.victim_crops}
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    config = dataclasses.replace(config, **changes)
    state = make_state(config, device=device)
    train_victim = victim
    if config.victim_crops is not None and isinstance(victim, ClipClassifier):
        train_victim = ClipClassifier(
            victim.net,
            window=victim.window,
            n_crops=config.victim_crops,
            crop_batch=victim.crop_batch,
        )
    length = config.segment_samples
    rng = torch.Generator().manual_seed(0)
    n = len(clips)

    def batch_idx() -> list[int]:
        return torch.randint(0, n, (config.batch_size,), generator=rng).tolist()

    def whole() -> None:
        idx = batch_idx()
        x = random_crops([clips[i] for i in idx], length, generator=rng).to(device)
        y = torch.tensor([labels[i] for i in idx], device=device)
        d_step(state, x)
        g_step(state, x, y, train_victim)

    t_whole = common.bench(whole, device=device, warmup=1, repeats=args.repeats)
    flops_total, flops_conv = count_flops(whole)

    clock = _Clock(device)
    d_params = list(state.D.parameters())

    def parts() -> None:
        clock.start()
        idx = batch_idx()
        x = random_crops([clips[i] for i in idx], length, generator=rng).to(device)
        y = torch.tensor([labels[i] for i in idx], device=device)
        clock.lap("data (random_crops)")
        # D step (labels as d_step draws them; their cost is negligible)
        real = torch.full((x.shape[0],), 0.95, device=device)
        fake = torch.full((x.shape[0],), 0.05, device=device)
        state.D.train()
        with torch.no_grad():
            x_adv = (x + state.G(x).float()).clamp(-1.0, 1.0)
        clock.lap("D step: G fwd (no grad)")
        d_real, d_fake = state.D(x), state.D(x_adv)
        from ssgan.losses import discriminator_loss

        loss_d = discriminator_loss(d_real, d_fake, real, fake)
        clock.lap("D step: D fwd x2 + loss")
        state.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        clock.lap("D step: D bwd")
        state.opt_D.step()
        clock.lap("D step: Adam")
        # G step, the graph cut at x_adv so that each network's backward is timed alone
        state.G.train()
        with victim_frozen(train_victim):
            for p in d_params:
                p.requires_grad_(False)
            try:
                delta = state.G(x).float()
                clock.lap("G step: G fwd")
                dl = delta.detach().requires_grad_(True)
                xa_d = (x + dl).detach().requires_grad_(True)
                xa_v = xa_d.detach().clone().requires_grad_(True)
                d_out = state.D(xa_d).float()
                clock.lap("G step: D fwd")
                logits = train_victim(xa_v).float()
                clock.lap("G step: victim fwd")
                loss, _ = generator_loss(
                    d_out,
                    logits,
                    y,
                    dl,
                    alpha=config.alpha,
                    beta=config.beta,
                    margin=config.margin,
                    targeted=False,
                    x=x,
                    target_snr_db=config.pert_target_snr_db,
                )
                g_d, g_l, g_dl = torch.autograd.grad(loss, [d_out, logits, dl])
                clock.lap("G step: loss fwd+bwd")
                (gx_d,) = torch.autograd.grad(d_out, xa_d, g_d)
                clock.lap("G step: D bwd")
                (gx_v,) = torch.autograd.grad(logits, xa_v, g_l)
                clock.lap("G step: victim bwd")
                state.opt_G.zero_grad(set_to_none=True)
                delta.backward(gx_d + gx_v + g_dl)
                clock.lap("G step: G bwd")
                state.opt_G.step()
                clock.lap("G step: Adam")
            finally:
                for p in d_params:
                    p.requires_grad_(True)

    parts()  # warm-up
    clock.parts.clear()
    for _ in range(args.repeats):
        parts()
    med = clock.medians()
    total_parts = sum(med.values())
    victim_s = med["G step: victim fwd"] + med["G step: victim bwd"]

    # FLOPs of the victim's forward + backward alone (the dominant part)
    x0 = random_crops(clips[: config.batch_size], length, generator=rng).to(device)

    def victim_fb() -> None:
        with victim_frozen(train_victim):
            xv = x0.clone().requires_grad_(True)
            train_victim(xv).float().logsumexp(1).sum().backward()

    v_flops, _ = count_flops(victim_fb)
    return {
        "config": {
            "profile": args.profile,
            "batch_size": config.batch_size,
            "segment_seconds": config.segment_seconds,
            "victim_crops": config.victim_crops,
            "bf16_G": config.bf16,
        },
        "whole_step_s": t_whole["median_s"],
        "sum_of_parts_s": total_parts,
        "whole_over_parts": t_whole["median_s"] / total_parts,
        "parts_s": med,
        "data_share": med["data (random_crops)"] / total_parts,
        "victim_share": victim_s / total_parts,
        "step_gflop": flops_total / 1e9,
        "step_conv_gflop": flops_conv / 1e9,
        "step_gflops": flops_total / t_whole["median_s"] / 1e9,
        "victim_fwd_bwd_gflop": v_flops / 1e9,
        "victim_fwd_bwd_s": victim_s,
        "victim_gflops": v_flops / victim_s / 1e9 if victim_s > 0 else None,
    }


# ----------------------------------------------------------------------------- victim step


def victim_anatomy(
    args: argparse.Namespace,
    meta: dict[str, Any],
    clips: list[torch.Tensor],
    labels: list[int],
    device: torch.device,
) -> dict[str, Any]:
    from ssgan.models.envnet import build_model
    from ssgan.training.victim import TrainState, make_batch, train_step

    cfg = meta.get("config", {})
    model = meta["model"]
    bf16 = bool(cfg.get("bf16", False))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_model(
            model["name"],
            int(model["n_classes"]),
            window=int(model["window"]),
            fc_width=int(model.get("fc_width", 4096)),
        )
    net = net.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.SGD(
        net.parameters(),
        lr=1e-3,
        momentum=0.9,
        weight_decay=5e-4,
        nesterov=True,
        fused=device.type in ("cpu", "cuda"),
    )
    rng = torch.Generator().manual_seed(0)
    state = TrainState(net, opt, rng)
    window = int(model["window"])
    gain_db = float(cfg.get("gain_db", 0.0))
    stretch = float(cfg.get("time_stretch", 1.0))
    lab = torch.tensor(labels)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(clips), (args.victim_batch,), generator=rng)
        x = make_batch(
            [clips[i] for i in idx.tolist()], window, rng, gain_db=gain_db, stretch=stretch
        )
        return x.to(device), lab[idx].to(device)

    def whole() -> None:
        x, y = batch()
        train_step(state, x, y, lr=1e-3, bf16=bf16)

    t_whole = common.bench(whole, device=device, warmup=1, repeats=args.repeats)
    flops, conv = count_flops(whole)
    clock = _Clock(device)

    def parts() -> None:
        clock.start()
        x, y = batch()
        clock.lap("data (make_batch)")
        net.train()
        ctx = (
            torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        )
        with ctx:
            logits = net(x)
        clock.lap("fwd")
        loss = F.cross_entropy(logits.float(), y)
        clock.lap("loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clock.lap("bwd")
        opt.step()
        clock.lap("SGD (fused)")

    parts()
    clock.parts.clear()
    for _ in range(args.repeats):
        parts()
    med = clock.medians()
    total = sum(med.values())
    compute = med["fwd"] + med["loss"] + med["bwd"]
    return {
        "config": {
            "model": model["name"],
            "batch_size": args.victim_batch,
            "bf16": bf16,
            "window": window,
            "fc_width": model.get("fc_width"),
            "gain_db": gain_db,
            "time_stretch": stretch,
        },
        "whole_step_s": t_whole["median_s"],
        "sum_of_parts_s": total,
        "whole_over_parts": t_whole["median_s"] / total,
        "parts_s": med,
        "data_share": med["data (make_batch)"] / total,
        "step_gflop": flops / 1e9,
        "step_conv_gflop": conv / 1e9,
        "step_gflops": flops / t_whole["median_s"] / 1e9,
        "fwd_bwd_gflops": flops / compute / 1e9 if compute > 0 else None,
    }


# ----------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ssgan.data import make_split
    from ssgan.models.victim import load_victim

    v_dir, _ = common.ensure_runs(
        args.victim,
        None,
        work=args.work,
        need_generator=False,
        victim_set=args.victim_set,
    )
    device = torch.device(args.device)
    victim, meta = load_victim(v_dir, device, checkpoint=args.checkpoint)
    dataset, _ = common.victim_test_set(meta, args.root)
    train, _ = make_split(dataset, str(meta.get("split") or "fold:5"))
    clips = [w.float() for w in train.waveforms()]  # decoded once, in memory
    labels = train.labels()

    micro = conv_micro(device, args.quick, args.repeats)
    gan = gan_anatomy(args, victim, clips, labels, device)
    vic = victim_anatomy(args, meta, clips, labels, device)
    best = {
        p: max(r["gflops"] for r in micro if r["part"].endswith(f"fwd+bwd {p}"))
        for p in ("fp32", "bf16")
        if any(r["part"].endswith(p) for r in micro)
    }
    ref = best.get("bf16" if vic["config"]["bf16"] else "fp32")
    vic["fwd_bwd_over_micro"] = (
        vic["fwd_bwd_gflops"] / ref if ref and vic["fwd_bwd_gflops"] else None
    )
    ref32 = best.get("fp32")
    gan["victim_over_micro_fp32"] = (
        gan["victim_gflops"] / ref32 if ref32 and gan["victim_gflops"] else None
    )

    print(f"device {args.device}, {torch.get_num_threads()} threads, victim {v_dir}")
    print("\nconvolution micro-benchmark (EnvNet conv2, channels_last):")
    print(
        common.table(
            micro,
            [
                ("part", "part", ""),
                ("seconds", "s", ".4g"),
                ("gflop", "GFLOP", ".3g"),
                ("gflops", "GFLOP/s", ".1f"),
            ],
        )
    )
    for title, res in (("GAN step", gan), ("victim training step", vic)):
        rows = [
            {"part": k, "seconds": v, "share": v / res["sum_of_parts_s"]}
            for k, v in res["parts_s"].items()
        ]
        rows.append({"part": "sum of parts", "seconds": res["sum_of_parts_s"], "share": 1.0})
        rows.append(
            {"part": "whole step", "seconds": res["whole_step_s"], "share": res["whole_over_parts"]}
        )
        print(f"\n{title} {res['config']}:")
        print(
            common.table(
                rows, [("part", "part", ""), ("seconds", "s", ".4g"), ("share", "share", ".1%")]
            )
        )
        print(
            f"  step {res['step_gflop']:.3g} GFLOP ({res['step_conv_gflop']:.3g} conv) -> "
            f"{res['step_gflops']:.1f} GFLOP/s over the whole step"
        )
    print(
        f"  victim fwd+bwd in the GAN step: {gan['victim_gflops']:.1f} GFLOP/s "
        f"({gan['victim_over_micro_fp32']:.0%} of the fp32 micro-benchmark)"
    )
    # The bf16 micro-benchmark is skipped on CPUs without native bfloat16: no ratio then.
    ratio = vic["fwd_bwd_over_micro"]
    share = "n/a" if ratio is None else f"{ratio:.0%}"
    print(
        f"  victim training fwd+bwd: {vic['fwd_bwd_gflops']:.1f} GFLOP/s "
        f"({share} of the micro-benchmark, same precision)"
    )
    return {
        "benchmark": "step_anatomy",
        "machine": common.machine_info(args.device),
        "victim_run": str(v_dir),
        "quick": args.quick,
        "micro": micro,
        "gan_step": gan,
        "victim_step": vic,
        "targets": {
            "gan_whole_within_10pct": abs(gan["whole_over_parts"] - 1) <= 0.10,
            "victim_whole_within_10pct": abs(vic["whole_over_parts"] - 1) <= 0.10,
            "victim_conv_ge_60pct_micro": (vic["fwd_bwd_over_micro"] or 0) >= 0.6,
        },
    }


if __name__ == "__main__":
    common.run_cli(main)
