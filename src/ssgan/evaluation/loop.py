"""Run an attack over a dataset: per-clip records, a summary with the paper's metrics, a report.

``evaluate_attack(attack, victim, dataset)`` attacks every clip once, classifies the clean clip,
the adversarial clip and the adversarial clip after a 16-bit PCM round trip, and computes per
clip the SNR, segmental SNR and log-spectral distance (definitions in ``ssgan.metrics``).
Untargeted by default; with ``target=`` every clip is aimed at a class and succeeds when the
victim outputs it (``ssgan.evaluation.targeted``). With ``out_dir`` it writes:

- ``records.jsonl``: one JSON object a clip, in dataset order: ``index, file, label,
  label_name, clean_pred, adv_pred, adv_pred_pcm16, correct, success, success_pcm16, snr_db,
  snr_box_db (the SNR in [16]'s box convention, ``ssgan.metrics``),
  segmental_snr_db, lsd_db, linf, seconds, n_samples`` (+ ``target, changed`` with ``target=``,
  ``transforms`` with ``transforms=``, ``transfer`` with ``transfer_victims=``);
- ``summary.json``: untargeted ``n, n_right, n_success, n_success_pcm16, acc, asr, msnr_db,
  msnr_box_db, mean_snr_db, mean_snr_box_db, asr_pcm16, segmental_snr_db, lsd_db``
  (``ssgan.evaluation.summary``), targeted the figures of ``ssgan.evaluation.targeted``; then
  ``seconds_per_example, device, timing_warm, ...`` (+ ``transforms``: ACC and ASR after each
  channel transform, ``ssgan.evaluation.robustness``; + ``transfer``: each other victim's ASR,
  ``ssgan.evaluation.transfer``);
- untargeted ``report.md`` + ``report.html`` (``ssgan.report.write_report``), targeted
  ``targeted.md`` + ``targeted_matrix.png``.

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
records (``seconds`` aside), random ones are reproducible at a given number of processes.
Targets do not depend on the ranks (``TargetPlan``). The timing then leaves out each rank's
first batch and is per process, not the job's throughput.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ssgan import distributed
from ssgan.evaluation.clips import batches_by_length, checked_adversarial, read_clips
from ssgan.evaluation.decisions import device_of
from ssgan.evaluation.robustness import resolve_transforms, score_transforms, summarize_transforms
from ssgan.evaluation.summary import RECORDS_NAME, SUMMARY_NAME, summarize
from ssgan.evaluation.targeted import TargetPlan, summarize_targeted
from ssgan.evaluation.transfer import score_transfer, summarize_transfer
from ssgan.io import atomic_write_json, atomic_write_text, json_safe
from ssgan.metrics import (
    TimePerExample,
    Timer,
    log_spectral_distance_db,
    pcm16_roundtrip,
    segmental_snr_db,
    snr_box_db,
    snr_db,
    success_mask,
)
from ssgan.paper import PaperRow
from ssgan.report import write_report
from ssgan.report.plots import Example
from ssgan.report.targeted import write_targeted_report
from ssgan.transforms import Transform

logger = logging.getLogger(__name__)

__all__ = ["AttackLike", "EvaluationResult", "evaluate_attack", "evaluate_targeted"]

# A report example with where it came from: (batch position, position in batch, example), the
# single process's order once the ranks' candidates are merged.
_Candidate = tuple[int, int, Example]


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


def _name(i: int, class_names: Sequence[str]) -> str:
    return class_names[i] if 0 <= i < len(class_names) else str(i)


def _pick_examples(
    successes: list[Example], failures: list[Example], n_examples: int
) -> list[Example]:
    """Half successes, half failures (successes first); fill from the other kind when short."""
    n_ok = min(len(successes), max(n_examples - min(len(failures), n_examples // 2), 0))
    n_fail = min(len(failures), n_examples - n_ok)
    return successes[:n_ok] + failures[:n_fail]


def evaluate_attack(
    attack: AttackLike | Callable[..., Tensor],
    victim: nn.Module,
    dataset: Any,
    *,
    target: str | int | None = None,
    transfer_victims: Mapping[str, nn.Module] | None = None,
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
    """Attack every clip of ``dataset`` once and measure the paper's metrics.

    ``attack``: called as ``attack(victim, x, y, generator=g)`` (targeted: ``attack(victim, x,
    y, target=t, generator=g)``) with ``x`` ``(batch, time)`` on the victim's device, returning
    ``x_adv`` of the same shape. ``victim``: ``(batch, time) -> logits``; put in eval mode for
    the run, its mode restored after. ``dataset``: any object with ``.waveforms()`` (list of
    ``(time,)`` tensors, lengths may differ: equal lengths are batched together), ``.labels()``,
    ``.class_names`` and ``.clips`` (each with ``.name``). ``target``: None (untargeted), a mode
    of ``ssgan.targets.choose_targets`` or a class index (``ssgan.evaluation.targeted``).
    ``transfer_victims``: name -> another victim that also classifies every clean and
    adversarial clip (``ssgan.evaluation.transfer``). ``generator_seed`` seeds the one
    ``torch.Generator`` passed to every call (reproducible runs) and the random targets.
    ``progress`` shows a tqdm bar with ETA (for the CLI). ``n_examples`` clips (half successful,
    half not, when there are) keep their audio for the report. ``meta`` entries (attack name,
    victim, dataset, split, ...) are copied into the summary. With ``out_dir`` the records,
    summary and report are written there (see the module docstring). ``transforms``
    (``ssgan.transforms`` specs or ``Transform`` objects): the clean and adversarial clips are
    also classified after each; records gain ``transforms: {spec: {clean_pred, adv_pred,
    correct, success}}`` and the summary ``transforms: {spec: {acc, asr, kept, ...}}``
    (``ssgan.evaluation.robustness``).
    """
    channel = resolve_transforms(transforms)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be an integer >= 1")
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 0:
        raise ValueError(f"n_examples={n_examples!r}: must be an integer >= 0")
    clips = read_clips(dataset)
    waveforms, labels, files = clips.waveforms, clips.labels, clips.files
    names = list(class_names if class_names is not None else dataset.class_names)
    plan = None if target is None else TargetPlan.plan(target, labels, len(names), generator_seed)
    attacked = list(range(len(labels))) if plan is None else plan.attacked
    others = dict(transfer_victims or {})
    device = device_of(victim)
    timing = TimePerExample(device=str(device))
    rank, world = distributed.rank(), distributed.world_size()
    seed = generator_seed if rank == 0 else distributed.rank_seed(generator_seed, rank)
    generator = torch.Generator().manual_seed(seed)
    records: dict[int, dict[str, Any]] = {}  # dataset index -> record
    successes: list[_Candidate] = []
    failures: list[_Candidate] = []
    by_length = batches_by_length([waveforms[i].numel() for i in attacked], batch_size)
    batches = list(enumerate([[attacked[k] for k in part] for part in by_length]))
    mine = distributed.shard(batches)
    keep = n_examples  # of each kind; the mix is picked at the end
    modes = [(m, m.training) for m in (victim, *others.values())]
    for m, _ in modes:
        m.eval()
    start = time.perf_counter()
    bar = tqdm(
        total=sum(len(b) for _, b in mine), unit="clip",
        desc="attack" if plan is None else "targeted attack",
        disable=not (progress and distributed.is_main()),
    )  # fmt: skip
    try:
        for position, batch in mine:
            x = torch.stack([waveforms[i] for i in batch]).to(device)
            y = torch.tensor([labels[i] for i in batch], device=device)
            with torch.no_grad():
                clean_logits = victim(x)
            clean_pred = clean_logits.argmax(dim=1)
            aim = None if plan is None else plan.targets(batch, y, clean_logits)
            with Timer(device) as timer:
                if aim is None:
                    x_adv = attack(victim, x, y, generator=generator)
                else:
                    x_adv = attack(victim, x, y, target=aim, generator=generator)
            x_adv = checked_adversarial(x_adv, x, [files[i] for i in batch])
            timing.add(timer.seconds, len(batch))
            with torch.no_grad():
                adv_pred = victim(x_adv).argmax(dim=1)
                adv_pred_pcm = victim(pcm16_roundtrip(x_adv)).argmax(dim=1)
            success = success_mask(y, clean_pred, adv_pred, target=aim).tolist()
            success_pcm = success_mask(y, clean_pred, adv_pred_pcm, target=aim).tolist()
            after = score_transforms(
                victim, x, x_adv, y, channel, seed=generator_seed, first_index=batch[0], target=aim
            )
            transferred = score_transfer(others, x, x_adv, y, aim)
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
                    "success": bool(success[k]),
                    "success_pcm16": bool(success_pcm[k]),
                    "snr_db": float(snr[k]),
                    "snr_box_db": float(snr_box[k]),
                    "segmental_snr_db": float(seg[k]),
                    "lsd_db": float(lsd[k]),
                    "linf": float(linf[k]),
                    "seconds": timer.seconds / len(batch),
                    "n_samples": int(x.shape[1]),
                }
                if aim is not None:
                    # "changed": a right clip the attack moved anywhere, target reached or not
                    rec.update(target=int(aim[k]), changed=correct and a != labels[i])
                if channel:
                    rec["transforms"] = after[k]
                if others:
                    rec["transfer"] = transferred[k]
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
        for m, training in modes:
            m.train(training)
    if world > 1:
        records, successes, failures = _merge_ranks(records, attacked, successes, failures, timing)
    ordered = [records[i] for i in attacked]
    wall = time.perf_counter() - start

    if plan is None:
        summary = summarize(ordered)
    else:
        summary = summarize_targeted(ordered, len(names))
        summary.update(target_mode=plan.mode_name(names), n_skipped=len(labels) - len(attacked))
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
        summary["transforms"] = summarize_transforms(ordered)
    if others:
        summary["transfer"] = summarize_transfer(ordered)
    if meta:
        summary.update(meta)
    examples = _pick_examples(
        [e for *_, e in sorted(successes, key=lambda t: t[:2])],
        [e for *_, e in sorted(failures, key=lambda t: t[:2])],
        n_examples,
    )
    result = EvaluationResult(summary=summary, records=ordered, examples=examples)
    if plan is None:
        logger.info(
            "evaluated %d clips: ACC %.3f ASR %.3f MSNR (true) %.1f dB, (box, [16]) %.1f dB",
            summary["n"],
            summary["acc"],
            summary["asr"],
            summary["msnr_db"],
            summary["msnr_box_db"],
        )
    else:
        logger.info("targeted: %d/%d right clips sent to their target (MSNR true %.1f dB, "
                    "box [16] %.1f dB)", summary["n_success"], summary["n_right"],
                    summary["msnr_db"], summary["msnr_box_db"])  # fmt: skip
    if out_dir is not None and distributed.is_main():
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            out / RECORDS_NAME,
            "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in ordered),
        )
        atomic_write_json(out / SUMMARY_NAME, json_safe(summary))
        result.out_dir = out
        if plan is None:
            result.report_md, result.report_html = write_report(
                out,
                summary,
                ordered,
                examples,
                title=title or f"Attack evaluation: {summary.get('attack', type(attack).__name__)}",
                paper_rows=paper_rows,
            )
        else:
            result.report_md = write_targeted_report(out, summary)
    distributed.barrier("waiting for rank 0 to write the evaluation")
    return result


def evaluate_targeted(
    attack: AttackLike | Callable[..., Tensor],
    victim: nn.Module,
    dataset: Any,
    *,
    target: str | int = "random",
    transfer_victims: Mapping[str, nn.Module] | None = None,
    generator_seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    out_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    meta: dict[str, Any] | None = None,
    transforms: Sequence[str | Transform] = (),
) -> EvaluationResult:
    """``evaluate_attack`` aiming every clip at ``target`` (random targets by default), keeping
    no report examples: the targeted report is the (true x target) matrix, not clips."""
    return evaluate_attack(
        attack, victim, dataset, target=target, transfer_victims=transfer_victims,
        generator_seed=generator_seed, batch_size=batch_size, progress=progress,
        out_dir=out_dir, class_names=class_names, n_examples=0, meta=meta, transforms=transforms,
    )  # fmt: skip


def _merge_ranks(
    records: dict[int, dict[str, Any]],
    attacked: Sequence[int],
    successes: list[_Candidate],
    failures: list[_Candidate],
    timing: TimePerExample,
) -> tuple[dict[int, dict[str, Any]], list[_Candidate], list[_Candidate]]:
    """Every rank's records, candidate examples and batch timings merged (on every rank), each
    of the ``attacked`` clips checked to have a record; ``timing`` then excludes each rank's
    first batch (its warm-up)."""
    mine: dict[str, Any] = {
        "records": records,
        "successes": successes,
        "failures": failures,
        "batches": timing.batches,
    }
    parts = distributed.all_gather(mine)
    merged = {i: rec for part in parts for i, rec in part["records"].items()}
    missing = [i for i in attacked if i not in merged]
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
