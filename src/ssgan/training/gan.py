"""Training the SSGAN generator: the epoch loop, the choice of ``best``, and the run directory.

The paper's recipe (section V-A): G and D trained alternately, D first then G on each batch, D
with soft labels and labels flipped with probability 0.05, Adam at lr 1e-4 halved every 10
epochs, batch 16, 150 epochs, ``alpha = 10``, ``beta = 1``, ``m = 10``. Each batch holds one
random ``t1``-second crop per clip (SIP, ``ssgan.data.segments.random_crops``); the victim (the
clip-level classifier) scores the ``t1`` crop and is never updated.

The config and its profiles are in ``ssgan.training.gan_config``, the state and the D and G
steps in ``ssgan.training.gan_steps`` (both re-exported here), what a checkpoint holds, how a
run resumes and how its directory is prepared in ``ssgan.training.gan_checkpoint``, which epoch
is ``best`` in ``ssgan.training.gan_selection``. ``train_gan`` runs epochs, validates each
one with the ``validate`` callable it is given (a ``Validator``; the project's is
``ssgan.gan_validation.validate_generator``: the full any-length attack, ``SSGANAttack`` on whole
held-out clips against the clip-level victim, ASR and MSNR as ``ssgan.metrics`` defines them;
the training layer never imports the attack or the evaluation), appends ``metrics.jsonl``, and
writes checkpoints atomically:

- ``last.{safetensors,json,state.pt}``: G + D weights, metadata, optimiser / scheduler / RNG
  state, every epoch (``resume=True`` continues from it exactly, bitwise on CPU);
- ``best.{safetensors,json}``: the generator of the epoch with the best validation
  (highest ASR, then highest MSNR) -- what ``SSGANAttack.from_run`` loads;
- ``config.json``: the resolved config.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ssgan import distributed
from ssgan.data.segments import random_crops
from ssgan.io import json_safe
from ssgan.models.generators.front_end import front_spec
from ssgan.models.victim import victim_frozen
from ssgan.training import parallel
from ssgan.training.gan_checkpoint import prepare_run_dir, rank_streams, resume_state, save_run
from ssgan.training.gan_config import PROFILES, GANTrainConfig
from ssgan.training.gan_selection import Validator, msnr_key, selection_score
from ssgan.training.gan_steps import (
    ClipSource,
    GANState,
    clips_and_labels,
    crop_batches,
    d_step,
    g_step,
    make_state,
    training_victim,
    victim_gradient,
)
from ssgan.training.loop import check_finite, close_epoch

logger = logging.getLogger(__name__)

__all__ = [
    "PROFILES",
    "GANState",
    "GANTrainConfig",
    "Validator",
    "d_step",
    "fit_gan",
    "g_step",
    "make_state",
    "train_gan",
    "victim_classes",
]


def victim_classes(victim: nn.Module, clip: Tensor) -> int:
    """The victim's class count: its ``n_classes`` attribute, else one forward pass."""
    n = getattr(victim, "n_classes", None)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    with victim_frozen(victim), torch.no_grad():
        return int(victim(clip[None].to(next(victim.parameters()).device)).shape[-1])


