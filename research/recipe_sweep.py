"""The SSGAN recipe sweep: train generator variants for a fixed step budget, one table.

Each variant is one ``ssgan train gan`` command (the profile plus ``--set`` overrides listed in
``VARIANTS``), so every row can be rerun by hand with the command the table prints. Every run
validates on the held-out tenth of the training split (never the test split), as the CLI does;
the row reports the best validation epoch's ASR and MSNR (chosen as ``train gan`` chooses
``best``), the last epoch's, the wall time of training, and Gaussian noise at the variant's SNR
and one L2 gradient step (FGM) at the same SNR on the same validation clips (what loudness
alone does, and what one victim gradient does).

Usage (from the repository root):
    python research/recipe_sweep.py --victim runs/victim_esc10 --root ../shared/data/ESC-50 \\
        --steps 600 --variants snr30 snr30-unfooled --work runs/sweep --out results/sweep.json

Runs already finished in ``--work`` are read back, not retrained, so the table can grow one
variant at a time and a killed sweep resumes (``--resume`` continues an unfinished run).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

# The cpu profile is the exact-SNR generator, no D, a window at a random offset in the 1.6 s
# crop; _SNR repeats it so that a row reads the same if the profile changes.
_SNR = ["g_output=snr", "gamma=0", "beta=0", "margin=5", "victim_view=windows"]
_FRONT_CLIP = [*_SNR, "snr_db=30", "g_front=true", "segment_seconds=5", "victim_view=clip",
               "victim_crops=5", "batch_size=4"]  # fmt: skip
VARIANTS: dict[str, tuple[str, list[str]]] = {
    # The old default: tanh output bounded at 0.01, SNR hinge at 30 dB, D on, clip victim.
    "cpu-tanh": ("cpu-tanh", []),
    "snr30": ("cpu", [*_SNR, "snr_db=30"]),
    "snr30-unfooled": ("cpu", [*_SNR, "snr_db=30", "adv_unfooled_only=true"]),
    "snr30-k10": ("cpu", [*_SNR, "snr_db=30", "margin=10"]),
    "snr30-crops4": ("cpu", [*_SNR, "snr_db=30", "victim_crops=4"]),
    "snr30-long": ("cpu", [*_SNR, "snr_db=30", "crop_seconds=3.2", "victim_crops=2"]),
    # Whole 5 s clips through the attack's own segmentation, scored by the clip victim (5 of its
    # evenly spaced crops): the test-time function itself, at 4 clips a step.
    "snr30-wholeclip": (
        "cpu",
        [
            *_SNR,
            "snr_db=30",
            "crop_seconds=5",
            "victim_view=clip",
            "victim_crops=5",
            "batch_size=4",
        ],
    ),
    "snr30-ctx": ("cpu", [*_SNR, "snr_db=30", "g_context=true"]),
    # G also reads the victim's input gradient (2 crops) and starts as the L2 FGM at 30 dB.
    "snr30-grad": ("cpu", [*_SNR, "snr_db=30", "g_grad=true"]),
    # The same, its margin on the clip victim with 2 crops (the test-time function's view).
    "snr30-grad-clip": (
        "cpu",
        [*_SNR, "snr_db=30", "g_grad=true", "victim_view=clip", "victim_crops=2"],
    ),
    "snr30-ch16": ("cpu", [*_SNR, "snr_db=30", "g_channels=16"]),
    "snr30-lr3e-4": ("cpu", [*_SNR, "snr_db=30", "lr=3e-4"]),
    "snr30-d": ("cpu", [*_SNR, "snr_db=30", "gamma=1"]),
    "snr30-clip": ("cpu", [*_SNR, "snr_db=30", "victim_view=clip"]),
    # Receptive field: the default G sees 22 ms of input per output sample (1 + 2 stride-4
    # stages, kernel-3 blocks); the victim classifies 1.5 s windows. 4 stages and kernel-9
    # blocks see 1.08 s at about the same cost a step.
    "snr30-rf1s": ("cpu", [*_SNR, "snr_db=30", "g_down=4", "g_block_kernel=9"]),
    # A learned universal waveform inside G (docs/notebook/recipe.md, fifth sweep).
    "snr30-pattern": ("cpu", [*_SNR, "snr_db=30", "g_pattern=true"]),
    "snr30-front": ("cpu", [*_SNR, "snr_db=30", "g_front=true"]),
    # The front-end G trained on whole 5 s clips as one segment (its SNR per clip), scored by
    # the clip victim on 5 evenly spaced crops: the test-time function, 4 clips a step.
    "snr30-front-clip": ("cpu", _FRONT_CLIP),
    # The same with a wider, deeper u: 128 wide, 5 dilated layers (1.25 s of frames).
    "snr30-front-clip-deep": ("cpu", [*_FRONT_CLIP, "g_channels=16", "g_blocks=6"]),
    # The same whole clips, scored by the window network on 4 windows at random offsets (a
    # later --set wins).
    "snr30-front-clipwin": ("cpu", [*_FRONT_CLIP, "victim_view=windows", "victim_crops=4"]),
    # G as a complex mask on the input's own STFT (docs/notebook/recipe.md, eighth sweep): on the
    # recipe's 1.6 s crops, and on whole 5 s clips scored as the front-end G's clip variant.
    "snr30-spectral": ("cpu", [*_SNR, "snr_db=30", "g_spectral=true"]),
    "snr30-spectral-clip": ("cpu", [*_FRONT_CLIP, "g_front=false", "g_spectral=true"]),
    # A curriculum on the SNR: the front-end G on whole clips trained at 20 dB in its first 100
    # steps, 25 dB in the next, 30 dB from step 200 (validated at 30 dB throughout).
    "snr30-front-clip-ramp": ("cpu", [*_FRONT_CLIP, "snr_start_db=20", "snr_ramp_epochs=2"]),
    "snr25": ("cpu", [*_SNR, "snr_db=25"]),
    "snr20": ("cpu", [*_SNR, "snr_db=20"]),
    "loud30-w1": ("cpu", [*_SNR, "snr_db=30", "loudness_range_db=10", "loudness_weight=1"]),
    "loud30-w03": ("cpu", [*_SNR, "snr_db=30", "loudness_range_db=10", "loudness_weight=0.3"]),
}


def _command(args: argparse.Namespace, name: str, run_dir: Path) -> list[str]:
    profile, overrides = VARIANTS[name]
    steps_per_epoch = args.eval_every
    epochs = max(1, math.ceil(args.steps / steps_per_epoch))
    sets = [*overrides, f"steps_per_epoch={steps_per_epoch}", f"epochs={epochs}",
            f"lr_halve_every={max(1, epochs // 2)}"]  # fmt: skip
    cmd = ["ssgan", "train", "gan", "--victim", str(args.victim), "--dataset", args.dataset,
           "--root", str(args.root), "--split", args.split, "--profile", profile,
           "--out", str(run_dir)]  # fmt: skip
    for item in sets:
        cmd += ["--set", item]
    return cmd


def _val_set(args: argparse.Namespace) -> Any:
    """The generator's validation clips, as ``ssgan train gan`` holds them out."""
    from ssgan.data import bundled_root, load_dataset, make_split

    root = bundled_root() if str(args.root) == "bundled" else args.root
    train, _ = make_split(load_dataset(args.dataset, root), args.split)
    return make_split(train, "paper", seed=1)[1]


