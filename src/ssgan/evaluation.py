"""Run an attack over a dataset: per-clip records, a summary with the paper's metrics, a report.

``evaluate_attack(attack, victim, dataset)`` attacks every clip once (untargeted), classifies
the clean clip, the adversarial clip and the adversarial clip after a 16-bit PCM round trip, and
computes per clip the SNR, segmental SNR and log-spectral distance (definitions in
``ssgan.metrics``). With ``out_dir`` it writes:

- ``records.jsonl``: one JSON object a clip, in dataset order: ``index, file, label,
  label_name, clean_pred, adv_pred, adv_pred_pcm16, correct, success, success_pcm16, snr_db,
  snr_box_db (the SNR in [16]'s box convention, ``ssgan.metrics``),
  segmental_snr_db, lsd_db, linf, seconds, n_samples`` (+ ``transforms`` with ``transforms=``);
- ``summary.json``: ``n, n_right, n_success, n_success_pcm16, acc, asr, msnr_db, msnr_box_db,
  mean_snr_db, mean_snr_box_db,
  asr_pcm16, segmental_snr_db, lsd_db, seconds_per_example, device, timing_warm, ...`` (+
  ``transforms``: ACC and ASR after each channel transform, see ``ssgan.robustness``);
- ``report.md`` + ``report.html`` (``ssgan.report.write_report``).

Fractions (``acc``, ``asr``, ``asr_pcm16``) are in [0, 1]. JSON has no NaN or infinity: an
undefined figure (e.g. ASR with N_right = 0, MSNR with no success) or an infinite one (SNR of an
unperturbed clip, ``delta = 0``) is written as ``null``.

Timing: each batch's ``attack(...)`` call is timed (device synchronised); ``seconds`` of a clip is
its batch's time over the batch size, and ``seconds_per_example`` averages the batches after the
first (warm-up), or all of them when there is only one batch (``timing_warm`` false).

Under ``torchrun`` (``ssgan.distributed``) the batches are shared out: rank ``r`` of ``w`` attacks
batches ``r, r + w, ...`` of the single process's list (the same batches), the records and
report examples are merged in the single process's order, and rank 0 alone writes the files.
Rank 0's attack generator is seeded as in a single process, rank ``r > 0``'s with
``distributed.rank_seed(generator_seed, r)``: deterministic attacks give the single process's
records (``seconds`` aside), random ones are reproducible at a given number of processes. The
timing then leaves out each rank's first batch and is per process, not the job's throughput.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ssgan import distributed
from ssgan.io import atomic_write_json, atomic_write_text, json_safe
from ssgan.metrics import (
    TimePerExample,
    Timer,
    log_spectral_distance_db,
    pcm16_roundtrip,
    segmental_snr_db,
    snr_box_db,
    snr_db,
)
from ssgan.paper import PaperRow
from ssgan.report import write_report
from ssgan.report.plots import Example
from ssgan.robustness import resolve_transforms, score_transforms, summarize_transforms
from ssgan.transforms import Transform

logger = logging.getLogger(__name__)

RECORDS_NAME = "records.jsonl"
SUMMARY_NAME = "summary.json"


class AttackLike(Protocol):
    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        target: Tensor | None = ...,
        generator: torch.Generator | None = ...,
    ) -> Tensor: ...


@dataclass
class EvaluationResult:
    """What ``evaluate_attack`` measured; paths are set when it was given an ``out_dir``."""

    summary: dict[str, Any]
    records: list[dict[str, Any]]
    examples: list[Example] = field(default_factory=list)
    out_dir: Path | None = None
    report_md: Path | None = None
    report_html: Path | None = None


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def batches_by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by clip length (equal lengths batch together), chunks of ``batch_size``,
    ordered by their first index so progress follows the dataset order."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    out = [g[k : k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]
    return sorted(out, key=lambda b: b[0])


def device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _name(i: int, class_names: Sequence[str]) -> str:
    return class_names[i] if 0 <= i < len(class_names) else str(i)


def _pick_examples(
    successes: list[Example], failures: list[Example], n_examples: int
) -> list[Example]:
    """Half successes, half failures (successes first); fill from the other kind when short."""
    n_ok = min(len(successes), max(n_examples - min(len(failures), n_examples // 2), 0))
    n_fail = min(len(failures), n_examples - n_ok)
    return successes[:n_ok] + failures[:n_fail]


def checked_adversarial(x_adv: Any, x: Tensor, files: Sequence[str]) -> Tensor:
    """``x_adv`` detached, after checking it is a tensor of ``x``'s shape with finite samples.

    Non-finite audio (an attack on a victim with NaN weights, or one that diverged) would
    otherwise change the victim's decision and be counted as a success.
    """
    if not isinstance(x_adv, Tensor) or x_adv.shape != x.shape:
        got = tuple(x_adv.shape) if isinstance(x_adv, Tensor) else type(x_adv).__name__
        raise ValueError(f"attack returned {got}, expected x's shape {tuple(x.shape)}")
    finite = torch.isfinite(x_adv.detach()).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = [f for f, ok in zip(files, finite.tolist(), strict=True) if not ok]
        raise ValueError(
            f"attack returned non-finite samples (NaN or inf) for {len(bad)} clip(s), first "
            f"{bad[0]}: a victim or generator with non-finite weights, or a diverged attack"
        )
    return x_adv.detach()


def evaluate_attack(
    attack: AttackLike | Callable[..., Tensor],
    victim: nn.Module,
    dataset: Any,
    *,
    generator_seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    out_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    n_examples: int = 4,
    title: str | None = None,
    paper_rows: Sequence[PaperRow] | None = None,
    meta: dict[str, Any] | None = None,
    transforms: Sequence[str | Transform] = (),
) -> EvaluationResult:
    """Attack every clip of ``dataset`` once and measure the paper's metrics (untargeted).

    ``attack``: called as ``attack(victim, x, y, generator=g)`` with ``x`` ``(batch, time)`` on the
    victim's device, returning ``x_adv`` of the same shape. ``victim``: ``(batch, time) ->
    logits``; put in eval mode for the run, its mode restored after. ``dataset``: any object with
    ``.waveforms()`` (list of ``(time,)`` tensors, lengths may differ: equal lengths are batched
    together), ``.labels()``, ``.class_names`` and ``.clips`` (each with ``.name``).
    ``generator_seed`` seeds the one ``torch.Generator`` passed to every call (reproducible
    runs). ``progress`` shows a tqdm bar with ETA (for the CLI). ``n_examples`` clips (half
    successful, half not, when there are) keep their audio for the report. ``meta`` entries
    (attack name, victim, dataset, split, ...) are copied into the summary. With ``out_dir``
    the records, summary and report are written there (see the module docstring).
    ``transforms`` (``ssgan.transforms`` specs or ``Transform`` objects): the clean and adversarial
    clips are also classified after each; records gain ``transforms: {spec: {clean_pred,
    adv_pred, correct, success}}`` and the summary ``transforms: {spec: {acc, asr, kept, ...}}``
    (``ssgan.robustness``).
    """
    channel = resolve_transforms(transforms)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be an integer >= 1")
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 0:
        raise ValueError(f"n_examples={n_examples!r}: must be an integer >= 0")
    waveforms = [torch.as_tensor(w).float().reshape(-1) for w in dataset.waveforms()]
    labels = [int(v) for v in dataset.labels()]
    files = [str(c.name) for c in dataset.clips]
    if not waveforms:
        raise ValueError("dataset has no clips to attack")
    if not len(waveforms) == len(labels) == len(files):
        raise ValueError(
            f"dataset is inconsistent: {len(waveforms)} waveforms, {len(labels)} labels, "
            f"{len(files)} clips"
        )
    names = list(class_names if class_names is not None else dataset.class_names)
    device = device_of(victim)
    timing = TimePerExample(device=str(device))
    rank, world = distributed.rank(), distributed.world_size()
    seed = generator_seed if rank == 0 else distributed.rank_seed(generator_seed, rank)
    generator = torch.Generator().manual_seed(seed)
    records: list[dict[str, Any]] = [{} for _ in waveforms]
    # (batch position, position in batch, example): the single process's order when merged
    successes: list[tuple[int, int, Example]] = []
    failures: list[tuple[int, int, Example]] = []
    batches = list(enumerate(batches_by_length([w.numel() for w in waveforms], batch_size)))
    mine = distributed.shard(batches)
    keep = n_examples  # of each kind; the mix is picked at the end
    was_training = victim.training
    victim.eval()
    start = time.perf_counter()
    bar = tqdm(
        total=sum(len(b) for _, b in mine), unit="clip", desc="attack",
        disable=not (progress and distributed.is_main()),
    )  # fmt: skip
    try:
        for position, batch in mine:
            x = torch.stack([waveforms[i] for i in batch]).to(device)
            y = torch.tensor([labels[i] for i in batch], device=device)
            with torch.no_grad():
                clean_pred = victim(x).argmax(dim=1)
            with Timer(device) as timer:
                x_adv = attack(victim, x, y, generator=generator)
            x_adv = checked_adversarial(x_adv, x, [files[i] for i in batch])
            timing.add(timer.seconds, len(batch))
            with torch.no_grad():
                adv_pred = victim(x_adv).argmax(dim=1)
                adv_pred_pcm = victim(pcm16_roundtrip(x_adv)).argmax(dim=1)
            after = score_transforms(
                victim, x, x_adv, y, channel, seed=generator_seed, first_index=batch[0]
            )
            x_c, a_c = x.cpu(), x_adv.cpu()
            snr = snr_db(x_c, a_c).tolist()
            snr_box = snr_box_db(x_c, a_c).tolist()
            seg = segmental_snr_db(x_c, a_c).tolist()
            lsd = log_spectral_distance_db(x_c, a_c).tolist()
            linf = (a_c - x_c).abs().amax(dim=1).tolist()
            for k, i in enumerate(batch):
                c, a, p = int(clean_pred[k]), int(adv_pred[k]), int(adv_pred_pcm[k])
                correct = c == labels[i]
                rec = {
                    "index": i,
                    "file": files[i],
                    "label": labels[i],
                    "label_name": _name(labels[i], names),
                    "clean_pred": c,
                    "adv_pred": a,
                    "adv_pred_pcm16": p,
                    "correct": correct,
                    "success": correct and a != labels[i],
                    "success_pcm16": correct and p != labels[i],
                    "snr_db": float(snr[k]),
                    "snr_box_db": float(snr_box[k]),
                    "segmental_snr_db": float(seg[k]),
                    "lsd_db": float(lsd[k]),
                    "linf": float(linf[k]),
                    "seconds": timer.seconds / len(batch),
                    "n_samples": int(x.shape[1]),
                }
                if channel:
                    rec["transforms"] = after[k]
                records[i] = rec
                # Failures are correctly classified clips the attack did not flip; clips the
                # victim already gets wrong say nothing about the attack.
                pool = successes if rec["success"] else failures if correct else None
                if pool is not None and len(pool) < keep:
                    example = Example(
                        name=files[i],
                        label=labels[i],
                        clean_pred=c,
                        adv_pred=a,
                        success=bool(rec["success"]),
                        snr_db=float(snr[k]),
                        snr_box_db=float(snr_box[k]),
                        x=x_c[k].numpy().copy(),
                        x_adv=a_c[k].numpy().copy(),
                        label_name=_name(labels[i], names),
                        clean_pred_name=_name(c, names),
                        adv_pred_name=_name(a, names),
                        adv_pred_pcm16=p,
                    )
                    pool.append((position, k, example))
            bar.update(len(batch))
    finally:
        bar.close()
        victim.train(was_training)
    if world > 1:
        records, successes, failures = _merge_ranks(records, successes, failures, timing)
    wall = time.perf_counter() - start

    summary = summarize(records)
    summary.update(timing.as_dict())
    summary["timing_warm"] = summary.pop("warm")
    summary.update(
        {
            "generator_seed": generator_seed,
            "batch_size": batch_size,
            "wall_seconds": wall,
            "class_names": names,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    if channel:
        summary["transforms"] = summarize_transforms(records)
    if meta:
        summary.update(meta)
    examples = _pick_examples(
        [e for *_, e in sorted(successes, key=lambda t: t[:2])],
        [e for *_, e in sorted(failures, key=lambda t: t[:2])],
        n_examples,
    )
    result = EvaluationResult(summary=summary, records=records, examples=examples)
    logger.info(
        "evaluated %d clips: ACC %.3f ASR %.3f MSNR (true) %.1f dB, (box, [16]) %.1f dB",
        summary["n"],
        summary["acc"],
        summary["asr"],
        summary["msnr_db"],
        summary["msnr_box_db"],
    )
    if out_dir is not None and distributed.is_main():
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            out / RECORDS_NAME,
            "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in records),
        )
        atomic_write_json(out / SUMMARY_NAME, json_safe(summary))
        md, html = write_report(
            out,
            summary,
            records,
            examples,
            title=title or f"Attack evaluation: {summary.get('attack', type(attack).__name__)}",
            paper_rows=paper_rows,
        )
        result.out_dir, result.report_md, result.report_html = out, md, html
    distributed.barrier("waiting for rank 0 to write the evaluation")
    return result


def _merge_ranks(
    records: list[dict[str, Any]],
    successes: list[tuple[int, int, Example]],
    failures: list[tuple[int, int, Example]],
    timing: TimePerExample,
) -> tuple[list[dict[str, Any]], list[tuple[int, int, Example]], list[tuple[int, int, Example]]]:
    """Every rank's records, candidate examples and batch timings merged (on every rank);
    ``timing`` then excludes each rank's first batch (its warm-up)."""
    mine: dict[str, Any] = {
        "records": {i: r for i, r in enumerate(records) if r},
        "successes": successes,
        "failures": failures,
        "batches": timing.batches,
    }
    parts = distributed.all_gather(mine)
    merged: list[dict[str, Any]] = [{} for _ in records]
    for part in parts:
        for i, rec in part["records"].items():
            merged[i] = rec
    missing = [i for i, r in enumerate(merged) if not r]
    if missing:
        raise distributed.DistributedError(f"no rank attacked clips {missing[:5]}")
    firsts = [p["batches"][:1] for p in parts]
    rests = [p["batches"][1:] for p in parts]
    timing.batches = [b for f in firsts for b in f] + [b for r in rests for b in r]
    timing.warmup_batches = sum(len(f) for f in firsts)
    return (
        merged,
        [t for p in parts for t in p["successes"]],
        [t for p in parts for t in p["failures"]],
    )


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


__all__ = [
    "RECORDS_NAME",
    "SUMMARY_NAME",
    "EvaluationResult",
    "evaluate_attack",
    "json_safe",
    "read_records",
    "summarize",
]
