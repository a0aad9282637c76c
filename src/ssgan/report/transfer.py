"""The transfer matrix's report: ``transfer.json``, ``transfer.md`` (per attack, a source x target
table of ASR and MSNR in both conventions) and a heat map per attack, from the matrix that
``ssgan.evaluation.transfer_matrix`` measures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ssgan.io import atomic_write_json, atomic_write_text, json_safe
from ssgan.report.heatmap import heatmap_png, matrix_markdown

__all__ = ["write_transfer_report"]


def write_transfer_report(out: Path, matrix: dict[str, Any], *, title: str = "") -> Path:
    """``transfer.json``, ``transfer.md`` (one table per attack) and ``transfer_<attack>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "transfer.json", json_safe(matrix))
    names = [str(v) for v in matrix["victims"]]
    parts = [f"# Transfer{': ' + title if title else ''}\n\n",
             "ASR on each target victim (columns) of the clips made against the source victim "
             "(rows), over the clips the target classifies correctly; MSNR over the successes, "
             "true and in [16]'s box convention (docs/snr.md). The diagonal is the white-box "
             "ASR.\n"]  # fmt: skip
    for attack, table in matrix["attacks"].items():
        counts = [
            [f"{s}/{r}" for s, r in zip(srow, rrow, strict=True)]
            for srow, rrow in zip(table["n_success"], table["n_right"], strict=True)
        ]
        png = f"transfer_{attack}.png"
        (out / png).write_bytes(
            heatmap_png(
                table["asr"],
                names,
                names,
                title=f"{attack}: ASR",
                xlabel="target victim",
                ylabel="source victim",
            )
        )
        parts += [f"\n## {attack}\n\n",
                  matrix_markdown(table["asr"], names, names, corner="source \\ target",
                                  counts=counts)]  # fmt: skip
        for key, label in (("msnr_db", "MSNR (true, dB)"), ("msnr_box_db", "MSNR (box, [16], dB)")):
            # Matrices written before the box convention have no msnr_box_db.
            rows = table.get(key) or [[None] * len(names) for _ in names]
            msnr = [["–" if v is None or math.isnan(v) else f"{v:.1f}" for v in row]
                    for row in rows]  # fmt: skip
            parts += [f"\n{label}:\n\n",
                      "| source \\ target | " + " | ".join(names) + " |\n",
                      "|" + "---|" * (len(names) + 1) + "\n",
                      *[f"| {n} | " + " | ".join(r) + " |\n"
                        for n, r in zip(names, msnr, strict=True)]]  # fmt: skip
        parts.append(f"\n![{attack} transfer]({png})\n")
    path = out / "transfer.md"
    atomic_write_text(path, "".join(parts))
    return path
