"""The transfer matrix: attacks made against each victim, scored on every victim.

``transfer_matrix`` runs, for each attack and each *source* victim, one ``evaluate_attack`` on
the source with every victim as a transfer victim (``ssgan.evaluation.transfer``: ASR over the
clips each victim gets right, MSNR over its successes), so it shards under torchrun like any
evaluation; ``write_transfer_report`` writes, per attack, a (source x target) table and heat map
(``ssgan reproduce transfer``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ssgan.evaluation.loop import evaluate_attack
from ssgan.io import atomic_write_json, atomic_write_text, json_safe
from ssgan.report.heatmap import heatmap_png, matrix_markdown

logger = logging.getLogger(__name__)

__all__ = ["transfer_matrix", "write_transfer_report"]


def transfer_matrix(
    attacks: Mapping[str, Callable[[str], Any]],
    victims: Mapping[str, nn.Module],
    dataset: Any,
    *,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """For each attack and source victim, attack ``dataset`` and score on every victim.

    Args:
        attacks: attack name -> ``make(source_name)`` returning the attack to use against that
            source (SSGAN needs the generator trained on it; PGD and C&W ignore the name).
        victims: name -> victim; each is in turn the source and a target.

    Returns:
        ``{"victims": [...], "attacks": {name: {"asr": [[...]], "msnr_db": [[...]],
        "msnr_box_db": [[...]], "n_right": [[...]], "n_success": [[...]]}}}`` with rows =
        sources, columns = targets.
    """
    names = list(victims)
    out: dict[str, Any] = {"victims": names, "attacks": {}}
    for attack_name, make in attacks.items():
        keys = ("asr", "msnr_db", "msnr_box_db", "n_right", "n_success")
        table: dict[str, list[list[Any]]] = {k: [] for k in keys}
        for source in names:
            result = evaluate_attack(make(source), victims[source], dataset,
                                     transfer_victims=victims, generator_seed=seed,
                                     batch_size=batch_size, progress=progress,
                                     n_examples=0)  # fmt: skip
            row = [result.summary["transfer"][target] for target in names]
            for key in table:
                table[key].append([r[key] for r in row])
            logger.info("transfer %s from %s: %s", attack_name, source,
                        [f"{r['asr']:.3f}" for r in row])  # fmt: skip
        out["attacks"][attack_name] = table
    return out


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
