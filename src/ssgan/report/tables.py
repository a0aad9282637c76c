"""The paper's tables as Markdown + JSON: our rows beside the paper's, both SNR conventions.

``write_table`` reads each row's ``<stage>_train`` / ``<stage>_test`` ``summary.json`` (written by
``ssgan.evaluation``) under a ``ssgan reproduce`` output folder; ``ssgan.reproduce`` calls it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssgan.io import atomic_write_json, atomic_write_text
from ssgan.paper import PaperRow

__all__ = ["write_table"]


def _summary(out: Path, name: str) -> dict[str, Any]:
    path = out / name / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _db(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.1f}"


def _secs(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def _get(s: dict[str, Any], key: str) -> Any:
    return s.get(key)


def _row(label: str, tr: dict[str, Any], te: dict[str, Any], time_col: bool) -> str:
    cells = [
        label,
        _pct(_get(tr, "acc")),
        _pct(_get(tr, "asr")),
        _db(_get(tr, "msnr_db")),
        _db(_get(tr, "msnr_box_db")),
        _pct(_get(te, "acc")),
        _pct(_get(te, "asr")),
        _db(_get(te, "msnr_db")),
        _db(_get(te, "msnr_box_db")),
    ]
    if time_col:
        cells.append(_secs(_get(te, "seconds_per_example")))
    return "| " + " | ".join(cells) + " |"


def _paper_cells(label: str, train: PaperRow | None, test: PaperRow | None, time_col: bool) -> str:
    def f(row: PaperRow | None, field: str) -> str:
        v = None if row is None else getattr(row, field)
        return "N/A" if v is None else f"{v:.1f}"

    cells = [label]
    for row in (train, test):
        # The paper states its MSNR in [16]'s box convention only: no true figure to show.
        cells += [f(row, "acc_pct"), f(row, "asr_pct"), "–", f(row, "msnr_db")]
    if time_col:
        t = None if test is None else test.seconds_per_example
        cells.append("N/A" if t is None else f"{t:.2f}")
    return "| " + " | ".join(cells) + " |"


def write_table(
    out: Path,
    name: str,
    caption: str,
    rows: Sequence[tuple[str, str, Sequence[PaperRow]]],
    *,
    time_col: bool,
) -> Path:
    """Write ``name``.md / .json: for each (label, stage prefix, paper rows) ours beside theirs."""
    head = (
        "| Method | Train ACC (%) | Train ASR (%) | Train MSNR (true, dB) "
        "| Train MSNR (box, [16], dB) | Test ACC (%) | Test ASR (%) | Test MSNR (true, dB) "
        "| Test MSNR (box, [16], dB) |"
    )
    sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if time_col:
        head += " Time (s) |"
        sep += "---:|"
    lines = [f"**{caption}**", "", head, sep]
    data = []
    for label, prefix, paper_rows in rows:
        tr, te = _summary(out, f"{prefix}_train"), _summary(out, f"{prefix}_test")
        lines.append(_row(f"{label} (ours)", tr, te, time_col))
        by_subset = {r.subset: r for r in paper_rows}
        if by_subset:
            lines.append(
                _paper_cells(
                    f"{label} (paper)", by_subset.get("train"), by_subset.get("test"), time_col
                )
            )
        data.append(
            {
                "label": label,
                "train": tr,
                "test": te,
                "paper": [dataclasses.asdict(r) for r in paper_rows],
            }
        )
    lines += [
        "",
        "ACC: clean clip-level accuracy (10-crop protocol). ASR = N_success / N_right. MSNR: mean "
        "SNR over the successful examples, true = 20 log10(rms(x) / rms(delta)) and box [16] = "
        "20 log10(rms(x + 1) / rms(delta)) (audio held in [0, 1] as [16]'s code does; the "
        "paper's figures are in this convention, docs/snr.md). Time: seconds per example on the "
        "test split (warm, averaged over batches).",
    ]
    md = out / f"{name}.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    atomic_write_json(out / f"{name}.json", {"caption": caption, "rows": data})
    return md
