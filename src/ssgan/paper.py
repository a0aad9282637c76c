"""The SSGAN paper's published numbers (Tables II and III) as data, to print beside ours.

Percentages are kept as the paper prints them (``acc_pct`` = 97.6 means 97.6 %); ``None`` marks
"N/A" in the paper. Table II: SSGAN against EnvNet on ESC-50 (paper split 1800/200) for four
segment lengths t1. Table III: UrbanSound8K (7858/874) against EnvNet-v2; the Iterative and
Penalty rows are the paper's copy of Abdoli et al. 2019 (their ASR counts all clips and their SNR
is on [0, 1] audio, so those rows are not strictly comparable with ours).

Transcription note: Table II's last column header reads "MSNR R" in the paper; it is MSNR (dB).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

Subset = Literal["train", "test"]


@dataclass(frozen=True)
class PaperRow:
    """One (method or segment length, subset) cell group of a table of the paper."""

    table: str  # "II" or "III"
    label: str  # e.g. "SSGAN t1=1.6 s", "Iterative [16]"
    subset: Subset
    dataset: str
    victim: str
    acc_pct: float | None
    asr_pct: float | None
    msnr_db: float | None
    seconds_per_example: float | None = None


def _t2(t1: float, subset: Subset, acc: float, asr: float, msnr: float) -> PaperRow:
    return PaperRow("II", f"SSGAN t1={t1} s", subset, "ESC-50", "EnvNet", acc, asr, msnr)


TABLE_II: tuple[PaperRow, ...] = (
    _t2(0.8, "train", 94.8, 98.3, 31.2),
    _t2(0.8, "test", 76.5, 97.7, 31.0),
    _t2(1.6, "train", 97.6, 98.7, 35.7),
    _t2(1.6, "test", 82.5, 97.8, 35.7),
    _t2(3.2, "train", 95.3, 98.6, 34.2),
    _t2(3.2, "test", 74.5, 97.4, 34.0),
    _t2(4.0, "train", 92.0, 97.9, 35.1),
    _t2(4.0, "test", 74.0, 97.4, 35.0),
)
"""Table II: SSGAN with segment lengths t1 = 0.8, 1.6, 3.2, 4.0 s, EnvNet, ESC-50."""

_US8K = "UrbanSound8K"
TABLE_III: tuple[PaperRow, ...] = (
    PaperRow("III", "Iterative [16]", "train", _US8K, "EnvNet-v2", None, 91.0, None),
    PaperRow("III", "Iterative [16]", "test", _US8K, "EnvNet-v2", None, 66.9, 25.0),
    PaperRow("III", "Penalty [16]", "train", _US8K, "EnvNet-v2", None, 90.0, None),
    PaperRow("III", "Penalty [16]", "test", _US8K, "EnvNet-v2", None, 83.1, 18.7),
    PaperRow("III", "SSGAN t1=1.6 s", "train", _US8K, "EnvNet-v2", 98.4, 96.7, 33.6, 0.03),
    PaperRow("III", "SSGAN t1=1.6 s", "test", _US8K, "EnvNet-v2", 95.2, 96.9, 33.9, 0.03),
)
"""Table III: Abdoli Iterative and Penalty vs SSGAN (t1 = 1.6 s), EnvNet-v2, UrbanSound8K.

The paper gives one time (0.03 s per successful example) for SSGAN without naming the subset;
it is repeated on both rows."""


def table_ii(t1_seconds: float, subset: Subset) -> PaperRow:
    """Table II's row for segment length ``t1_seconds`` (0.8, 1.6, 3.2 or 4.0) and ``subset``."""
    for row in TABLE_II:
        if row.subset == subset and row.label == f"SSGAN t1={float(t1_seconds)} s":
            return row
    raise ValueError(
        f"t1_seconds={t1_seconds!r}, subset={subset!r}: Table II has t1 in 0.8, 1.6, 3.2, 4.0 "
        "and subsets 'train', 'test'"
    )


def table_iii(method: str, subset: Subset) -> PaperRow:
    """Table III's row for ``method`` ("iterative", "penalty" or "ssgan") and ``subset``."""
    prefix = {"iterative": "Iterative", "penalty": "Penalty", "ssgan": "SSGAN"}.get(method.lower())
    for row in TABLE_III:
        if prefix is not None and row.subset == subset and row.label.startswith(prefix):
            return row
    raise ValueError(
        f"method={method!r}, subset={subset!r}: Table III has methods 'iterative', 'penalty', "
        "'ssgan' and subsets 'train', 'test'"
    )


def paper_rows_for(
    attack: str, *, dataset: str | None = None, subset: Subset = "test", t1_seconds: float = 1.6
) -> list[PaperRow]:
    """The paper's rows that a run of ``attack`` on ``dataset``/``subset`` can be compared with.

    SSGAN on ESC-50 / ESC-10 gets Table II's row for ``t1_seconds``; SSGAN on UrbanSound8K and
    the Abdoli baselines get Table III's. Empty when the paper has nothing comparable.
    """
    name = attack.lower()
    ds = (dataset or "").lower()
    rows: list[PaperRow] = []
    if name == "ssgan":
        if ds.startswith("esc") or not ds:
            with contextlib.suppress(ValueError):  # a t1 the paper did not try
                rows.append(table_ii(t1_seconds, subset))
        if ds.startswith("urban") or not ds:
            rows.append(table_iii("ssgan", subset))
    elif name in (
        "iterative",
        "penalty",
        "abdoli_iterative",
        "abdoli_penalty",
        "uap_iterative",
        "uap_penalty",
    ):
        rows.append(table_iii("penalty" if "penalty" in name else "iterative", subset))
    return rows


__all__ = ["TABLE_II", "TABLE_III", "PaperRow", "paper_rows_for", "table_ii", "table_iii"]
