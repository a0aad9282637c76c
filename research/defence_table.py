"""The defence table: clean and robust accuracy of each victim against each attack, one table.

Reads the ``summary.json`` that ``ssgan evaluate attack`` writes, one per (victim, attack), and
writes a Markdown table (victims as rows; per attack: ASR, MSNR over the successes, and the robust
accuracy ``ACC x (1 - ASR)``: the share of all test clips the victim gets right and keeps right
under the attack) and the same as JSON. Example (docs/robustness.md has the runs behind it):

    python research/defence_table.py --out docs/results/robustness/defence_cpu.json \\
        --eval "EnvNet" "SSGAN (fixed G)" runs/defence/eval_victim_esc10_ssgan_fixed \\
        --eval "EnvNet" "PGD" runs/defence/eval_victim_esc10_pgd ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _cell(summary: dict[str, Any]) -> dict[str, float | int | None]:
    acc, msnr = float(summary["acc"]), summary.get("msnr_db")
    # no clip right: ASR is undefined (None in summary.json), nothing is kept right either
    asr = None if summary["asr"] is None else float(summary["asr"])
    return {
        "acc": acc,
        "asr": asr,
        "msnr_db": None if msnr is None else float(msnr),
        "robust_acc": acc * (1.0 - (asr or 0.0)),
        "n": int(summary["n"]),
        "n_right": int(summary["n_right"]),
        "n_success": int(summary["n_success"]),
    }


def table(rows: dict[str, dict[str, dict[str, Any]]], attacks: list[str]) -> str:
    head = ["victim", "clean ACC"] + [f"{a}: ASR / MSNR / robust ACC" for a in attacks]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for victim, cells in rows.items():
        acc = next(iter(cells.values()))["acc"]
        line = [victim, f"{100 * acc:.1f} %"]
        for a in attacks:
            c = cells.get(a)
            if c is None:
                line.append("–")
                continue
            msnr = "–" if c["msnr_db"] is None else f"{c['msnr_db']:.1f} dB"
            asr = "–" if c["asr"] is None else f"{100 * c['asr']:.1f} %"
            line.append(f"{asr} / {msnr} / {100 * c['robust_acc']:.1f} %")
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--eval", nargs=3, action="append", required=True,
        metavar=("VICTIM", "ATTACK", "EVAL_DIR"),
        help="row label, column label, an `ssgan evaluate attack` --out folder",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="JSON; the table goes beside as .md")
    args = p.parse_args(argv)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    attacks: list[str] = []
    for victim, attack, folder in args.eval:
        path = Path(folder) / "summary.json"
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            cell = _cell(summary)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"defence_table: {path}: {exc}", file=sys.stderr)
            return 2
        accs = {c["acc"] for c in rows.get(victim, {}).values()}
        if accs and cell["acc"] not in accs:
            print(f"defence_table: {path}: clean ACC {cell['acc']} differs from this victim's "
                  f"other evaluations {sorted(accs)}", file=sys.stderr)  # fmt: skip
            return 2
        rows.setdefault(victim, {})[attack] = {**cell, "eval_dir": str(folder)}
        if attack not in attacks:
            attacks.append(attack)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    md = table(rows, attacks)
    args.out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