def _quietest(args: argparse.Namespace, run_dir: Path) -> dict[str, float]:
    """Validation ASR / MSNR of the best generator with the quietest-scale search."""
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.metrics import attack_success_rate, msnr_db, snr_db, success_mask
    from ssgan.models.victim import load_victim

    victim, _ = load_victim(args.victim, checkpoint=args.victim_checkpoint)
    attack = SSGANAttack.from_run(run_dir, quietest=True)
    ys, clean, adv, snrs = [], [], [], []
    val = _val_set(args)
    for x, y in zip(val.waveforms(), val.labels(), strict=True):
        x, yt = x[None].float(), torch.tensor([y])
        x_adv = attack(victim, x, yt)
        with torch.no_grad():
            clean.append(int(victim(x).argmax(1)))
            adv.append(int(victim(x_adv).argmax(1)))
        ys.append(y)
        snrs.append(float(snr_db(x, x_adv)))
    y_t, c_t, a_t = torch.tensor(ys), torch.tensor(clean), torch.tensor(adv)
    return {
        "asr": attack_success_rate(y_t, c_t, a_t),
        "msnr_db": msnr_db(torch.tensor(snrs), success_mask(y_t, c_t, a_t)),
    }


def _reference_asr(
    args: argparse.Namespace,
    kind: str,
    snr: float | None,
    segment_seconds: float,
    seed: int = 0,
) -> float | None:
    """Validation ASR of a reference direction at exactly ``snr`` dB per ``segment_seconds``
    segment (the segments the variant's generator perturbs): ``kind="noise"``, Gaussian noise
    (what loudness alone does); ``kind="fgm"``, the victim's cross-entropy input gradient on
    the clip (one L2 gradient step, what an untrained gradient-informed G does)."""
    if snr is None:
        return None
    from ssgan.data import segments as sip
    from ssgan.losses import input_gradient
    from ssgan.metrics import attack_success_rate
    from ssgan.models.generators.base import scale_to_snr
    from ssgan.models.victim import load_victim

    victim, _ = load_victim(args.victim, checkpoint=args.victim_checkpoint)
    for p in victim.parameters():
        p.requires_grad_(False)
    val = _val_set(args)
    rng = torch.Generator().manual_seed(seed)
    length = round(segment_seconds * 16000)
    ys, clean, adv = [], [], []
    for x, y in zip(val.waveforms(), val.labels(), strict=True):
        x = x[None].float()
        if kind == "noise":
            direction = torch.randn(x.shape, generator=rng)
        else:
            direction = input_gradient(victim, x, torch.tensor([y]))
        segs = sip.split_segments(x, length)[0]
        d_segs = sip.split_segments(direction, length)[0]
        delta = scale_to_snr(d_segs, segs, snr)
        x_adv = (x + sip.stitch_segments(delta[None], x.shape[1])).clamp(-1, 1)
        with torch.no_grad():
            ys.append(y)
            clean.append(int(victim(x).argmax(1)))
            adv.append(int(victim(x_adv).argmax(1)))
    return attack_success_rate(torch.tensor(ys), torch.tensor(clean), torch.tensor(adv))


