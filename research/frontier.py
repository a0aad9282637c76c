"""The ASR-SNR frontier: every attack at 20 / 25 / 30 / 35 / 40 dB on the same test clips.

For each SNR ``s`` and each clip the victim classifies correctly, the attack's perturbation is
made (or rescaled) to exactly ``s`` dB below the clip, and the clip counts as fooled when the
victim's decision changes. The whole frontier is drawn once per SNR convention
(``--conventions``, both by default; docs/snr.md): ``true`` (``s`` dB below ``x``, key ``asr``)
and ``box`` (``s`` dB below ``x + 1``, [16]'s convention, the paper's; key ``asr_box``). Rows:

- ``noise``: Gaussian noise at ``s`` (what loudness alone does);
- ``ssgan``: the generator's perturbation (one G pass, no victim query) rescaled to ``s``;
  with several ``--generator`` runs, one row each (``ssgan:<run name>``); a generator that
  reads the victim's input gradient (``g_grad``) gets it, one victim backward per clip;
- ``uap``: a fitted universal perturbation (``--uap RUN``), tiled and rescaled to ``s``;
- ``fgm``: one L2 gradient step of the clip-level margin, at ``s``;
- ``pgd``: PGD-L2 with ``--pgd-steps`` steps inside the ``s`` dB ball (step 2.5 eps / steps);
- ``cw``: one C&W-L2 run (``--cw-steps``); fooled at ``s`` when it fooled at an SNR >= ``s``
  (C&W minimises the distortion, so its SNR is the quietest it found).

Usage (from the repository root):
    python research/frontier.py --victim runs/victim_esc10 --generator runs/g \\
        --root ../shared/data/ESC-50 --out docs/notebook/results/frontier.json

Writes the tables (JSON and Markdown), ``frontier.png`` (ASR against SNR, a line per attack, a
panel per convention) and a self-contained ``frontier.html`` (the plot and the tables inline)
beside ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.metrics import SNR_CONVENTIONS, snr_in, snr_reference

SNRS = (20.0, 25.0, 30.0, 35.0, 40.0)
LABELS = {"true": "true", "box": "box, [16]"}


def asr_key(convention: str) -> str:
    """The result's key for the ASRs in ``convention``: ``asr`` (true, as before) or ``asr_box``."""
    return "asr" if convention == "true" else f"asr_{convention}"


def at_snr(x: Tensor, direction: Tensor, snr: float, convention: str = "true") -> Tensor:
    """``x + direction`` with the direction rescaled per clip to exactly ``snr`` dB in
    ``convention``."""
    from ssgan.models.generators.base import scale_to_snr

    return (x + scale_to_snr(direction, x, snr, convention)).clamp(-1.0, 1.0)


