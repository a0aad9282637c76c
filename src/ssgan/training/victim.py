"""Training EnvNet / EnvNet-v2 victims with the official recipe, with exact resume.

Recipe (Tokozume & Harada 2017; Tokozume et al. 2018, official code
``mil-tokyo/bc_learning_sound``, ``opts.py`` / ``train.py``): Nesterov SGD, momentum 0.9, weight
decay 5e-4, batch 64; the learning rate is divided by 10 at each fraction of the epochs in
``lr_milestones``; during the first ``warmup_epochs`` epochs it is 0.1x the base rate. Each
training example is one random window-long crop of the clip padded with ``window // 2`` zeros on
both sides; the optional "strong augmentation" is a random time stretch (factor in
``[1/time_stretch, time_stretch]``, log-uniform, linear interpolation) before cropping and a
random gain (uniform in ``[-gain_db, gain_db]`` dB) after it. Test accuracy is the clip-level
10-crop accuracy of ``ssgan.models.victim.ClipClassifier`` in eval mode, in float32.

Structure: the config, its profiles and the lr schedule are in ``ssgan.training.victim_config``;
the mutable ``TrainState``, ``train_step`` (one optimiser step on one batch), ``epoch_batches``
(the epoch's shuffled order from the shared generator) and ``make_batch`` (crops and
augmentation) in ``ssgan.training.victim_steps``; what the checkpoints hold and how a run
resumes in ``ssgan.training.victim_checkpoint``. Their public names are re-exported here.

Run directory: ``config.json`` (resolved config), ``metrics.jsonl`` (one line per epoch),
``last.*`` (every epoch: weights, meta, optimiser/generator/RNG state) and ``best.*`` (highest test
accuracy). Randomness: crops, shuffling and augmentation come from one ``torch.Generator`` whose
state is checkpointed; dropout uses the global torch RNG, which the trainer seeds and checkpoints
inside ``torch.random.fork_rng`` so the caller's global RNG is left untouched.

Under ``torchrun`` (process group initialised by the caller, ``ssgan.distributed``) the network is
data-parallel: the shared generator draws the global order, each rank trains on its share of
every batch with crops from its own generator, and rank 0 alone evaluates and writes files
(``ssgan.training.parallel``, docs/distributed.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssgan import distributed
from ssgan.config import to_dict
from ssgan.errors import CheckpointError, DatasetError
from ssgan.io import (
    atomic_write_json,
    rng_state,
    save_checkpoint,
    trim_metrics,
)
from ssgan.models.registry import build_model
from ssgan.models.victim import ClipClassifier, predict_clips
from ssgan.training import parallel
from ssgan.training.loop import check_finite, close_epoch
from ssgan.training.victim_checkpoint import (
    checkpoint_meta,
    model_weights,
    rank_streams,
    restore_state,
    start_or_resume,
)
from ssgan.training.victim_config import (
    PROFILES,
    VictimTrainConfig,
    get_profile,
    load_config,
    lr_at,
)
from ssgan.training.victim_steps import (
    ClipSource,
    TrainState,
    bf16_is_fast,
    check_dataset,
    epoch_batches,
    make_batch,
    make_optimizer,
    time_stretch,
    train_step,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PROFILES",
    "ClipSource",
    "TrainState",
    "VictimTrainConfig",
    "bf16_is_fast",
    "epoch_batches",
    "evaluate_accuracy",
    "get_profile",
    "load_config",
    "lr_at",
    "make_batch",
    "time_stretch",
    "train_step",
    "train_victim",
]


def evaluate_accuracy(
    net: nn.Module,
    clips: list[torch.Tensor],
    labels: torch.Tensor,
    *,
    window: int,
    n_crops: int = 10,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> tuple[float, torch.Tensor]:
    """Clip-level accuracy (fraction of clips whose 10-crop prediction equals the label).

    Runs ``net`` in eval mode (BatchNorm running statistics, no dropout), float32.
    Returns ``(accuracy, predictions (n,))``.
    """
    was_training = net.training
    net.eval()
    try:
        clf = ClipClassifier(net, window=window, n_crops=n_crops)
        pred, _ = predict_clips(clf, clips, batch_size=batch_size, device=device)
    finally:
        net.train(was_training)
    # correct / n in Python floats, so that `ssgan evaluate victim` reproduces it exactly
    acc = int((pred == labels).sum()) / len(clips) if len(clips) else float("nan")
    return acc, pred


def train_victim(
    config: VictimTrainConfig,
    train_ds: ClipSource,
    test_ds: ClipSource,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    dataset_info: dict[str, Any] | None = None,
    stop_after_epoch: int | None = None,
    adversary: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
    | None = None,
    init: Callable[[nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Train a victim on ``train_ds``, evaluating clip-level accuracy on ``test_ds``.

    Args:
        config: the hyperparameters (validated here).
        train_ds, test_ds: objects with ``waveforms()``, ``labels()`` and ``class_names``.
        out_dir: the run directory (must be empty or absent unless ``resume``).
        resume: continue the run in ``out_dir`` exactly where its last checkpoint stopped.
        device: ``"cpu"`` or ``"cuda"``; crops are made on the CPU with the run's generator.
        progress: show a tqdm bar with ETA (for the CLI).
        dataset_info: recorded in checkpoint meta (``{"dataset": ..., "split": ...}``).
        stop_after_epoch: stop (as if interrupted) after this epoch; for tests and time-boxed
            jobs. The run can be resumed.
        adversary: ``(net, x, y, generator) -> x`` applied to every training batch before its
            step (adversarial fine-tuning, ``ssgan.training.defence``).
        init: called on the fresh network before training (e.g. to load weights to fine-tune).

    Returns:
        ``{"best_accuracy", "best_epoch", "final_accuracy", "epochs_done", "seconds", "run_dir"}``.

    Raises:
        OutputError: ``out_dir`` is not empty and ``resume`` is false.
        CheckpointError: resuming a run that is broken or was made with another config.
        DatasetError: empty datasets or labels outside the class list.
    """
    config.validate()
    out = Path(out_dir)
    info = dict(dataset_info or {})
    train_clips, train_labels = check_dataset(train_ds, "training")
    test_clips, test_labels = check_dataset(test_ds, "test")
    class_names = list(train_ds.class_names)
    if list(test_ds.class_names) != class_names:
        raise DatasetError("training and test sets have different class lists")
    world, rank = distributed.world_size(), distributed.rank()
    if world > 1:
        parallel.check_batch(config.batch_size, world)
        if adversary is not None:
            raise distributed.DistributedError(
                "adversarial fine-tuning is not data-parallel yet: run it in one process"
            )
    saved = distributed.on_main(lambda: start_or_resume(config, out, resume))
    if saved and int(saved.get("world_size", 1)) != world:
        raise CheckpointError(
            f"{out}/last: trained with {saved.get('world_size', 1)} process(es), resumed with "
            f"{world}; resume with the same number (torchrun --nproc-per-node / --nnodes)"
        )
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    dev = distributed.local_device(device)
    window = config.resolved_window
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", to_dict(config))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # weight init and dropout
        net = build_model(config.model, len(class_names), window=window, fc_width=config.fc_width)
        if init is not None:
            init(net)
        net = net.to(dev)
        # channels_last conv weights match the channels_last activations (no layout copies).
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        generator = torch.Generator().manual_seed(config.seed)
        state = TrainState(net, make_optimizer(net, config), generator)
        if world > 1:
            torch.manual_seed(distributed.rank_seed(config.seed, rank))  # this rank's dropout
            state.crop_generator = parallel.rank_generator(config.seed, rank)
            state.ddp = parallel.wrap(net, dev)
        if saved:
            restore_state(state, saved, out)
        if distributed.is_main():
            trim_metrics(out / "metrics.jsonl", state.epoch)
        start = time.perf_counter()
        with distributed.collectives("training"):  # a lost rank: DistributedError, not a hang
            _loop(
                state, config, train_clips, train_labels, test_clips, test_labels,
                class_names, out, info, dev, progress, stop_after_epoch, adversary,
            )  # fmt: skip
    return {
        "best_accuracy": state.best_accuracy,
        "best_epoch": state.best_epoch,
        "final_accuracy": state.last_accuracy,
        "epochs_done": state.epoch,
        "seconds": time.perf_counter() - start,
        "run_dir": str(out),
    }


