"""The SSGAN run's checkpoints: what ``last`` and ``best`` hold, and resuming from ``last``.

``last`` holds G + D weights, metadata and the optimiser / scheduler / RNG state (written every
epoch, so a resume continues exactly); ``best`` holds the generator of the best epoch, which
``SSGANAttack.from_run`` loads. Files are written atomically by ``ssgan.io``;
the loop that calls these is ``ssgan.training.gan``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ssgan import SAMPLE_RATE
from ssgan.config import from_dict, to_dict
from ssgan.errors import CheckpointError
from ssgan.io import (
    flatten_state_dicts,
    json_safe,
    load_checkpoint,
    save_checkpoint,
    unflatten_state_dict,
)
from ssgan.training.gan_config import GANTrainConfig
from ssgan.training.gan_steps import GANState, make_state

FORMAT = 1

GAN_KIND = "ssgan-gan"
"""``kind`` in the JSON metadata of the checkpoints this module writes (``last`` and ``best``)."""


def _meta(state: GANState, metrics: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": GAN_KIND,
        "format": FORMAT,
        "epoch": state.epoch,
        "config": to_dict(state.config),
        "generator": state.config.generator_spec().to_dict(),
        "segment_seconds": state.config.segment_seconds,
        "sample_rate": SAMPLE_RATE,
        "metrics": json_safe(metrics),
        **extra,
    }


def save_run(
    out_dir: Path,
    state: GANState,
    metrics: dict[str, float],
    extra: dict[str, Any],
    best: bool,
    ranks: list[dict[str, Any]] | None = None,
) -> None:
    """Write ``last`` (and ``best`` if ``best``). Data parallel: ``ranks`` holds every rank's
    own generator state (``rank_streams``), so a resume continues each rank's crops exactly."""
    meta = _meta(state, metrics, extra)
    if best:
        save_checkpoint(out_dir, "best", flatten_state_dicts(G=state.G.state_dict()), meta)
    training_state = {
        "opt_G": state.opt_G.state_dict(),
        "opt_D": state.opt_D.state_dict(),
        "sched_G": state.sched_G.state_dict(),
        "sched_D": state.sched_D.state_dict(),
        "rng": state.batch_rng.get_state(),
        "world_size": len(ranks) if ranks else 1,
        **({"ranks": ranks} if ranks else {}),
        "epoch": state.epoch,
        "best": list(state.best) if state.best is not None else None,
    }
    tensors = flatten_state_dicts(G=state.G.state_dict(), D=state.D.state_dict())
    save_checkpoint(out_dir, "last", tensors, meta, training_state)


def rank_streams(state: GANState) -> list[dict[str, Any]] | None:
    """Data parallel: every rank's own generator state (a collective: every rank calls it);
    None in a single process."""
    if state.order_rng is None:
        return None
    from ssgan import distributed

    return distributed.all_gather({"rng": state.rng.get_state()})


def read_resume(out_dir: Path, config: GANTrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``last``'s tensors and training state, checked against ``config`` (only ``epochs`` may
    change); ``CheckpointError`` naming the file otherwise. Data parallel: rank 0 reads and the
    others receive it, so the run directory needs to be on rank 0's machine only."""
    tensors, meta, saved = load_checkpoint(out_dir, "last", with_state=True)
    where = out_dir / "last.json"
    if meta.get("kind") != GAN_KIND or saved is None:
        raise CheckpointError(f"{where}: not an SSGAN training checkpoint")
    old = from_dict(GANTrainConfig, meta.get("config", {}))
    if dataclasses.replace(old, epochs=config.epochs) != config:
        changed = [
            f.name
            for f in dataclasses.fields(config)
            if f.name != "epochs" and getattr(old, f.name) != getattr(config, f.name)
        ]
        raise CheckpointError(
            f"{where}: cannot resume with a different config (changed: {', '.join(changed)}); "
            "only epochs may change"
        )
    return tensors, saved


def resume_state(
    out_dir: Path,
    config: GANTrainConfig,
    device: str | torch.device,
    loaded: tuple[dict[str, Any], dict[str, Any]] | None = None,
    *,
    rank: int = 0,
) -> GANState:
    """The training state of ``out_dir/last`` (``loaded``: what ``read_resume`` returned, when
    rank 0 read it for every rank); ``rank``'s own generator restored under data parallel."""
    where = out_dir / "last.json"
    tensors, saved = loaded if loaded is not None else read_resume(out_dir, config)
    state = make_state(config, device=device)
    try:
        state.G.load_state_dict(unflatten_state_dict(tensors, "G"))
        state.D.load_state_dict(unflatten_state_dict(tensors, "D"))
        state.opt_G.load_state_dict(saved["opt_G"])
        state.opt_D.load_state_dict(saved["opt_D"])
        state.sched_G.load_state_dict(saved["sched_G"])
        state.sched_D.load_state_dict(saved["sched_D"])
        if "ranks" in saved:
            state.order_rng = torch.Generator()
            state.order_rng.set_state(saved["rng"])
            state.rng.set_state(saved["ranks"][rank]["rng"])
        else:
            state.rng.set_state(saved["rng"])
    except (KeyError, RuntimeError, ValueError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{where}: training state does not fit ({first})") from None
    state.epoch = int(saved["epoch"])
    best = saved.get("best")
    if best is not None and len(best) == 2:  # written before the SNR rank existed
        best = [1.0, *best]
    state.best = (float(best[0]), float(best[1]), float(best[2])) if best is not None else None
    return state
