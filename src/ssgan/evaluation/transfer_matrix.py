"""The transfer matrix: attacks made against each victim, scored on every victim.

``transfer_matrix`` runs, for each attack and each *source* victim, one ``evaluate_attack`` on
the source with every victim as a transfer victim (``ssgan.evaluation.transfer``: ASR over the
clips each victim gets right, MSNR over its successes), so it shards under torchrun like any
evaluation; ``ssgan.report.transfer.write_transfer_report`` writes, per attack, a (source x
target) table and heat map (``ssgan reproduce transfer``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ssgan.evaluation.loop import evaluate_attack

logger = logging.getLogger(__name__)

__all__ = ["transfer_matrix"]


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
