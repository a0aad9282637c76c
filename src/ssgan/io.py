"""The package's I/O layer: crash-safe atomic writes, strict JSON, code-free checkpoints.

A checkpoint is a directory entry pair ``<name>.safetensors`` (tensors only) + ``<name>.json``
(metadata: config, class names, sample rate, metrics...). Optional training state (optimiser,
scheduler, RNG) goes to ``<name>.state.pt`` and is read back with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers. Nothing from a run directory is ever
unpickled with arbitrary code.

Every write goes to a temporary file in the same directory, is fsynced, then renamed over the
target, so a crash leaves either the old or the new file, never a torn one. The JSON is written
last and doubles as the "complete" marker.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ssgan.errors import CheckpointError


def json_safe(v: Any) -> Any:
    """``v`` with every non-finite float (nan, +-inf) replaced by None, recursively.

    Strict JSON (``summary.json``, ``metrics.jsonl``, checkpoint metadata) has no NaN or
    infinity: an undefined ASR or MSNR is written as ``null``.
    """
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(val) for k, val in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(val) for val in v]
    return v


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def append_json_line(path: str | Path, record: Any) -> None:
    """Append ``record`` to ``path`` as one JSON line and fsync it, so it survives a crash.

    A crash inside the write can leave a torn last line; readers skip it (``trim_metrics``,
    ``ssgan.attack_inputs.read_records``).
    """
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def trim_metrics(path: str | Path, epoch: int) -> None:
    """Keep the lines of a ``metrics.jsonl`` up to ``epoch`` (the checkpoint a run resumes from).

    A crash between a metrics line and its checkpoint leaves lines of later epochs, and a crash
    inside a write leaves a torn last line: both are dropped, so a run can always resume.
    """
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("epoch", 0) <= epoch:
                kept.append(line)
        except (json.JSONDecodeError, AttributeError):
            continue  # a torn line, or one that is not a JSON object
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(k + "\n" for k in kept))


def save_checkpoint(
    directory: str | Path,
    name: str,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write ``<name>.safetensors``, optional ``<name>.state.pt``, then ``<name>.json``.

    ``tensors`` is a flat name -> tensor dict (use ``flatten_state_dicts`` for several modules).
    Returns the JSON path.
    """
    directory = Path(directory)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(directory / f"{name}.safetensors", lambda tmp: save_file(cpu, str(tmp)))
    if state is not None:
        atomic_write(directory / f"{name}.state.pt", lambda tmp: torch.save(state, tmp))
    json_path = directory / f"{name}.json"
    atomic_write_json(json_path, meta)
    return json_path


def load_checkpoint(
    directory: str | Path, name: str, *, with_state: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any] | None]:
    """Read a checkpoint written by ``save_checkpoint``: (tensors, meta, state or None).

    Raises ``CheckpointError`` naming the file when anything is missing, truncated or corrupted.
    """
    directory = Path(directory)
    json_path = directory / f"{name}.json"
    weights_path = directory / f"{name}.safetensors"
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: run directory not found")
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: checkpoint metadata not found")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{json_path}: corrupted checkpoint metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{json_path}: checkpoint metadata is not a JSON object")
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: checkpoint weights not found")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights_path}: truncated or corrupted weights ({exc})") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        # A diverged training saves NaN weights; a victim of them answers one class for every
        # input and an attack on it returns NaN audio, which would be scored as successes.
        raise CheckpointError(
            f"{weights_path}: non-finite weights in {len(bad)} tensor(s) ({', '.join(bad[:3])}): "
            "the training diverged; retrain it (a lower learning rate, --set lr=...)"
        )
    state = None
    if with_state:
        state_path = directory / f"{name}.state.pt"
        if not state_path.is_file():
            raise CheckpointError(f"{state_path}: training state not found")
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # the unpickler refuses code; any failure is a bad file
            raise CheckpointError(
                f"{state_path}: refused or corrupted training state ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
    return tensors, meta, state


def flatten_state_dicts(**modules: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"G": g.state_dict(), "D": ...}`` -> ``{"G.conv.weight": ..., ...}`` for safetensors."""
    flat: dict[str, torch.Tensor] = {}
    for prefix, sd in modules.items():
        for k, v in sd.items():
            flat[f"{prefix}.{k}"] = v
    return flat


def unflatten_state_dict(flat: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Inverse of ``flatten_state_dicts`` for one prefix."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in flat.items() if k.startswith(p)}


def rng_state() -> dict[str, Any]:
    """The global torch CPU RNG state (dropout etc.), as a tensor, for exact resume."""
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
