"""Targeted evaluation: attack every clip towards a chosen class; success per (true, target).

``evaluate_targeted(attack, victim, dataset, target="random")`` picks one target per clip
(``ssgan.targets``: ``"random"``, ``"least-likely"`` or a fixed class), calls
``attack(victim, x, y, target=t)`` and records whether the victim then outputs the target.

Definitions (the paper's eqs. 9-11 with the targeted success of its eq. 1):

- ``n_right``: attacked clips the victim classifies correctly (clean);
- ``n_success``: those of them whose adversarial version the victim assigns to the target;
- ``success_rate = n_success / n_right``; ``msnr_db`` = mean SNR over the successes
  (``msnr_box_db``: the same in [16]'s box convention, ``ssgan.metrics``);
- ``untargeted_asr``: the share of the ``n_right`` clips whose decision changed at all;
- ``matrix``: for each (true class i, target class j) the same rate over the clips of class i
  aimed at j (``null`` where no such right clip was attacked), with the counts beside it.

With a fixed target class, clips of that class cannot be aimed at it and are skipped
(``n_skipped``). With ``out_dir``: ``records.jsonl`` (one object a clip: ``index, file, label,
target, clean_pred, adv_pred, correct, success, changed, snr_db, snr_box_db``), ``summary.json``,
``targeted.md`` (the matrix table) and ``targeted_matrix.png`` (its heat map).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ssgan.evaluation import (
    RECORDS_NAME,
    SUMMARY_NAME,
    AttackLike,
    EvaluationResult,
    batches_by_length,
    checked_adversarial,
    device_of,
    json_safe,
)
from ssgan.io import atomic_write_json, atomic_write_text
from ssgan.metrics import snr_box_db, snr_db
from ssgan.report.heatmap import heatmap_png, matrix_markdown
from ssgan.targets import choose_targets

logger = logging.getLogger(__name__)

__all__ = ["MATRIX_PNG", "evaluate_targeted", "summarize_targeted"]

MATRIX_PNG = "targeted_matrix.png"


def evaluate_targeted(
    attack: AttackLike,
    victim: nn.Module,
    dataset: Any,
    *,
    target: str | int = "random",
    generator_seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    out_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Attack every clip of ``dataset`` towards a target and measure targeted success.

    ``dataset`` as for ``ssgan.evaluation.evaluate_attack``; ``target`` a mode of
    ``ssgan.targets.choose_targets`` or a class index. One ``torch.Generator`` seeded with
    ``generator_seed`` draws the random targets and is passed to every attack call.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be an integer >= 1")
    waveforms = [torch.as_tensor(w).float().reshape(-1) for w in dataset.waveforms()]
    labels = [int(v) for v in dataset.labels()]
    files = [str(c.name) for c in dataset.clips]
    if not waveforms:
        raise ValueError("dataset has no clips to attack")
    names = list(class_names if class_names is not None else dataset.class_names)
    n_classes = len(names)
    device = device_of(victim)
    generator = torch.Generator().manual_seed(generator_seed)
    keep = [i for i in range(len(labels)) if not (isinstance(target, int) and labels[i] == target)]
    records: list[dict[str, Any]] = []
    was_training = victim.training
    victim.eval()
    bar = tqdm(total=len(keep), unit="clip", desc="targeted attack", disable=not progress)
    try:
        for part in batches_by_length([waveforms[i].numel() for i in keep], batch_size):
            batch = [keep[k] for k in part]
            x = torch.stack([waveforms[i] for i in batch]).to(device)
            y = torch.tensor([labels[i] for i in batch], device=device)
            with torch.no_grad():
                clean_logits = victim(x)
            t = choose_targets(target, y, n_classes=n_classes, logits=clean_logits,
                               generator=generator)  # fmt: skip
            x_adv = checked_adversarial(
                attack(victim, x, y, target=t, generator=generator), x, [files[i] for i in batch]
            )
            with torch.no_grad():
                adv_pred = victim(x_adv).argmax(dim=1)
            snr = snr_db(x.cpu(), x_adv.cpu()).tolist()
            snr_box = snr_box_db(x.cpu(), x_adv.cpu()).tolist()
            clean_pred = clean_logits.argmax(dim=1)
            for k, i in enumerate(batch):
                c, a, tk = int(clean_pred[k]), int(adv_pred[k]), int(t[k])
                correct = c == labels[i]
                records.append({
                    "index": i, "file": files[i], "label": labels[i], "target": tk,
                    "clean_pred": c, "adv_pred": a, "correct": correct,
                    "success": correct and a == tk, "changed": correct and a != labels[i],
                    "snr_db": float(snr[k]),
                    "snr_box_db": float(snr_box[k]),
                })  # fmt: skip
            bar.update(len(batch))
    finally:
        bar.close()
        victim.train(was_training)
    records.sort(key=lambda r: int(r["index"]))
    summary = summarize_targeted(records, n_classes)
    summary.update({"target_mode": target if isinstance(target, str) else names[target],
                    "n_skipped": len(labels) - len(keep), "class_names": names,
                    "generator_seed": generator_seed})  # fmt: skip
    if meta:
        summary.update(meta)
    logger.info("targeted: %d/%d right clips sent to their target (MSNR true %.1f dB, "
                "box [16] %.1f dB)", summary["n_success"], summary["n_right"],
                summary["msnr_db"], summary["msnr_box_db"])  # fmt: skip
    result = EvaluationResult(summary=summary, records=records)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / RECORDS_NAME, "".join(
            json.dumps(json_safe(r), sort_keys=True) + "\n" for r in records))  # fmt: skip
        atomic_write_json(out / SUMMARY_NAME, json_safe(summary))
        result.report_md = write_targeted_report(out, summary)
        result.out_dir = out
    return result


def summarize_targeted(records: Sequence[dict[str, Any]], n_classes: int) -> dict[str, Any]:
    """The summary and the (true x target) matrix of the module docstring from ``records``."""
    right = [r for r in records if r["correct"]]
    ok = [r for r in right if r["success"]]

    def mean_over_ok(key: str) -> float:
        vals = [float(r[key]) for r in ok if r.get(key) is not None]
        finite = [v for v in vals if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    n_right = [[0] * n_classes for _ in range(n_classes)]
    n_ok = [[0] * n_classes for _ in range(n_classes)]
    for r in right:
        n_right[r["label"]][r["target"]] += 1
        n_ok[r["label"]][r["target"]] += int(bool(r["success"]))
    rates = [[n_ok[i][j] / n_right[i][j] if n_right[i][j] else None for j in range(n_classes)]
             for i in range(n_classes)]  # fmt: skip
    return {
        "n": len(records),
        "n_right": len(right),
        "n_success": len(ok),
        "acc": len(right) / len(records) if records else math.nan,
        "success_rate": len(ok) / len(right) if right else math.nan,
        "untargeted_asr": (
            sum(bool(r["changed"]) for r in right) / len(right) if right else math.nan
        ),
        "msnr_db": mean_over_ok("snr_db"),
        "msnr_box_db": mean_over_ok("snr_box_db"),
        "matrix": {"success_rate": rates, "n_right": n_right, "n_success": n_ok},
    }


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
        f"{pct(summary['success_rate'])}; decision changed at all: "
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