def _loop(
    state: TrainState,
    config: VictimTrainConfig,
    train_clips: list[torch.Tensor],
    train_labels: torch.Tensor,
    test_clips: list[torch.Tensor],
    test_labels: torch.Tensor,
    class_names: list[str],
    out: Path,
    info: dict[str, Any],
    dev: torch.device,
    progress: bool,
    stop_after_epoch: int | None,
    adversary: Callable[..., torch.Tensor] | None = None,
) -> None:
    from tqdm.auto import tqdm

    window = config.resolved_window
    bar = tqdm(
        total=config.epochs, initial=state.epoch, disable=not (progress and distributed.is_main()),
        unit="epoch",
        desc=f"train {config.model}", dynamic_ncols=True,
    )  # fmt: skip
    try:
        use_bf16 = config.bf16 and bf16_is_fast(dev)
        if config.bf16 and not use_bf16:
            logger.info("bf16=true ignored: this CPU has no native bfloat16 (float32 instead)")
        while state.epoch < config.epochs:
            if stop_after_epoch is not None and state.epoch >= stop_after_epoch:
                break
            epoch = state.epoch + 1
            t0 = time.perf_counter()
            lr = lr_at(config, epoch)
            loss_sum = correct = seen = 0.0
            world, rank = distributed.world_size(), distributed.rank()
            for batch in epoch_batches(len(train_clips), config.batch_size, state.generator):
                idx = parallel.rank_slice(batch, rank, world)
                if idx is None:
                    continue  # data parallel: too few clips left for every rank
                x = make_batch(
                    [train_clips[i] for i in idx.tolist()], window, state.crops,
                    gain_db=config.gain_db, stretch=config.time_stretch,
                )  # fmt: skip
                y = train_labels[idx]
                x, y = x.to(dev), y.to(dev)
                if adversary is not None:  # adversarial training: part of the batch attacked
                    x = adversary(state.net, x, y, state.generator)
                stats = train_step(state, x, y, lr=lr, bf16=use_bf16)
                loss_sum += stats["loss"] * len(idx)
                correct += stats["correct"]
                seen += len(idx)
            loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen])
            check_finite(
                (state.net,), loss_sum / max(seen, 1), what="training",
                epoch=epoch, out=out,
                remedy=f"Train again with a learning rate below {lr:g} (--set lr=...)",
            )  # fmt: skip
            test_acc: float | None = None
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                # rank 0 evaluates; the others wait for its figure
                test_acc = distributed.on_main(
                    lambda: evaluate_accuracy(
                        state.net, test_clips, test_labels, window=window,
                        n_crops=config.n_crops, batch_size=config.eval_batch, device=dev,
                    )[0]
                )  # fmt: skip
                state.last_accuracy = test_acc
            main = distributed.is_main()
            state.epoch = epoch
            improved = test_acc is not None and test_acc > state.best_accuracy
            if improved:
                assert test_acc is not None
                state.best_accuracy, state.best_epoch = test_acc, epoch
            if improved and main:
                save_checkpoint(
                    out, "best", model_weights(state.net),
                    checkpoint_meta(config, class_names, state, test_acc, info),
                )  # fmt: skip
            record = {
                "epoch": epoch,
                "loss": loss_sum / max(seen, 1),
                "train_acc": correct / max(seen, 1),
                "test_acc": test_acc,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
            }
            state.history.append(record)
            if main:
                logger.info("epoch %d: %s", epoch, record)

            def save_last(ranks: dict[str, Any]) -> None:
                save_checkpoint(
                    out, "last", model_weights(state.net),
                    checkpoint_meta(config, class_names, state, state.last_accuracy, info),
                    state={
                        "optimizer": state.optimizer.state_dict(),
                        "generator": state.generator.get_state(),
                        "rng": rng_state(),
                        "epoch": state.epoch,
                        "best_accuracy": state.best_accuracy,
                        "best_epoch": state.best_epoch,
                        "last_accuracy": state.last_accuracy,
                        "world_size": distributed.world_size(),
                        **ranks,
                    },
                )  # fmt: skip

            close_epoch(
                out, record,
                checkpoint_due=epoch % config.checkpoint_every == 0 or epoch == config.epochs,
                gather_streams=lambda: rank_streams(state), save_last=save_last,
            )  # fmt: skip
            postfix = {"loss": f"{record['loss']:.3f}", "train": f"{record['train_acc']:.2f}"}
            if state.best_accuracy >= 0:
                postfix["best_test"] = f"{state.best_accuracy:.3f}"
            bar.set_postfix(postfix)
            bar.update(1)
        distributed.barrier("waiting for rank 0's files")
    finally:
        bar.close()
