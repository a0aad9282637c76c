"""Attack cost: seconds per clip for SSGAN and its peers, with ASR and MSNR on the same clips.

One run attacks the same test clips (``--clips`` spread evenly over the victim's test split) with
SSGAN, FGSM, PGD-10, PGD-100, C&W and a universal perturbation (Abdoli et al.'s penalty method,
fitted here on a few training clips, or loaded with ``--uap DIR``), each through
``ssgan.evaluation.evaluate_attack`` (ASR = N_success / N_right, MSNR over successes; the time of
each ``attack(...)`` call, the first batch excluded as warm-up). It prints a table and the ratio
PGD-100 / SSGAN, the issue's target being >= 1000 at equal or better ASR and MSNR.

    python benchmarks/attack_cost.py --victim runs/victim --generator runs/gan \\
        --root ../shared/data/ESC-50 --clips 10 --out bench/attack_cost.json

Cost on 2 CPU cores: PGD-100 and C&W (100 steps) on the real EnvNet take ~40 s a clip each, so
``--clips 10`` is ~15 minutes; ``--quick`` (1 clip, few steps) is for tests only.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import common
import torch

logger = logging.getLogger("attack_cost")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p)
    p.add_argument("--clips", type=int, default=10, help="test clips to attack (default 10)")
    p.add_argument("--batch-size", type=int, default=1, help="clips per attack call (default 1)")
    p.add_argument("--eps", type=float, default=0.002, help="Linf eps of FGSM / PGD")
    p.add_argument("--pgd-long-steps", type=int, default=100, help="steps of the long PGD")
    p.add_argument("--cw-steps", type=int, default=100, help="Adam steps of C&W per search step")
    p.add_argument("--cw-search", type=int, default=1, help="C&W binary-search steps")
    p.add_argument("--uap", default=None, help="a saved universal perturbation (attack dir)")
    p.add_argument("--uap-fit-clips", type=int, default=16, help="training clips to fit the UAP")
    p.add_argument("--uap-epochs", type=int, default=5, help="epochs of the quick UAP fit")
    p.add_argument(
        "--only", default=None, help="comma-separated subset of: " + ", ".join(ATTACK_NAMES)
    )
    return p


ATTACK_NAMES = ("ssgan", "ssgan-bf16", "fgsm", "pgd-10", "pgd-long", "cw", "uap")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.clips = min(args.clips, 1)
        args.pgd_long_steps = min(args.pgd_long_steps, 3)
        args.cw_steps = min(args.cw_steps, 3)
        args.cw_search = 1
        args.uap_fit_clips = min(args.uap_fit_clips, 2)
        args.uap_epochs = 1
    with common.num_threads(args.threads):
        payload = run(args)
    common.write_json(args.out, payload)
    return 0


def _trained(run_dir: Any, checkpoint: str) -> dict[str, Any]:
    """Epochs and training settings of the generator checkpoint that was attacked with."""
    import json
    from pathlib import Path

    meta = json.loads((Path(run_dir) / f"{checkpoint}.json").read_text(encoding="utf-8"))
    return {"checkpoint": checkpoint, "epoch": meta.get("epoch"), "config": meta.get("config")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ssgan.attacks import CW, FGSM, PGD, UAPPenalty
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.data import make_split
    from ssgan.evaluation import evaluate_attack
    from ssgan.models.victim import load_victim

    only = set(ATTACK_NAMES if args.only is None else args.only.split(","))
    unknown = only - set(ATTACK_NAMES)
    if unknown:
        raise SystemExit(f"--only: unknown {sorted(unknown)}; known {', '.join(ATTACK_NAMES)}")
    v_dir, g_dir = common.ensure_runs(
        args.victim, args.generator, work=args.work, victim_set=args.victim_set,
        gan_set=args.gan_set, need_generator=bool(only & {"ssgan", "ssgan-bf16"}),
    )  # fmt: skip
    victim, meta = load_victim(v_dir, args.device, checkpoint=args.checkpoint)
    dataset, test = common.victim_test_set(meta, args.root)
    clips = test.subset(common.spread(len(test), args.clips))
    seconds_audio = sum(w.numel() for w in clips.waveforms()) / 16000 / len(clips)

    attacks: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    if "ssgan" in only:
        assert g_dir is not None
        attacks["ssgan"] = SSGANAttack.from_run(
            g_dir, device=args.device, checkpoint=args.checkpoint
        )
    if "ssgan-bf16" in only and (common.bf16_supported() or args.device.startswith("cuda")):
        assert g_dir is not None
        attacks["ssgan-bf16"] = SSGANAttack.from_run(
            g_dir, device=args.device, checkpoint=args.checkpoint, precision="bfloat16"
        )
    if "fgsm" in only:
        attacks["fgsm"] = FGSM(eps=args.eps)
    if "pgd-10" in only:
        attacks["pgd-10"] = PGD(eps=args.eps, steps=10)
    if "pgd-long" in only:
        attacks[f"pgd-{args.pgd_long_steps}"] = PGD(eps=args.eps, steps=args.pgd_long_steps)
    if "cw" in only:
        attacks["cw"] = CW(steps=args.cw_steps, binary_search_steps=args.cw_search)
    if "uap" in only:
        if args.uap:
            uap = UAPPenalty.load(args.uap)
            notes["uap"] = {"loaded": str(args.uap)}
        else:
            train, _ = make_split(dataset, str(meta.get("split") or "fold:5"))
            fit_set = train.subset(range(min(args.uap_fit_clips, len(train))))
            uap = UAPPenalty(max_epochs=args.uap_epochs)
            t0 = time.perf_counter()
            uap.fit(victim, fit_set.waveforms(), fit_set.labels())
            notes["uap"] = {
                "fit_seconds": time.perf_counter() - t0,
                "fit_clips": len(fit_set),
                "fit_epochs": args.uap_epochs,
                "fooling_rate_fit": getattr(uap, "fooling_rate", None),
            }
        attacks["uap"] = uap

    rows: list[dict[str, Any]] = []
    for name, attack in attacks.items():
        logger.info("attacking %d clips with %s", len(clips), name)
        t0 = time.perf_counter()
        result = evaluate_attack(attack, victim, clips, batch_size=args.batch_size)
        s = result.summary
        config = attack.config() if hasattr(attack, "config") else {}
        if name.startswith("ssgan"):
            # `profile` / `epochs` configure SSGANAttack.fit, which a loaded generator never ran
            config = {k: v for k, v in config.items() if k not in ("profile", "epochs")}
        rows.append(
            {
                "attack": name,
                "config": config,
                "seconds_per_clip": s["seconds_per_example"],
                "timing_warm": s["timing_warm"],
                "acc": s["acc"],
                "asr": s["asr"],
                "msnr_db": s["msnr_db"],
                "mean_snr_db": s["mean_snr_db"],
                "n": s["n"],
                "n_right": s["n_right"],
                "n_success": s["n_success"],
                "wall_seconds": time.perf_counter() - t0,
            }
        )
    by = {r["attack"]: r for r in rows}
    long_name = f"pgd-{args.pgd_long_steps}"
    ratio = None
    target: dict[str, Any] = {}
    if "ssgan" in by and long_name in by:
        s, p = by["ssgan"], by[long_name]
        ratio = p["seconds_per_clip"] / s["seconds_per_clip"]
        target = {
            "ratio_pgd_long_over_ssgan": ratio,
            "ratio_ok": ratio >= 1000,
            "asr_ok": _ge(s["asr"], p["asr"]),
            "msnr_ok": _ge(s["msnr_db"], p["msnr_db"]),
        }
    for r in rows:
        r["x_ssgan_cost"] = (
            r["seconds_per_clip"] / by["ssgan"]["seconds_per_clip"] if "ssgan" in by else None
        )

    print(
        f"attack cost on {len(clips)} clip(s) of {seconds_audio:.2f} s "
        f"({meta.get('dataset')} {meta.get('split')} test), device {args.device}, "
        f"{torch.get_num_threads()} threads, batch {args.batch_size}"
    )
    print(
        common.table(
            rows,
            [
                ("attack", "attack", ""),
                ("seconds_per_clip", "s/clip", ".4g"),
                ("x_ssgan_cost", "x SSGAN", ".4g"),
                ("asr", "ASR", ".3f"),
                ("msnr_db", "MSNR dB", ".1f"),
                ("mean_snr_db", "SNR dB", ".1f"),
                ("acc", "clean ACC", ".3f"),
            ],
        )
    )
    if ratio is not None:
        print(f"{long_name} / SSGAN cost ratio: {ratio:.0f}x (target >= 1000x) {target}")
    if "uap" in notes:
        print(f"UAP: {notes['uap']} (s/clip is applying it only)")
    return {
        "benchmark": "attack_cost",
        "machine": common.machine_info(args.device),
        "victim_run": str(v_dir),
        "generator_run": str(g_dir) if g_dir else None,
        "generator_trained": _trained(g_dir, args.checkpoint) if g_dir else None,
        "dataset": meta.get("dataset"),
        "split": meta.get("split"),
        "root": args.root,
        "clips": len(clips),
        "clip_seconds": seconds_audio,
        "batch_size": args.batch_size,
        "quick": args.quick,
        "rows": rows,
        "target": target,
        "notes": notes,
    }


def _ge(a: float | None, b: float | None) -> bool | None:
    if a is None or b is None or a != a or b != b:
        return None
    return a >= b


if __name__ == "__main__":
    common.run_cli(main)
