"""The targeted evaluation's report: ``targeted.md`` with the success matrix (true class x target
class) and its heat map, from a targeted summary (``ssgan.evaluation.targeted``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ssgan.io import atomic_write_text
from ssgan.report.heatmap import heatmap_png, matrix_markdown

__all__ = ["MATRIX_PNG", "write_targeted_report"]

MATRIX_PNG = "targeted_matrix.png"


def write_targeted_report(out: Path, summary: dict[str, Any]) -> Path:
    """``targeted.md`` (figures + matrix table) and ``targeted_matrix.png``; returns the .md."""
    names = [str(n) for n in summary["class_names"]]
    m = summary["matrix"]
    counts = [[f"{m['n_success'][i][j]}/{m['n_right'][i][j]}" if m["n_right"][i][j] else ""
               for j in range(len(names))] for i in range(len(names))]  # fmt: skip
    png = heatmap_png(m["success_rate"], names, names, title="targeted success",
                      xlabel="target class", ylabel="true class")  # fmt: skip
    (out / MATRIX_PNG).write_bytes(png)

    def pct(v: float) -> str:
        return "–" if math.isnan(v) else f"{100 * v:.1f} %"

    def db(key: str) -> str:
        v = summary.get(key)
        return "–" if v is None or math.isnan(v) else f"{v:.1f} dB"

    text = (
        f"# Targeted attack: {summary.get('attack', '?')} ({summary['target_mode']} targets)\n\n"
        f"- clips attacked: {summary['n']} (skipped: {summary['n_skipped']}), "
        f"right: {summary['n_right']}\n"
        f"- targeted success: {summary['n_success']}/{summary['n_right']} = "
        f"{pct(summary['success_rate'])} (after 16-bit PCM "
        f"{pct(summary['success_rate_pcm16'])}); decision changed at all: "
        f"{pct(summary['untargeted_asr'])}\n"
        f"- MSNR over the successes: true {db('msnr_db')}, box [16] {db('msnr_box_db')} "
        "(docs/snr.md)\n\n"
        "Success per true class (rows) and target class (columns), over the clips the victim "
        "classified correctly:\n\n"
        + matrix_markdown(m["success_rate"], names, names, corner="true \\ target", counts=counts)
        + f"\n![targeted success matrix]({MATRIX_PNG})\n"
    )
    path = out / "targeted.md"
    atomic_write_text(path, text)
    return path
