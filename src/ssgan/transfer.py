"""Transfer: do adversarial clips made against one victim fool another?

``CapturingAttack`` wraps any attack and keeps, per call, the clean clips, labels and the
adversarial clips it returned (on the CPU), so one ``evaluate_attack`` run against the *source*
victim yields the clips; ``score_transfer`` then classifies them with each *target* victim.

Definition (the paper's ASR, eq. 9, evaluated on the target victim): ``n_right`` = clips the
target victim classifies correctly when clean; ``n_success`` = those of them whose adversarial
version (made against the source) it misclassifies; ``asr = n_success / n_right``; ``msnr_db`` =
mean SNR over those successes (``msnr_box_db``: the same in [16]'s box convention,
``ssgan.metrics``). A clip the target victim already gets wrong is never counted,
whatever the source victim did with it. Scoring the source victim itself gives its own ASR.

``transfer_matrix`` runs this for several source victims and attacks and writes, per attack, a
(source x target) table and heat map (``ssgan reproduce transfer``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.evaluation import device_of, json_safe
from ssgan.io import atomic_write_json, atomic_write_text
from ssgan.metrics import msnr_db, snr_box_db, snr_db
from ssgan.report.heatmap import heatmap_png, matrix_markdown

logger = logging.getLogger(__name__)

__all__ = ["CapturingAttack", "score_transfer", "transfer_matrix", "write_transfer_report"]


@dataclass
class CapturingAttack:
    """``attack`` unchanged, plus every call's ``(x, y, x_adv)`` kept on the CPU in ``calls``.

    Attribute reads fall through to the wrapped attack (``config()``, ``segment_seconds``...), so
    it can stand in wherever the attack is passed.
    """

    attack: Any
    calls: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, **kwargs: Any) -> Tensor:
        x_adv = self.attack(model, x, y, **kwargs)
        self.calls.append((x.detach().cpu(), y.detach().cpu(), x_adv.detach().cpu()))
        return x_adv

    def __getattr__(self, name: str) -> Any:
        if name == "attack":  # not yet set (copy / unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.attack, name)


def score_transfer(
    calls: Sequence[tuple[Tensor, Tensor, Tensor]], victim: nn.Module
) -> dict[str, Any]:
    """ASR and MSNR of the captured ``(x, y, x_adv)`` batches on ``victim`` (module docstring)."""
    device = device_of(victim)
    was_training = victim.training
    victim.eval()
    ys, clean, adv, snrs, boxes = [], [], [], [], []
    try:
        with torch.no_grad():
            for x, y, x_adv in calls:
                clean.append(victim(x.to(device)).argmax(1).cpu())
                adv.append(victim(x_adv.to(device)).argmax(1).cpu())
                ys.append(y)
                snrs.append(snr_db(x, x_adv))
                boxes.append(snr_box_db(x, x_adv))
    finally:
        victim.train(was_training)
    if not ys:
        return {"n": 0, "n_right": 0, "n_success": 0, "acc": math.nan, "asr": math.nan,
                "msnr_db": math.nan, "msnr_box_db": math.nan}  # fmt: skip
    y_all, c_all, a_all, s_all, b_all = (torch.cat(v) for v in (ys, clean, adv, snrs, boxes))
    right = c_all == y_all
    success = right & (a_all != y_all)
    n_right = int(right.sum())
    return {
        "n": int(y_all.numel()),
        "n_right": n_right,
        "n_success": int(success.sum()),
        "acc": n_right / y_all.numel(),
        "asr": int(success.sum()) / n_right if n_right else math.nan,
        "msnr_db": msnr_db(s_all, success),
        "msnr_box_db": msnr_db(b_all, success),
    }


def transfer_matrix(
    attacks: Mapping[str, Callable[[str], Any]],
    victims: Mapping[str, nn.Module],
    dataset: Any,
    *,
    evaluate: Callable[..., Any],
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """For each attack and source victim, attack ``dataset`` and score on every victim.

    Args:
        attacks: attack name -> ``make(source_name)`` returning the attack to use against that
            source (SSGAN needs the generator trained on it; PGD and C&W ignore the name).
        victims: name -> victim; each is in turn the source and a target.
        evaluate: ``ssgan.evaluation.evaluate_attack`` (passed in to keep this module light).

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
            captured = CapturingAttack(make(source))
            evaluate(captured, victims[source], dataset, generator_seed=seed,
                     batch_size=batch_size, progress=progress, n_examples=0)  # fmt: skip
            row = [score_transfer(captured.calls, victims[target]) for target in names]
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