def _margin_grad(victim: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    from ssgan.losses import logit_margin

    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(logit_margin(victim(x), y).sum(), x)
    return g


def pgd_at_snr(
    victim: nn.Module, x: Tensor, y: Tensor, snr: float, steps: int, convention: str = "true"
) -> Tensor:
    """PGD-L2 on the clip-level margin inside the ball ``||delta|| <= ||r|| 10^(-snr/20)``,
    ``r = x`` (true) or ``x + 1`` (box)."""
    eps = snr_reference(x, convention).norm(dim=1, keepdim=True) * 10 ** (-snr / 20)
    delta = torch.zeros_like(x)
    for _ in range(steps):
        g = _margin_grad(victim, x + delta, y)
        delta = delta - 2.5 * eps / steps * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
        delta = delta * (eps / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta).clamp(-1.0, 1.0)


def frontier(args: argparse.Namespace) -> dict[str, Any]:
    from ssgan.attacks import CW, attack_class
    from ssgan.attacks.base import LearnedAttack
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.data import bundled_root, load_dataset, make_split
    from ssgan.losses import input_gradient
    from ssgan.models.victim import load_victim

    torch.set_num_threads(args.threads)
    victim, _ = load_victim(args.victim, checkpoint=args.victim_checkpoint)
    for p in victim.parameters():
        p.requires_grad_(False)
    victim.eval()
    root = bundled_root() if str(args.root) == "bundled" else args.root
    _, test = make_split(load_dataset(args.dataset, root), args.split)
    clips = [c.float() for c in test.waveforms()]
    labels = test.labels()
    with torch.no_grad():
        right = [i for i, (c, y) in enumerate(zip(clips, labels, strict=True))
                 if int(victim(c[None]).argmax(1)) == y]  # fmt: skip
    if args.clips and args.clips < len(right):  # evenly spread over the (class-sorted) clips
        step = len(right) / args.clips
        right = [right[int(k * step)] for k in range(args.clips)]
    generators = {
        ("ssgan" if len(args.generator) == 1 else f"ssgan:{run.name}"): SSGANAttack.from_run(
            run, checkpoint=args.generator_checkpoint
        )
        for run in args.generator
    }
    uap = None
    if args.uap:
        name = json.loads((args.uap / "attack.json").read_text())["attack"]
        loaded = attack_class(name).load(args.uap)
        assert isinstance(loaded, LearnedAttack)
        uap = loaded
    conventions = list(dict.fromkeys(args.conventions))
    rows: dict[str, dict[str, list[int]]] = {c: {} for c in conventions}
    seconds: dict[str, float] = {}
    rng = torch.Generator().manual_seed(0)

    def count(convention: str, name: str, snr: float, fooled: bool) -> None:
        rows[convention].setdefault(name, [0] * len(SNRS))
        rows[convention][name][SNRS.index(snr)] += int(fooled)

    for n, i in enumerate(right):
        x, y = clips[i][None], torch.tensor([labels[i]])
        directions: dict[str, Tensor] = {"noise": torch.randn(x.shape, generator=rng)}
        for name, attack in generators.items():
            grad = input_gradient(victim, x, y) if attack.generator.grad_input else None
            directions[name] = attack.perturbation(x, grad)
        if uap is not None:
            directions["uap"] = uap(victim, x, y) - x
        directions["fgm"] = -_margin_grad(victim, x, y)
        for name, d in directions.items():
            t0 = time.perf_counter()
            with torch.no_grad():
                for c in conventions:
                    for s in SNRS:
                        fooled = int(victim(at_snr(x, d, s, c)).argmax(1)) != labels[i]
                        count(c, name, s, fooled)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        if args.pgd_steps:
            t0 = time.perf_counter()
            for c in conventions:
                for s in SNRS:
                    xa = pgd_at_snr(victim, x, y, s, args.pgd_steps, c)
                    with torch.no_grad():
                        fooled = int(victim(xa).argmax(1)) != labels[i]
                    count(c, f"pgd{args.pgd_steps}", s, fooled)
            seconds[f"pgd{args.pgd_steps}"] = seconds.get(f"pgd{args.pgd_steps}", 0.0) + (
                time.perf_counter() - t0
            )
        if args.cw_steps:
            t0 = time.perf_counter()
            cw = CW(steps=args.cw_steps, binary_search_steps=args.cw_search, lr=args.cw_lr)
            xa = cw(victim, x, y)
            with torch.no_grad():
                ok = int(victim(xa).argmax(1)) != labels[i]
            for c in conventions:
                snr = float(snr_in(c, x, xa)) if ok else float("-inf")
                for s in SNRS:
                    count(c, "cw", s, ok and snr >= s)
            seconds["cw"] = seconds.get("cw", 0.0) + time.perf_counter() - t0
        print(f"{n + 1}/{len(right)}", rows, flush=True)
    result: dict[str, Any] = {
        "snr_db": list(SNRS),
        "snr_conventions": conventions,
        "clips_right": len(right),
        "clips": len(clips),
    }
    for c in conventions:
        result[asr_key(c)] = {k: [v / max(len(right), 1) for v in vs] for k, vs in rows[c].items()}
    return {
        **result,
        "seconds": seconds,
        "args": {k: str(v) for k, v in vars(args).items()},
    }


def _conventions(result: dict[str, Any]) -> list[str]:
    return list(result.get("snr_conventions", ["true"]))  # results before conventions: true


def table(result: dict[str, Any]) -> str:
    """One Markdown table per SNR convention, its columns labelled with it."""
    blocks = []
    for c in _conventions(result):
        cols = [f"{s:g} dB ({LABELS[c]})" for s in result["snr_db"]]
        lines = [f"ASR at an SNR ({LABELS[c]}):", ""]
        lines += ["| attack | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, vs in result[asr_key(c)].items():
            lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f} %" for v in vs) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conventions = _conventions(result)
    fig, axes = plt.subplots(
        1, len(conventions), figsize=(5.5 * len(conventions), 3.6), dpi=120, squeeze=False
    )
    for ax, c in zip(axes[0], conventions, strict=True):
        for name, vs in result[asr_key(c)].items():
            ax.plot(result["snr_db"], [100 * v for v in vs], marker="o", label=name)
        ax.set_xlabel(f"SNR ({LABELS[c]}) in dB, the same for every clip")
        ax.set_ylabel("ASR (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(
            f"ASR against SNR ({LABELS[c]}; {result['clips_right']} test clips)", fontsize=9
        )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_html(result: dict[str, Any], path: Path, png: Path) -> None:
    """The plot and the table in one self-contained page (the report's inline-data style)."""
    from html import escape

    from ssgan.report.html import data_uri

    tables = ""
    for c in _conventions(result):
        head = "".join(f"<th>{s:g} dB ({escape(LABELS[c])})</th>" for s in result["snr_db"])
        body = "".join(
            f"<tr><td>{escape(name)}</td>"
            + "".join(f"<td>{100 * v:.1f} %</td>" for v in vs)
            + "</tr>"
            for name, vs in result[asr_key(c)].items()
        )
        tables += (
            f"<h2>SNR ({escape(LABELS[c])})</h2><table border='1' cellpadding='4'>"
            f"<tr><th>attack</th>{head}</tr>{body}</table>"
        )
    command = escape(" ".join(["python research/frontier.py", *result.get("argv", [])]))
    path.write_text(
        "<!doctype html><meta charset='utf-8'><title>ASR-SNR frontier</title>"
        "<body style='font-family:system-ui,sans-serif;max-width:900px;margin:2em auto'>"
        f"<h1>ASR against SNR</h1><p>{result['clips_right']} test clips the victim gets right; "
        "each attack's perturbation at exactly the SNR of the column, true (against x) or "
        "box ([16]'s convention, against x + 1; docs/snr.md).</p>"
        f"<img alt='ASR against SNR' src='{data_uri('image/png', png.read_bytes())}'>{tables}"
        f"<p><code>{command}</code></p></body>\n"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--victim", type=Path, required=True)
    p.add_argument("--victim-checkpoint", default="last")
    p.add_argument(
        "--generator", type=Path, nargs="+", required=True, help="`ssgan train gan` run(s)"
    )
    p.add_argument("--generator-checkpoint", default="best")
    p.add_argument("--uap", type=Path, default=None, help="a saved universal perturbation")
    p.add_argument("--dataset", default="esc10")
    p.add_argument("--root", type=Path, required=True, help="dataset folder, or 'bundled'")
    p.add_argument("--split", default="fold:5")
    p.add_argument("--clips", type=int, default=0, help="at most this many clips (0: all)")
    p.add_argument("--pgd-steps", type=int, default=10, help="0 skips PGD")
    p.add_argument("--cw-steps", type=int, default=0, help="0 skips C&W")
    p.add_argument("--cw-search", type=int, default=3)
    p.add_argument("--cw-lr", type=float, default=0.01)
    p.add_argument(
        "--conventions",
        nargs="+",
        choices=SNR_CONVENTIONS,
        default=list(SNR_CONVENTIONS),
        help="SNR conventions to draw the frontier in (docs/snr.md; default: both)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True, help="JSON; .md and .png beside it")
    args = p.parse_args(argv)
    result = frontier(args)
    result["argv"] = list(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table(result) + "\n")
    plot(result, args.out.with_suffix(".png"))
    write_html(result, args.out.with_suffix(".html"), args.out.with_suffix(".png"))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
