"""The untargeted summary figures from per-clip records, and reading the records back."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RECORDS_NAME", "SUMMARY_NAME", "read_records", "summarize"]

RECORDS_NAME = "records.jsonl"
SUMMARY_NAME = "summary.json"


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary figures from per-clip records (the keys ``evaluate_attack`` writes).

    ``acc = n_right / n``; ``asr = n_success / n_right`` (nan when ``n_right = 0``);
    ``msnr_db`` = mean ``snr_db`` over successes; ``mean_snr_db`` = mean finite ``snr_db`` over
    all clips (unperturbed clips, SNR +inf, counted in ``n_unperturbed`` instead);
    ``msnr_box_db`` / ``mean_snr_box_db`` the same in [16]'s box convention (``snr_box_db``);
    ``asr_pcm16 = n_success_pcm16 / n_right``; ``segmental_snr_db`` and ``lsd_db`` = means over
    successes. Records read back from JSON (``null`` for non-finite values) are accepted.
    """

    def num(v: Any) -> float:
        return math.nan if v is None else float(v)

    n = len(records)
    n_right = sum(bool(r["correct"]) for r in records)
    ok = [r for r in records if r["success"]]
    n_success_pcm = sum(bool(r["success_pcm16"]) for r in records)
    return {
        "n": n,
        "n_right": n_right,
        "n_success": len(ok),
        "n_success_pcm16": n_success_pcm,
        "n_unperturbed": sum(num(r["snr_db"]) == math.inf or r["linf"] == 0 for r in records),
        "acc": n_right / n if n else math.nan,
        "asr": len(ok) / n_right if n_right else math.nan,
        "asr_pcm16": n_success_pcm / n_right if n_right else math.nan,
        "msnr_db": _mean([num(r["snr_db"]) for r in ok]),
        "msnr_box_db": _mean([num(r.get("snr_box_db")) for r in ok]),
        "mean_snr_db": _mean([num(r["snr_db"]) for r in records]),
        "mean_snr_box_db": _mean([num(r.get("snr_box_db")) for r in records]),
        "segmental_snr_db": _mean([num(r["segmental_snr_db"]) for r in ok]),
        "lsd_db": _mean([num(r["lsd_db"]) for r in ok]),
    }


def read_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """The records an evaluation wrote to ``out_dir/records.jsonl``, in dataset order."""
    path = Path(out_dir) / RECORDS_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