def _row(args: argparse.Namespace, name: str, run_dir: Path, wall: float | None) -> dict[str, Any]:
    config = json.loads((run_dir / "config.json").read_text())
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines() if s]
    best = json.loads((run_dir / "best.json").read_text())
    bm, last = best["metrics"], lines[-1]
    snr = config["snr_db"] if config["g_output"] == "snr" else config["pert_target_snr_db"]
    return {
        "variant": name,
        "overrides": VARIANTS[name][1],
        "steps": last["epoch"] * config["steps_per_epoch"],
        "wall_s": wall if wall is not None else sum(m["epoch_s"] for m in lines),
        "best_epoch": best["epoch"],
        "val_asr": bm.get("val/asr"),
        "val_msnr_db": bm.get("val/msnr_db"),
        "last_val_asr": last.get("val/asr"),
        "last_val_msnr_db": last.get("val/msnr_db"),
        "train_fooled_last": last.get("g/fooled"),
        "val_curve": [(m["epoch"], m.get("val/asr")) for m in lines],
        "noise_val_asr": _reference_asr(
            args, "noise", snr if config["g_output"] == "snr" else None, config["segment_seconds"]
        ),
        "fgm_val_asr": _reference_asr(
            args, "fgm", snr if config["g_output"] == "snr" else None, config["segment_seconds"]
        ),
        "quietest_val": _quietest(args, run_dir),
        "command": " ".join(_command(args, name, run_dir)),
    }


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f} %" if pct else f"{v:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| variant | steps | wall s | val ASR | val MSNR dB | last ASR | noise ASR | FGM ASR "
        "| + quietest: ASR | MSNR dB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['variant']} | {r['steps']} | {r['wall_s']:.0f} | {_fmt(r['val_asr'], True)} "
            f"| {_fmt(r['val_msnr_db'])} | {_fmt(r['last_val_asr'], True)} "
            f"| {_fmt(r['noise_val_asr'], True)} | {_fmt(r.get('fgm_val_asr'), True)} "
            f"| {_fmt(r['quietest_val']['asr'], True)} "
            f"| {_fmt(r['quietest_val']['msnr_db'])} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--victim", type=Path, required=True)
    p.add_argument("--victim-checkpoint", default="last")
    p.add_argument("--dataset", default="esc10")
    p.add_argument("--root", type=Path, required=True, help="dataset folder, or 'bundled'")
    p.add_argument("--split", default="fold:5")
    p.add_argument("--steps", type=int, default=600, help="generator steps per variant")
    p.add_argument("--eval-every", type=int, default=100, help="steps between validations")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--work", type=Path, default=Path("runs/sweep"))
    p.add_argument("--out", type=Path, default=None, help="JSON of the rows (and a .md table)")
    p.add_argument("--resume", action="store_true", help="continue unfinished runs")
    args = p.parse_args(argv)
    rows = []
    for name in args.variants:
        run_dir = args.work / name
        wall = None
        done = (run_dir / "metrics.jsonl").exists() and len(
            (run_dir / "metrics.jsonl").read_text().splitlines()
        ) >= math.ceil(args.steps / args.eval_every)
        if not done:
            cmd = _command(args, name, run_dir)
            if args.resume and (run_dir / "last.json").exists():
                cmd.append("--resume")
            print("+", " ".join(cmd), flush=True)
            t0 = time.perf_counter()
            exe = [sys.executable, "-m", "ssgan", *cmd[1:]]
            subprocess.run(exe, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
        rows.append(_row(args, name, run_dir, wall))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "command"}), flush=True)
    print(table(rows))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
