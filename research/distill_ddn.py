"""Amortise the minimum-norm search into the generator: regress G onto cached DDN perturbations.

The query-free generator learns from the victim's margin on one window at a time and plateaus at
9-12 % validation ASR (docs/notebook/recipe.md); DDN finds, per clip, a perturbation that flips the
victim's whole-clip decision (10-crop average) at ~33 dB. This script asks whether G can learn
that mapping from examples: DDN is run once on every training clip (against the victim's own
prediction, so every clip gives a target), and G is trained victim-free to point where DDN
points, ``loss = 1 - cos(G(x_crop), delta_crop)`` on random ``t1``-second crops (G's output is
rescaled to an exact SNR, so only its direction matters). Each step costs a G forward and
backward, no victim.

Every ``--eval-every`` steps the generator is scored as the query-free attack on the held-out
validation clips (the tenth of the training split ``ssgan train gan`` holds out, never the test
split), with the cosine to DDN's perturbations of those clips; the final G is written as a GAN
run (``--work``/G), so ``research/query_budget.py`` can score it with the attack-time steps.

Usage (from the repository root):
    python research/distill_ddn.py --victim runs/victim_esc10 --root ../shared/data/ESC-50 \\
        --steps 2000 --work runs/distill --out docs/notebook/results/distill_ddn.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _splits(args: argparse.Namespace) -> tuple[Any, Any]:
    from ssgan.data import load_dataset, make_split

    train, _ = make_split(load_dataset(args.dataset, args.root), args.split)
    return make_split(train, "paper", seed=1)  # as `ssgan train gan` holds validation out


def ddn_targets(victim: Any, clips: list[Tensor], steps: int, cache: Path) -> list[Tensor]:
    """DDN's perturbation of each clip away from the victim's own prediction (cached)."""
    from ssgan.attacks.ddn import DDN

    if cache.is_file():
        return list(torch.load(cache))
    attack = DDN(steps=steps)
    out: list[Tensor] = []
    start = time.perf_counter()
    for i in range(0, len(clips), 8):
        batch = clips[i : i + 8]
        if len({c.numel() for c in batch}) != 1:  # different lengths: one at a time
            for c in batch:
                x = c[None]
                with torch.no_grad():
                    pred = victim(x).argmax(1)
                out.append((attack(victim, x, pred) - x)[0].detach())
            continue
        x = torch.stack(batch)
        with torch.no_grad():
            pred = victim(x).argmax(1)
        out.extend((attack(victim, x, pred) - x).detach())
        print(f"  DDN {len(out)}/{len(clips)} clips, {time.perf_counter() - start:.0f} s",
              flush=True)  # fmt: skip
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cache)
    return out


def _crops(
    clips: list[Tensor], deltas: list[Tensor], n: int, length: int, rng: torch.Generator
) -> tuple[Tensor, Tensor]:
    xs, ds = [], []
    for _ in range(n):
        i = int(torch.randint(len(clips), (1,), generator=rng))
        span = clips[i].numel() - length
        o = int(torch.randint(span + 1, (1,), generator=rng)) if span > 0 else 0
        x, d = clips[i][o : o + length], deltas[i][o : o + length]
        if x.numel() < length:
            x, d = F.pad(x, (0, length - x.numel())), F.pad(d, (0, length - d.numel()))
        xs.append(x)
        ds.append(d)
    return torch.stack(xs), torch.stack(ds)


def cosine_loss(g: Tensor, d: Tensor) -> Tensor:
    """Mean ``1 - cos`` over the crops where DDN's perturbation is not silent."""
    keep = d.norm(dim=1) > 1e-8
    if not bool(keep.any()):
        return g.sum() * 0.0
    return (1 - F.cosine_similarity(g[keep], d[keep], dim=1)).mean()


def score(G: Any, victim: Any, val: Any, deltas: list[Tensor], seconds: float) -> dict[str, float]:
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.evaluation import evaluate_attack

    G.eval()
    attack = SSGANAttack.from_generator(G, segment_seconds=seconds)
    s = evaluate_attack(attack, victim, val, n_examples=0).summary
    cos = []
    with torch.no_grad():
        for x, d in zip(val.waveforms(), deltas, strict=True):
            p = attack.perturbation(x[None])[0]
            if d.norm() > 0:
                cos.append(float(F.cosine_similarity(p.flatten(), d.flatten(), dim=0)))
    G.train()
    return {"asr": s["asr"], "msnr_db": s["msnr_db"], "acc": s["acc"],
            "val_cos": sum(cos) / max(1, len(cos))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from ssgan.config import apply_overrides
    from ssgan.models.victim import load_victim
    from ssgan.training.gan import PROFILES
    from ssgan.training.gan_checkpoint import save_run
    from ssgan.training.gan_steps import make_state

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--victim", type=Path, required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--dataset", default="esc10")
    p.add_argument("--split", default="fold:5")
    p.add_argument("--ddn-steps", type=int, default=10)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="generator shape, as `ssgan train gan --set` (g_channels=16, g_down=3)",
    )
    p.add_argument("--init", type=Path, default=None, help="start from this GAN run's last G")
    p.add_argument("--work", type=Path, default=Path("runs/distill"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    victim, _ = load_victim(args.victim, checkpoint="last")
    train, val = _splits(args)
    t0 = time.perf_counter()
    train_clips = [w.float() for w in train.waveforms()]
    val_clips = [w.float() for w in val.waveforms()]
    cache = args.work / f"ddn{args.ddn_steps}"
    train_d = ddn_targets(victim, train_clips, args.ddn_steps, cache / "train.pt")
    val_d = ddn_targets(victim, val_clips, args.ddn_steps, cache / "val.pt")
    ddn_seconds = time.perf_counter() - t0

    config = apply_overrides(PROFILES["cpu"], args.settings)
    state = make_state(config)
    G = state.G
    if args.init is not None:
        from ssgan.attacks.ssgan import SSGANAttack

        G.load_state_dict(SSGANAttack.from_run(args.init, checkpoint="last").generator.state_dict())
    opt = torch.optim.Adam(G.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, max(1, args.steps // 3), gamma=0.5)
    rng = torch.Generator().manual_seed(0)
    length = round(config.segment_seconds * 16000)
    history: list[dict[str, Any]] = []
    row = {"step": 0, **score(G, victim, val, val_d, config.segment_seconds)}
    history.append(row)
    print(json.dumps(row), flush=True)
    train_start, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        x, d = _crops(train_clips, train_d, args.batch_size, length, rng)
        loss = cosine_loss(G(x), d)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % args.eval_every == 0 or step == args.steps:
            row = {"step": step, "train_cos": 1 - sum(losses) / len(losses),
                   "seconds": time.perf_counter() - train_start,
                   **score(G, victim, val, val_d, config.segment_seconds)}  # fmt: skip
            losses = []
            history.append(row)
            print(json.dumps(row), flush=True)
    state.epoch = args.steps // max(1, config.steps_per_epoch)
    save_run(args.work / "G", state, {"val/asr": history[-1]["asr"]}, {"distilled": True}, True)
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "ddn_seconds": ddn_seconds,
              "config": dataclasses.asdict(config), "history": history}  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
