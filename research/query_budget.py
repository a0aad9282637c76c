"""ASR and MSNR against what each attack asks of the victim, on one set of clips.

Every row is one attack, scored by ``ssgan.evaluation.evaluate_attack`` (the paper's ASR on the
clips the victim gets right, MSNR over the successes) on the same clips: by default the
generator's validation clips (the held-out tenth of the training split, as ``ssgan train gan``
holds them out), ``--subset test`` for the test split once the rows are chosen. Each row states
the victim's forward and backward passes per clip, so a query-free generator, one with an
attack-time search and an iterative attack can be read side by side.

Usage (from the repository root):
    python research/query_budget.py --victim runs/victim_esc10 --root ../shared/data/ESC-50 \\
        --row "SSGAN" ssgan generator=runs/g \\
        --row "SSGAN + refine 10" ssgan generator=runs/g refine_steps=10 \\
        --row "DDN 10" ddn steps=10 --out results/query_budget.json

A row is ``LABEL ATTACK [key=value ...]``: ``ATTACK`` a registry name (``ssgan.attacks``), its
settings as ``--set attack.key=value`` takes them; ``ssgan`` needs ``generator=RUN`` and takes the
attack-time settings of ``SSGANAttack.from_run`` (``quietest``, ``refine_steps``...).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch


def _dataset(args: argparse.Namespace) -> Any:
    from ssgan.data import bundled_root, load_dataset, make_split

    root = bundled_root() if str(args.root) == "bundled" else args.root
    train, test = make_split(load_dataset(args.dataset, root), args.split)
    if args.subset == "test":
        return test
    return make_split(train, "paper", seed=1)[1]


def _queries(attack: Any) -> str:
    """Victim passes per clip as ``forward / backward``, from the attack's settings."""
    name = type(attack).__name__
    if name == "SSGANAttack":
        fwd = bwd = 0
        if attack.generator.grad_input:
            fwd, bwd = fwd + 1, bwd + 1
        if attack.refine_steps:
            fwd, bwd = fwd + attack.refine_steps + 1, bwd + attack.refine_steps
        if attack.quietest:
            fwd += attack.search_steps + 2
        return f"{fwd} / {bwd}"
    if name == "DDN":
        return f"{attack.steps + 1 + (attack.quietest and 8)} / {attack.steps}"
    if name == "PGD":
        return f"{attack.steps} / {attack.steps}"
    if name == "CW":
        n = attack.steps * attack.binary_search_steps
        return f"{n} / {n}"
    if name == "GaussianNoise":
        return "0 / 0"
    return "?"


def build(attack_name: str, pairs: list[str]) -> Any:
    from ssgan.attacks import make_attack
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.cli.evaluate_attack import _kwargs_for
    from ssgan.config import parse_key_values

    if attack_name != "ssgan":
        return make_attack(attack_name, pairs)
    settings = parse_key_values(pairs)
    run = settings.pop("generator", None)
    if run is None:
        raise SystemExit("an ssgan row needs generator=RUN")
    checkpoint = settings.pop("checkpoint", "last")
    kwargs = _kwargs_for(SSGANAttack.from_run, settings, "an ssgan row")
    return SSGANAttack.from_run(run, checkpoint=checkpoint, **kwargs)


def run_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from ssgan.evaluation import evaluate_attack
    from ssgan.models.victim import load_victim

    torch.set_num_threads(args.threads)
    victim, _ = load_victim(args.victim, checkpoint=args.victim_checkpoint)
    data = _dataset(args)
    rows = []
    for label, attack_name, *pairs in args.row:
        attack = build(attack_name, pairs)
        start = time.perf_counter()
        result = evaluate_attack(attack, victim, data, batch_size=args.batch_size)
        wall = time.perf_counter() - start
        s = result.summary
        row = {
            "label": label,
            "attack": attack_name,
            "settings": pairs,
            "queries": _queries(attack),
            "n": s["n"],
            "n_right": s["n_right"],
            "asr": s["asr"],
            "msnr_db": s["msnr_db"],
            "s_per_clip": wall / max(1, s["n"]),
        }
        rows.append(row)
        print(table([row], header=len(rows) == 1), flush=True)
    return rows


def table(rows: list[dict[str, Any]], header: bool = True) -> str:
    def pct(v: float) -> str:
        return "-" if v is None or math.isnan(v) else f"{100 * v:.1f} %"

    def db(v: float) -> str:
        return "-" if v is None or math.isnan(v) else f"{v:.1f} dB"

    lines = []
    if header:
        lines += ["| row | victim fwd / bwd per clip | ASR | MSNR | s / clip |",
                  "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['queries']} | {pct(r['asr'])} | {db(r['msnr_db'])} "
            f"| {r['s_per_clip']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--victim", type=Path, required=True)
    p.add_argument("--victim-checkpoint", default="last")
    p.add_argument("--dataset", default="esc10")
    p.add_argument("--root", default="bundled")
    p.add_argument("--split", default="fold:5")
    p.add_argument("--subset", choices=("val", "test"), default="val")
    p.add_argument("--row", nargs="+", action="append", required=True,
                   metavar="LABEL ATTACK [k=v]")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    for row in args.row:
        if len(row) < 2:
            p.error(f"--row {' '.join(row)}: expected LABEL ATTACK [key=value ...]")
    rows = run_rows(args)
    print()
    print(table(rows))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        info = {k: str(v) for k, v in vars(args).items() if k != "row"}
        args.out.write_text(json.dumps({"args": info, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
