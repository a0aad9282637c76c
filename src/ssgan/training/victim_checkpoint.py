"""A victim run's checkpoints: what ``last`` and ``best`` hold, and resuming from ``last``.

``best`` holds the weights of the epoch with the highest test accuracy; ``last`` adds the
optimiser, generator and RNG state (and under data parallelism every rank's crop generator and
dropout RNG), so a resume continues exactly. Resuming checks the run's config first. Files are
written atomically by ``ssgan.io``; the loop that calls these is
``ssgan.training.victim``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssgan import SAMPLE_RATE, distributed
from ssgan.config import to_dict
from ssgan.errors import CheckpointError, OutputError
from ssgan.io import load_checkpoint, rng_state, set_rng_state
from ssgan.models.victim import VICTIM_KIND
from ssgan.training.victim_config import VictimTrainConfig
from ssgan.training.victim_steps import TrainState

# Settings that may differ between a run and its resumption (they do not change the result).
_RESUME_MAY_CHANGE = frozenset({"num_threads", "eval_batch"})


def checkpoint_meta(
    config: VictimTrainConfig,
    class_names: list[str],
    state: TrainState,
    accuracy: float | None,
    info: dict[str, Any],
) -> dict[str, Any]:
    window = config.resolved_window
    return {
        "kind": VICTIM_KIND,
        "model": {
            "name": config.model,
            "n_classes": len(class_names),
            "window": window,
            "fc_width": config.fc_width,
        },
        "class_names": list(class_names),
        "sample_rate": SAMPLE_RATE,
        "window": window,
        "n_crops": config.n_crops,
        "dataset": info.get("dataset"),
        "split": info.get("split"),
        "split_seed": info.get("split_seed"),
        "seed": config.seed,
        "accuracy": accuracy,
        "epoch": state.epoch,
        "config": to_dict(config),
    }


def model_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {f"net.{k}": v for k, v in net.state_dict().items()}


def start_or_resume(config: VictimTrainConfig, out: Path, resume: bool) -> dict[str, Any] | None:
    """Check the run directory; return the ``last`` checkpoint state when resuming."""
    has_files = out.is_dir() and any(out.iterdir())
    if not resume:
        if has_files:
            raise OutputError(f"{out}: run directory is not empty (use --resume to continue it)")
        return None
    if not has_files:
        return None  # nothing to resume: start fresh
    saved_path = out / "config.json"
    if not saved_path.is_file():
        raise CheckpointError(f"{saved_path}: not found; {out} is not a victim run")
    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{saved_path}: unreadable ({exc})") from None
    now = to_dict(config)
    diff = [
        f"{k}: run has {saved.get(k)!r}, now {now[k]!r}"
        for k in now
        if k not in _RESUME_MAY_CHANGE and _jsonish(saved.get(k)) != _jsonish(now[k])
    ]
    if diff:
        raise CheckpointError(f"{out}: cannot resume with a different config ({'; '.join(diff)})")
    if not (out / "last.json").is_file():
        return {}  # config written, no epoch finished yet: start from epoch 0
    tensors, _, state = load_checkpoint(out, "last", with_state=True)
    assert state is not None
    state["tensors"] = tensors
    return state


def _jsonish(v: Any) -> Any:
    return json.loads(json.dumps(v))


def restore_state(state: TrainState, saved: dict[str, Any], out: Path) -> None:
    tensors = saved["tensors"]
    weights = {k[len("net.") :]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        state.net.load_state_dict(weights, strict=True)
        state.optimizer.load_state_dict(saved["optimizer"])
        state.generator.set_state(saved["generator"])
        set_rng_state(saved["rng"])
        if state.crop_generator is not None:  # data parallel: this rank's streams
            mine = saved["ranks"][distributed.rank()]
            state.crop_generator.set_state(mine["generator"])
            set_rng_state(mine["rng"])
        state.epoch = int(saved["epoch"])
        state.best_accuracy = float(saved["best_accuracy"])
        state.best_epoch = int(saved["best_epoch"])
        last = saved.get("last_accuracy")
        state.last_accuracy = None if last is None else float(last)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        msg = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{out}/last: cannot resume from this checkpoint ({msg})") from None


def rank_streams(state: TrainState) -> dict[str, Any]:
    """Data parallel: every rank's crop generator and dropout RNG states, for rank 0's
    checkpoint (``{"ranks": [...]}``); ``{}`` in a single process."""
    if state.crop_generator is None:
        return {}
    mine = {"generator": state.crop_generator.get_state(), "rng": rng_state()}
    return {"ranks": distributed.all_gather(mine)}
