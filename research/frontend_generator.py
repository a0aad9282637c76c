"""A generator that acts through the victim's own front end: delta = J_front(x)^T u(x).

The query-free generator of the recipe learns about what one universal waveform can do (docs/
recipe.md, fifth sweep) and cannot learn the victim's per-clip directions from 280 clips (fourth
sweep), while one gradient step fools twice as many clips at 30 dB. The victim's input gradient
has a known form: with ``p(x)`` the output of EnvNet's front end (conv1, conv2, max-pool over
160 samples), ``grad_x L = J_p(x)^T (dL/dp)``. The Jacobian's transpose is cheap and input
dependent (the ReLU masks and the max-pool's winners route it), and all the victim-specific,
hard-to-learn work of the rest of the network is in the small map ``dL/dp`` (40 x 150 for a
1.5 s window).

This G (``GeneratorSpec(front=...)``, ``ssgan.models.generators.front_end``) keeps a frozen copy
of the victim's front end (about 13 k weights: white-box knowledge of the attacked model, as the
paper's G has through training) and learns only ``u``, a small 1-D convolutional network from
``p(x)`` to a map of ``p``'s shape; its output is ``J_p(x)^T u(p(x))`` rescaled to exactly
``--snr`` dB. With ``u = dL/dp`` it is the victim's
gradient, so FGM is in its reach; at attack time it runs no victim decision, only the copied
front end and its transpose on the clip. It is trained here by a loop of its own (constant learning
rate, no validation-based selection) on the recipe's loss (the logit-margin
hinge on one victim window at a random offset inside each 1.6 s crop) and scored on whole
validation clips (the held-out tenth of the training split, never the test split) at exactly
``--snr`` dB, beside FGM and Gaussian noise at the same SNR on the same clips.

Usage (from the repository root):
    python research/frontend_generator.py --victim runs/victim_esc10 \\
        --root ../shared/data/ESC-50 --steps 400 --out docs/notebook/results/frontend_generator.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssgan.losses import logit_margin


def _crops(clips: list[Tensor], labels: list[int], n: int, length: int, rng: torch.Generator):
    xs, ys = [], []
    for _ in range(n):
        i = int(torch.randint(len(clips), (1,), generator=rng))
        span = clips[i].numel() - length
        o = int(torch.randint(span + 1, (1,), generator=rng)) if span > 0 else 0
        x = clips[i][o : o + length]
        xs.append(F.pad(x, (0, length - x.numel())))
        ys.append(labels[i])
    return torch.stack(xs), torch.tensor(ys)


def _fools(victim: Any, x: Tensor, delta: Tensor, y: int) -> bool:
    with torch.no_grad():
        return int(victim(x + delta).argmax(1)) != y


def score(G: nn.Module, victim: Any, clips: list[Tensor], labels: list[int],
          snr: float) -> dict[str, float]:  # fmt: skip
    """Fooled fraction of the clips the victim gets right: G, FGM and noise, all at ``snr`` dB."""
    from ssgan.models.generators.base import scale_to_snr

    G.eval()
    n_right, fooled = 0, {"G": 0, "fgm": 0, "noise": 0}
    gen = torch.Generator().manual_seed(0)
    for x, y in zip(clips, labels, strict=True):
        x = x[None]
        with torch.no_grad():
            if int(victim(x).argmax(1)) != y:
                continue
        n_right += 1
        fooled["G"] += _fools(victim, x, G(x), y)
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(-logit_margin(victim(xg), torch.tensor([y])).sum(), xg)
        fooled["fgm"] += _fools(victim, x, scale_to_snr(grad, x, snr), y)
        noise = torch.randn(x.shape, generator=gen)
        fooled["noise"] += _fools(victim, x, scale_to_snr(noise, x, snr), y)
    G.train()
    return {"n_right": n_right, **{k: v / max(1, n_right) for k, v in fooled.items()}}


def main(argv: list[str] | None = None) -> int:
    from ssgan.data import load_dataset, make_split
    from ssgan.models.generators import build_generator
    from ssgan.models.generators.front_end import front_spec
    from ssgan.models.generators.spec import GeneratorSpec
    from ssgan.models.victim import load_victim

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--victim", type=Path, required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--dataset", default="esc10")
    p.add_argument("--split", default="fold:5")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop-seconds", type=float, default=1.6)
    p.add_argument("--snr", type=float, default=30.0)
    p.add_argument("--kappa", type=float, default=5.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64, help="u's width (a multiple of 8)")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    victim, _ = load_victim(args.victim, checkpoint="last")
    victim.eval()
    for q in victim.parameters():
        q.requires_grad_(False)
    train, _ = make_split(load_dataset(args.dataset, args.root), args.split)
    train, val = make_split(train, "paper", seed=1)  # as `ssgan train gan` holds validation out
    clips = [w.float() for w in train.waveforms()]
    labels = list(train.labels())
    val_clips, val_labels = [w.float() for w in val.waveforms()], list(val.labels())

    G = build_generator(
        GeneratorSpec(
            output="snr", snr_db=args.snr, channels=args.hidden // 8, front=front_spec(victim)
        )
    )
    G.load_front(victim)
    opt = torch.optim.Adam(G.parameters(), lr=args.lr)
    rng = torch.Generator().manual_seed(0)
    length, window = round(args.crop_seconds * 16000), victim.window
    history = [{"step": 0, "seconds": 0.0, **score(G, victim, val_clips, val_labels, args.snr)}]
    print(json.dumps(history[-1]), flush=True)
    start, seen, hits = time.perf_counter(), 0, 0
    for step in range(1, args.steps + 1):
        x, y = _crops(clips, labels, args.batch_size, length, rng)
        x_adv = x + G(x)
        o = torch.randint(0, max(1, length - window + 1), (args.batch_size,), generator=rng)
        idx = o[:, None] + torch.arange(window)
        logits = victim.net(F.pad(x_adv, (0, max(0, window - length))).gather(1, idx))
        loss = F.relu(logit_margin(logits, y) + args.kappa).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
        hits += int((logits.argmax(1) != y).sum())
        if step % args.eval_every == 0 or step == args.steps:
            row = {"step": step, "seconds": time.perf_counter() - start,
                   "train_windows_fooled": hits / seen,
                   **score(G, victim, val_clips, val_labels, args.snr)}  # fmt: skip
            seen = hits = 0
            history.append(row)
            print(json.dumps(row), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {"args": {k: str(v) for k, v in vars(args).items()}, "history": history}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
