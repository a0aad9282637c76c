"""The SSGAN run's checkpoints: what ``last`` and ``best`` hold, resuming from ``last``, and the
run directory a training starts or resumes in.

``last`` holds G + D weights, metadata and the optimiser / scheduler / RNG state (written every
epoch, so a resume continues exactly); ``best`` holds the generator of the best epoch, which
``SSGANAttack.from_run`` loads. Files are written atomically by ``ssgan.io``;
the loop that calls these is ``ssgan.training.gan``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from ssgan import SAMPLE_RATE, distributed
from ssgan.config import from_dict, to_dict
from ssgan.errors import CheckpointError, OutputError
from ssgan.io import (
    atomic_write_json,
    flatten_state_dicts,
    json_safe,
    load_checkpoint,
    save_checkpoint,
    trim_metrics,
    unflatten_state_dict,
)
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.pretrained import resolve_run
from ssgan.training.gan_config import GANTrainConfig
from ssgan.training.gan_steps import GANState, make_state

logger = logging.getLogger(__name__)

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


def prepare_run_dir(
    out_dir: Path | None, config: GANTrainConfig, resume: bool, world: int
) -> tuple[bool, tuple[dict[str, Any], dict[str, Any]] | None]:
    """Check and prepare the run directory (``config.json``, ``metrics.jsonl`` cut back to the
    checkpoint); ``(resume, what read_resume read or None)``. Under data parallel rank 0 alone
    calls it."""
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if resume and out_dir is not None and not (out_dir / "last.json").exists():
        # Killed before the first checkpoint (or a new directory): nothing to resume, start
        # fresh, as the victim trainer does. Tensor files without last.json come from a first
        # checkpoint killed mid-write (the JSON is written last, as the commit): uncommitted,
        # so the first new checkpoint replaces them. A *damaged* committed checkpoint still
        # fails loudly below.
        if (out_dir / "last.safetensors").exists() or (out_dir / "last.state.pt").exists():
            logger.warning("%s: an unfinished first checkpoint; starting afresh", out_dir)
        resume = False
        if (out_dir / "metrics.jsonl").exists():
            (out_dir / "metrics.jsonl").unlink()
    loaded = None
    if resume:
        if out_dir is None:
            raise ValueError("resume=True needs an out_dir")
        loaded = read_resume(out_dir, config)
        saved_world = int(loaded[1].get("world_size", 1))
        if saved_world != world:
            raise CheckpointError(
                f"{out_dir}/last: trained with {saved_world} process(es), resumed with {world}; "
                "resume with the same number (torchrun --nproc-per-node / --nnodes)"
            )
        trim_metrics(out_dir / "metrics.jsonl", int(loaded[1]["epoch"]))
    elif out_dir is not None and (out_dir / "last.json").exists():
        raise OutputError(f"{out_dir}: already holds a GAN run; resume it or pick a new --out")
    if out_dir is not None:
        atomic_write_json(out_dir / "config.json", to_dict(config))
        if not resume and (out_dir / "metrics.jsonl").exists():
            (out_dir / "metrics.jsonl").unlink()
    return resume, loaded


def load_generator(run_dir: str | Path, checkpoint: str = "best") -> tuple[Generator, float]:
    """The generator of a run written by ``ssgan train gan`` (its shape from the metadata, its
    weights from the safetensors) and the run's crop length t1; ``CheckpointError`` naming the
    file when that cannot be done. ``run_dir`` may name a shipped generator,
    ``pretrained:NAME`` (``ssgan.pretrained``)."""
    run_dir = resolve_run(run_dir)
    tensors, meta, _ = load_checkpoint(run_dir, checkpoint)
    where = Path(run_dir) / f"{checkpoint}.json"
    if meta.get("kind") != GAN_KIND:
        raise CheckpointError(
            f"{where}: not an SSGAN checkpoint (kind={meta.get('kind')!r}, expected {GAN_KIND!r})"
        )
    shape = meta.get("generator")
    if not isinstance(shape, dict) or "segment_seconds" not in meta:
        raise CheckpointError(f"{where}: metadata lacks the generator shape or segment_seconds")
    try:
        # runs written before "output" existed had the paper's tanh output
        generator = build_generator(GeneratorSpec.from_dict({"output": "tanh", **shape}))
        generator.load_state_dict(unflatten_state_dict(tensors, "G"), strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{where}: cannot rebuild the generator ({first})") from None
    return generator, float(meta["segment_seconds"])
