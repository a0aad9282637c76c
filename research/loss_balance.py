"""Loss balance: how hard each term of SSGAN's generator loss pulls on delta, by amplitude.

A diagnostic for the generator's two failure modes seen on real data (docs/notebook/history.md,
"On a GPU"):
noise pinned at ``max_delta``, or delta shrunk to nothing. For training crops of the victim's
own training clips and sign-noise perturbations of amplitude ``a`` (what a saturated generator
emits), it measures per example the length of the gradient with respect to delta of

- ``alpha * hinge``: the victim term, ``alpha * max(z_y - max_{j != y} z_j + m, 0)`` (the
  victim scores the segment with its 10 crops, as in the G step), and
- ``beta * ||delta||_2``: the paper's perturbation term, whose gradient ``delta / ||delta||``
  has length exactly ``beta`` at every amplitude,

with the SNR that ``a`` gives and the share of correctly classified crops that the noise alone
already flips. Then, for a freshly initialised generator bounded by ``max_delta = a``, the same
two terms' gradients with respect to G's *weights* (batch means, as in the G step) and the
cosine between them: per example the victim term may pull harder, while in G's weights its
example-specific directions can cancel and the shrinking of delta, the same for every example,
adds up. (D's term is left out: its pull depends on how far D has been trained.)

    python research/loss_balance.py --victim runs/envnet_esc10_cpu \\
        --root ../shared/data/ESC-50 --checkpoint last --out docs/notebook/results/loss_balance.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import common  # benchmarks/common.py: runs, tables, machine info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p, generator=False)
    p.add_argument("--clips", type=int, default=32, help="training clips (one crop each)")
    p.add_argument("--segment-seconds", type=float, default=1.6)
    p.add_argument(
        "--amplitudes", default="0.001,0.002,0.005,0.01,0.02,0.05", help="sign-noise levels"
    )
    p.add_argument("--alpha", type=float, default=10.0)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--margin", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.clips = min(args.clips, 2)
        args.amplitudes = "0.01"
    with common.num_threads(args.threads):
        payload = run(args)
    common.write_json(args.out, payload)
    return 0


def _generator_pulls(
    x: torch.Tensor, y: torch.Tensor, victim: torch.nn.Module, max_delta: float, args: Any
) -> tuple[float, float, float]:
    """At a freshly initialised generator bounded by ``max_delta`` (the start of training):
    the lengths of the gradients of ``alpha * L_adv`` and ``beta * L_pert`` (batch means, as in
    the G step) with respect to G's weights, and the cosine between them (< 0: they oppose)."""
    from ssgan.losses import margin_loss, perturbation_loss
    from ssgan.models.generators import build_generator
    from ssgan.models.generators.spec import GeneratorSpec

    torch.manual_seed(args.seed)
    g = build_generator(GeneratorSpec(max_delta=max_delta)).to(x.device)
    params = [p for p in g.parameters() if p.requires_grad]
    delta = g(x).float()
    adv = args.alpha * margin_loss(victim(x + delta), y, args.margin)
    pert = args.beta * perturbation_loss(delta)
    ga = torch.cat([t.flatten() for t in torch.autograd.grad(adv, params, retain_graph=True)])
    gp = torch.cat([t.flatten() for t in torch.autograd.grad(pert, params)])
    cos = float(torch.nn.functional.cosine_similarity(ga, gp, dim=0))
    return float(ga.norm()), float(gp.norm()), cos


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ssgan.data import make_split
    from ssgan.data.segments import random_crops
    from ssgan.losses import margin_loss
    from ssgan.metrics import snr_db
    from ssgan.models.victim import load_victim, victim_frozen

    v_dir, _ = common.ensure_runs(
        args.victim, None, work=args.work, victim_set=args.victim_set, gan_set=[],
        need_generator=False,
    )  # fmt: skip
    victim, meta = load_victim(v_dir, args.device, checkpoint=args.checkpoint)
    dataset, _ = common.victim_test_set(meta, args.root)
    train, _ = make_split(dataset, str(meta.get("split") or "fold:5"))
    picked = train.subset(common.spread(len(train), args.clips))
    n = len(picked)
    rng = torch.Generator().manual_seed(args.seed)
    length = round(args.segment_seconds * 16000)
    x = random_crops(picked.waveforms(), length, generator=rng).to(args.device)
    y = torch.tensor(picked.labels(), device=args.device)
    # eval mode, no weight gradients (restored afterwards), as in the G step
    with victim_frozen(victim):
        with torch.no_grad():
            correct = victim(x).argmax(1) == y

        rows = []
        for a in (float(v) for v in args.amplitudes.split(",")):
            sign = torch.randint(0, 2, x.shape, generator=rng).to(x) * 2 - 1
            delta = (a * sign).requires_grad_(True)
            logits = victim(x + delta)
            # margin_loss is a batch mean; times the batch size it is the sum of per-example hinges,
            # whose gradient with respect to delta_i is example i's own.
            hinge = margin_loss(logits, y, args.margin) * len(y)
            (grad,) = torch.autograd.grad(args.alpha * hinge, delta)
            pull = grad.norm(dim=1).cpu()
            snr = snr_db(x.detach().cpu(), (x + delta).detach().cpu())
            fooled = (logits.argmax(1) != y).cpu()
            ratio = (pull / args.beta).tolist()
            g_adv, g_pert, cos = _generator_pulls(x, y, victim, a, args)
            rows.append(
                {
                    "amplitude": a,
                    "snr_db_median": statistics.median(snr.tolist()),
                    "victim_pull_median": statistics.median(pull.tolist()),
                    "victim_pull_p90": sorted(pull.tolist())[int(0.9 * (len(pull) - 1))],
                    "pert_pull": args.beta,
                    "share_victim_stronger": sum(r > 1 for r in ratio) / len(ratio),
                    "fooled_by_noise": float(fooled[correct.cpu()].float().mean())
                    if bool(correct.any())
                    else None,
                    "g_param_pull_victim": g_adv,
                    "g_param_pull_pert": g_pert,
                    "g_param_cosine": cos,
                }
            )
    print(
        f"loss balance on {n} training crops of {args.segment_seconds:g} s "
        f"({int(correct.sum())} classified right), alpha {args.alpha:g}, beta {args.beta:g}, "
        f"margin {args.margin:g}, device {args.device}"
    )
    print(
        common.table(
            rows,
            [
                ("amplitude", "sign noise a", ".3g"),
                ("snr_db_median", "SNR dB", ".1f"),
                ("victim_pull_median", "|alpha grad hinge| median", ".3g"),
                ("victim_pull_p90", "p90", ".3g"),
                ("pert_pull", "|beta grad L2|", ".3g"),
                ("share_victim_stronger", "share victim > L2", ".2f"),
                ("fooled_by_noise", "noise alone fools", ".2f"),
                ("g_param_pull_victim", "G: |grad alpha L_adv|", ".3g"),
                ("g_param_pull_pert", "G: |grad beta L_pert|", ".3g"),
                ("g_param_cosine", "cos", ".2f"),
            ],
        )
    )
    return {
        "benchmark": "loss_balance",
        "machine": common.machine_info(args.device),
        "victim_run": str(v_dir),
        "checkpoint": args.checkpoint,
        "clips": n,
        "segment_seconds": args.segment_seconds,
        "alpha": args.alpha,
        "beta": args.beta,
        "margin": args.margin,
        "rows": rows,
    }


if __name__ == "__main__":
    common.run_cli(main)