def _run(
    config: GANTrainConfig,
    victim: nn.Module,
    train: ClipSource,
    val: ClipSource | None,
    out_dir: Path | None,
    *,
    resume: bool,
    device: str | torch.device,
    progress: bool,
    extra_meta: dict[str, Any],
    validate: Validator | None,
) -> tuple[GANState, dict[str, Any]]:
    clips, labels = clips_and_labels(train, "train")
    if not clips:
        raise ValueError("train: no clips to train on")
    if config.targeted and not config.n_classes:
        config = dataclasses.replace(config, n_classes=victim_classes(victim, clips[0]))
    if config.g_front:
        spec = front_spec(victim)
        if config.g_front_spec and tuple(config.g_front_spec) != spec:
            raise ValueError(f"g_front_spec={config.g_front_spec}: the victim's front is {spec}")
        config = dataclasses.replace(config, g_front_spec=spec)
    val_clips, val_labels = clips_and_labels(val, "val") if val is not None else ([], [])
    if config.val_clips is not None:
        val_clips, val_labels = val_clips[: config.val_clips], val_labels[: config.val_clips]
    if val_clips and validate is None:
        # without it the held-out clips would be ignored and best would be the first epoch
        raise ValueError(
            "validation clips given but no validate= callable: pass "
            "validate=ssgan.gan_validation.validate_generator (or no validation clips)"
        )
    world, rank = distributed.world_size(), distributed.rank()
    if world > 1:
        if out_dir is None:
            raise distributed.DistributedError("in-memory GAN training runs in one process")
        parallel.check_batch(config.batch_size, world)
    device = distributed.local_device(device) if world > 1 else device
    # Rank 0 checks and prepares the run directory; every rank gets the checkpoint to resume.
    resume, loaded = distributed.on_main(lambda: prepare_run_dir(out_dir, config, resume, world))
    if loaded is not None:
        assert out_dir is not None
        state = resume_state(out_dir, config, device, loaded, rank=rank)
        logger.info("resuming %s after epoch %d", out_dir, state.epoch)
    else:
        state = make_state(config, device=device)
        if config.g_front:
            state.G.load_front(victim)
        if world > 1:
            state.order_rng, state.rng = state.rng, parallel.rank_generator(config.seed, rank)
    if world > 1:
        state.G_train = parallel.wrap(state.G, torch.device(device))
        if config.gamma > 0:
            state.D_train = parallel.wrap(state.D, torch.device(device))
    with distributed.collectives("GAN training"):  # a lost rank: DistributedError, not a hang
        return _loop(state, config, victim, clips, labels, val_clips, val_labels, out_dir,
                     device=device, progress=progress, extra_meta=extra_meta,
                     validate=validate)  # fmt: skip


def _loop(
    state: GANState,
    config: GANTrainConfig,
    victim: nn.Module,
    clips: list[Tensor],
    labels: list[int],
    val_clips: list[Tensor],
    val_labels: list[int],
    out_dir: Path | None,
    *,
    device: str | torch.device,
    progress: bool,
    extra_meta: dict[str, Any],
    validate: Validator | None,
) -> tuple[GANState, dict[str, Any]]:
    world, rank = distributed.world_size(), distributed.rank()
    main = distributed.is_main()
    started = time.perf_counter()
    last: dict[str, float] = {}
    length = config.crop_samples
    train_victim = training_victim(victim, config.victim_crops)
    epochs = tqdm(
        range(state.epoch, config.epochs),
        desc="epochs",
        disable=not (progress and main),
        initial=state.epoch,
        total=config.epochs,
    )
    with victim_frozen(victim):
        for epoch in epochs:
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            state.G.snr_db = config.training_snr_db(epoch)
            batches = crop_batches(len(clips), config, state.batch_rng)
            bar = tqdm(batches, desc=f"epoch {epoch + 1}", leave=False,
                       disable=not (progress and main))  # fmt: skip
            for global_idx in bar:
                idx = parallel.rank_slice(global_idx, rank, world)
                if idx is None:
                    continue  # data parallel: too few clips left for every rank
                x = random_crops([clips[i] for i in idx.tolist()], length, generator=state.rng)
                x = x.to(device)
                y = torch.tensor([labels[i] for i in idx.tolist()], device=device)
                # One victim backward per step for a grad_input G, shared by D and G.
                grad = victim_gradient(state, x, y, train_victim)
                losses = d_step(state, x, grad=grad) if config.gamma > 0 else {}
                losses.update(g_step(state, x, y, train_victim, grad=grad))
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
            state.G.snr_db = config.snr_db  # validation and checkpoints at the target
            state.sched_G.step()
            if config.gamma > 0:  # without D its optimiser never steps
                state.sched_D.step()
            state.epoch = epoch + 1
            keys = sorted(sums)  # the mean over ranks: every rank trains on as many crops
            totals = distributed.all_reduce_sum([sums[k] for k in keys])
            metrics: dict[str, float] = {
                k: v / (len(batches) * world) for k, v in zip(keys, totals, strict=True)
            }
            check_finite(
                (state.G, state.D), metrics.get("g/loss", 0.0), what="GAN training",
                epoch=state.epoch, out=out_dir,
                remedy="Check the victim, or train again with a lower learning rate",
            )  # fmt: skip
            if val_clips and validate is not None:
                metrics.update(validate(state, victim, val_clips, val_labels, device=device))
            metrics["lr"] = state.opt_G.param_groups[0]["lr"]
            metrics["epoch_s"] = time.perf_counter() - t0
            score = selection_score(metrics, config.selection_snr_db, config.snr_convention)
            is_best = state.best is None or score > state.best
            if is_best:
                state.best = score
            last = metrics
            epochs.set_postfix(
                {k.split("/")[-1]: f"{v:.3g}" for k, v in metrics.items() if k.startswith("val/")}
            )
            logger.info("epoch %d: %s", state.epoch, metrics)

            def save_last(
                ranks: list[dict[str, Any]] | None,
                metrics: dict[str, float] = metrics,
                is_best: bool = is_best,
            ) -> None:
                assert out_dir is not None  # close_epoch saves only into a run directory
                save_run(out_dir, state, metrics, extra_meta, best=is_best, ranks=ranks)

            close_epoch(
                out_dir, {"epoch": state.epoch, **metrics}, checkpoint_due=True,
                gather_streams=lambda: rank_streams(state), save_last=save_last,
            )  # fmt: skip
    summary: dict[str, Any] = {
        "epochs": state.epoch,
        "last": last,
        # the MSNR of the ranking is in the run's SNR convention (selection_score): named after it
        "best": (
            {
                "val/asr": state.best[1],
                msnr_key(config.snr_convention): state.best[2],
            }
            if state.best
            else None
        ),
        "wall_s": time.perf_counter() - started,
        "out_dir": str(out_dir) if out_dir is not None else None,
    }
    return state, json_safe(summary)


