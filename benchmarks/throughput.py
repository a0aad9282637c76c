"""SSGAN generation throughput: seconds of audio attacked per second of wall time.

Times ``SSGANAttack.perturbation`` on whole clips -- segmentation into ``t1`` segments, the
generator on all segments (``chunk_segments`` at a time), stitching and trimming -- in three
modes: a batch of ``--batch`` clips, a single clip (both ``--clip-seconds`` long) and one long
file (``--long-seconds``). Each mode runs in float32 and with ``precision="bfloat16"`` (G
under bf16 autocast; when the CPU has native bf16, or on CUDA), with and without
``torch.inference_mode`` around the call, with 1 and 2 intra-op threads. The figure is
``audio seconds / wall seconds`` ("x real time", median of
``--repeats`` warm calls); the issue's target is >= 1000x in batch mode on 2 CPU cores.

bf16 is only worth having if the attack stays as good: on ``--check-clips`` test clips the victim
classifies ``x + delta`` from the float32 and the bf16 generator, and the script reports ASR and
MSNR of both and the largest difference between the two deltas.

    python benchmarks/throughput.py --generator runs/gan --victim runs/victim --out tp.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
from typing import Any

import common
import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p)
    p.add_argument("--batch", type=int, default=16, help="clips in batch mode (default 16)")
    p.add_argument("--clip-seconds", type=float, default=5.0, help="clip length (ESC: 5 s)")
    p.add_argument("--long-seconds", type=float, default=60.0, help="long-file length")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per setting")
    p.add_argument("--check-clips", type=int, default=10, help="clips for the bf16 ASR check")
    p.add_argument("--thread-counts", default="1,2", help="comma-separated intra-op thread counts")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.batch = min(args.batch, 2)
        args.long_seconds = min(args.long_seconds, 10.0)
        args.repeats = min(args.repeats, 1)
        args.check_clips = min(args.check_clips, 1)
    with common.num_threads(args.threads):
        payload = run(args)
    common.write_json(args.out, payload)
    return 0


def _audio(clips: list[torch.Tensor], n: int, samples: int) -> torch.Tensor:
    """``(n, samples)`` real audio: the test clips cycled, each tiled to ``samples``."""
    rows = []
    for i in range(n):
        c = clips[i % len(clips)]
        rows.append(c.repeat(-(-samples // c.numel()))[:samples])
    return torch.stack(rows)


_PRECISION = {"fp32": "float32", "bf16": "bfloat16"}  # SSGANAttack(precision=...)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.metrics import attack_success_rate, msnr_db, snr_db
    from ssgan.models.victim import load_victim

    v_dir, g_dir = common.ensure_runs(
        args.victim, args.generator, work=args.work, victim_set=args.victim_set,
        gan_set=args.gan_set,
    )  # fmt: skip
    assert g_dir is not None
    device = torch.device(args.device)
    attack = SSGANAttack.from_run(g_dir, device=device, checkpoint=args.checkpoint)
    victim, meta = load_victim(v_dir, device, checkpoint=args.checkpoint)
    _, test = common.victim_test_set(meta, args.root)
    clips = test.waveforms()
    clip_n = round(args.clip_seconds * 16000)
    modes = {
        "batch": _audio(clips, args.batch, clip_n).to(device),
        "single": _audio(clips, 1, clip_n).to(device),
        "long": _audio(clips, 1, round(args.long_seconds * 16000)).to(device),
    }
    precisions = ["fp32"] + (["bf16"] if common.bf16_supported() or device.type == "cuda" else [])
    threads = [int(t) for t in args.thread_counts.split(",") if t]
    if device.type == "cuda":
        threads = [torch.get_num_threads()]

    rows: list[dict[str, Any]] = []
    for mode, prec, inf, n_threads in itertools.product(modes, precisions, (False, True), threads):
        x = modes[mode]

        def call(x: torch.Tensor = x, prec: str = prec, inf: bool = inf) -> None:
            grad = torch.inference_mode() if inf else contextlib.nullcontext()
            attack.precision = _PRECISION[prec]
            with grad:
                attack.perturbation(x)

        with common.num_threads(n_threads):
            t = common.bench(call, device=device, warmup=1, repeats=args.repeats)
        audio_s = x.numel() / 16000
        rows.append(
            {
                "mode": mode,
                "clips": x.shape[0],
                "clip_seconds": x.shape[1] / 16000,
                "precision": prec,
                "inference_mode": inf,
                "threads": n_threads,
                "seconds": t["median_s"],
                "min_seconds": t["min_s"],
                "x_realtime": audio_s / t["median_s"],
                "ms_per_clip": 1000 * t["median_s"] / x.shape[0],
            }
        )

    # bf16 against fp32 on real clips: does the attack stay as good?
    check: dict[str, Any] = {}
    picked = common.spread(len(clips), args.check_clips)
    sub = [clips[i] for i in picked]
    if sub and "bf16" in precisions:
        labels = test.labels()
        y = torch.tensor([labels[i] for i in picked], device=device)
        results = {}
        deltas = {}
        for prec in precisions:
            preds, snrs, clean = [], [], []
            ds = []
            for c in sub:
                x = c[None].to(device)
                attack.precision = _PRECISION[prec]
                with torch.inference_mode():
                    delta = attack.perturbation(x)
                x_adv = (x + delta.float()).clamp(-1, 1)
                with torch.inference_mode():
                    clean.append(int(victim(x).argmax(1)))
                    preds.append(int(victim(x_adv).argmax(1)))
                snrs.append(float(snr_db(x.cpu(), x_adv.cpu())[0]))
                ds.append(delta.float().cpu().reshape(-1))
            clean_t, adv_t = torch.tensor(clean), torch.tensor(preds)
            success = (clean_t == y.cpu()) & (adv_t != y.cpu())
            results[prec] = {
                "asr": attack_success_rate(y.cpu(), clean_t, adv_t),
                "msnr_db": msnr_db(torch.tensor(snrs), success),
            }
            deltas[prec] = torch.cat(ds)
        diff = (deltas["bf16"] - deltas["fp32"]).abs()
        check = {
            "clips": len(sub),
            **{f"{p}_{k}": v for p, r in results.items() for k, v in r.items()},
            "max_abs_delta_diff": float(diff.max()),
            "delta_diff_over_delta_rms": float(
                diff.pow(2).mean().sqrt() / deltas["fp32"].pow(2).mean().sqrt().clamp_min(1e-12)
            ),
        }

    best_batch = max((r for r in rows if r["mode"] == "batch"), key=lambda r: r["x_realtime"])
    print(
        f"SSGAN throughput, t1 = {attack.segment_seconds} s, chunk_segments "
        f"{attack.chunk_segments}, device {args.device}"
    )
    print(
        common.table(
            rows,
            [
                ("mode", "mode", ""),
                ("clips", "clips", "d"),
                ("clip_seconds", "clip s", ".1f"),
                ("precision", "prec", ""),
                ("inference_mode", "inf_mode", ""),
                ("threads", "thr", "d"),
                ("ms_per_clip", "ms/clip", ".2f"),
                ("x_realtime", "x realtime", ".0f"),
            ],
        )
    )
    print(
        f"best batch mode: {best_batch['x_realtime']:.0f}x real time "
        f"({best_batch['precision']}, inference_mode={best_batch['inference_mode']}, "
        f"{best_batch['threads']} threads; target >= 1000x)"
    )
    if check:
        print(f"bf16 vs fp32 on {check['clips']} clip(s): {check}")
    return {
        "benchmark": "throughput",
        "machine": common.machine_info(args.device),
        "victim_run": str(v_dir),
        "generator_run": str(g_dir),
        "segment_seconds": attack.segment_seconds,
        "chunk_segments": attack.chunk_segments,
        "generator_parameters": sum(p.numel() for p in attack.generator.parameters()),
        "quick": args.quick,
        "rows": rows,
        "best_batch_x_realtime": best_batch["x_realtime"],
        "target_ok": best_batch["x_realtime"] >= 1000,
        "bf16_check": check,
    }


if __name__ == "__main__":
    common.run_cli(main)