def fit_gan(
    config: GANTrainConfig,
    victim: nn.Module,
    train: ClipSource,
    val: ClipSource | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
    validate: Validator | None = None,
) -> GANState:
    """Train in memory (no files) and return the final state; used by ``SSGANAttack.fit``
    (without validation). ``val`` needs ``validate`` (see ``train_gan``)."""
    state, _ = _run(
        config,
        victim,
        train,
        val,
        None,
        resume=False,
        device=device,
        progress=progress,
        extra_meta={},
        validate=validate,
    )
    return state


def train_gan(
    config: GANTrainConfig,
    victim: nn.Module,
    train_ds: ClipSource,
    val_ds: ClipSource | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
    validate: Validator | None = None,
) -> dict[str, Any]:
    """Train SSGAN's G and D against ``victim`` and write a run directory (see module doc).

    Args:
        config: hyperparameters (``PROFILES[...]`` with overrides).
        victim: the clip-level classifier ``(batch, time) -> logits``; frozen and in eval mode
            throughout (its modes and flags are restored afterwards).
        train_ds, val_ds: datasets with ``waveforms()`` and ``labels()`` (e.g. ``ClipDataset``)
            or ``(clips, labels)`` tuples; ``val_ds`` may be ``None`` (no validation: ``best``
            is then the first epoch).
        out_dir: the run directory.
        resume: continue from ``out_dir/last`` (same config; ``epochs`` may grow).
        extra_meta: JSON-ready fields added to every checkpoint's metadata (victim run, class
            names, dataset...).
        validate: scores each epoch on ``val_ds`` (a ``Validator``); required when ``val_ds``
            holds clips (``ValueError`` otherwise), usually
            ``ssgan.gan_validation.validate_generator``.

    Returns:
        ``{"epochs", "last": metrics of the last epoch, "best": {"val/asr", "val/msnr_db"},
        "wall_s", "out_dir"}``.
    """
    _, summary = _run(
        config,
        victim,
        train_ds,
        val_ds,
        Path(out_dir),
        resume=resume,
        device=device,
        progress=progress,
        extra_meta=extra_meta or {},
        validate=validate,
    )
    return summary
