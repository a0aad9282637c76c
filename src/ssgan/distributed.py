"""Data parallelism with ``torch.distributed`` under ``torchrun`` (docs/distributed.md).

A process started by ``torchrun`` finds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its
environment; ``init_from_env`` then joins the process group (gloo on CPU, NCCL on CUDA) with a
timeout, so that a rank that dies or hangs makes the others fail with a ``DistributedError``
instead of waiting forever. Without those variables (or with ``WORLD_SIZE=1``) nothing is
initialised and every helper answers as for the single process: rank 0 of 1, ``is_main()``
true, ``barrier()`` a no-op, ``shard`` the whole list, ``all_gather`` a one-item list.

Sharding is deterministic: rank ``r`` of ``w`` takes items ``r, r + w, r + 2w, ...`` (balanced to
one item); ``ssgan.evaluation`` merges the ranks' records back into the original order.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from ssgan.errors import SSGANError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds a collective (barrier, all-reduce, ...) waits for the other ranks before failing.
# The victim trainer's test-set evaluation runs on rank 0 while the others wait at a barrier, so
# it must exceed the longest such evaluation; override with SSGAN_DIST_TIMEOUT_S.
DEFAULT_TIMEOUT_S = 1800.0
TIMEOUT_ENV = "SSGAN_DIST_TIMEOUT_S"


# What gloo / NCCL errors say when a peer is gone or late (a plain RuntimeError from DDP's hooks).
_BACKEND_FAILURE = re.compile(r"gloo|nccl|connection|timed out|timeout|socket|peer", re.I)


class DistributedError(SSGANError, RuntimeError):
    """A multi-process run that cannot go on: a rank died, timed out, or the launch is wrong."""


def launched() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_active() -> bool:
    """Whether a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_active() else 0


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and shows progress."""
    return rank() == 0


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise DistributedError(f"{TIMEOUT_ENV}={raw!r}: expected seconds (a number)") from None
    if not value > 0:
        raise DistributedError(f"{TIMEOUT_ENV}={raw!r}: must be > 0")
    return value


def local_device(device: str | torch.device) -> torch.device:
    """``device`` for this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (one process
    a GPU); anything else is returned as given."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None and is_active():
        return torch.device("cuda", local_rank())
    return dev


def init_from_env(device: str | torch.device = "cpu") -> bool:
    """Join the process group when launched by torchrun; return whether one is active.

    The backend is NCCL for a CUDA ``device`` and gloo otherwise. A second call is a no-op.
    """
    if is_active() or not launched():
        return is_active()
    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise DistributedError(
                f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {name} is not set: launch with "
                "torchrun (docs/distributed.md)"
            )
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    seconds = timeout_seconds()
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=seconds))
    logger.info(
        "rank %d of %d (%s, timeout %.0f s)", dist.get_rank(), dist.get_world_size(), backend,
        seconds,
    )  # fmt: skip
    return True


def shutdown(completed: bool = False) -> None:
    """Leave the process group (if any).

    ``completed``: this rank finished its work, so it first waits for the others; a rank that
    leaves early closes its gloo connections under a peer still using them. The garbage
    collection frees unreachable ``DistributedDataParallel`` wrappers (held in reference cycles)
    while the interpreter is alive: their reducers keep the group's worker threads running, and
    torn down during interpreter exit those abort the process (SIGABRT).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    if completed and dist.get_world_size() > 1:
        with contextlib.suppress(RuntimeError):  # a peer died: nothing to wait for
            dist.barrier()
    dist.destroy_process_group()
    gc.collect()


@contextmanager
def collectives(what: str) -> Iterator[None]:
    """Turn a failed collective into a ``DistributedError`` that says what probably happened."""
    try:
        yield
    except DistributedError:
        raise
    except RuntimeError as exc:  # DistBackendError is one
        backend = isinstance(exc, dist.DistBackendError) or _BACKEND_FAILURE.search(str(exc))
        if not (is_active() and backend):
            raise
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise DistributedError(
            f"rank {rank()} of {world_size()}: {what} failed; another rank probably died or "
            f"did not answer within {timeout_seconds():.0f} s ({TIMEOUT_ENV}) ({first})"
        ) from exc


def barrier(what: str = "barrier") -> None:
    if is_active():
        with collectives(what):
            dist.barrier()


def shard(items: Sequence[T], rank_: int | None = None, world: int | None = None) -> list[T]:
    """This rank's deterministic share of ``items``: ``items[rank::world]``."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    if not 0 <= r < w:
        raise ValueError(f"rank={r}: must be in [0, world={w})")
    return list(items[r::w])


def all_gather(value: T) -> list[T]:
    """``[value of rank 0, value of rank 1, ...]`` on every rank (any picklable value)."""
    if world_size() == 1:
        return [value]
    parts: list[Any] = [None] * world_size()
    with collectives("gathering objects"):
        dist.all_gather_object(parts, value)
    return parts


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable value)."""
    if world_size() == 1:
        return value
    box: list[Any] = [value if is_main() else None]
    with collectives("broadcast from rank 0"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (float64)."""
    if world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    with collectives("all-reduce"):
        dist.all_reduce(t)
    return t.tolist()


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its result (or its exception) to every rank.

    The other ranks raise the same exception instead of waiting for a result that never comes
    (rank 0 checking the run directory, say).
    """
    if world_size() == 1:
        return fn()
    outcome: tuple[bool, Any] = (True, None)
    error: Exception | None = None
    if is_main():
        try:
            outcome = (True, fn())
        except Exception as exc:  # re-raised below on every rank
            error = exc
            outcome = (False, _portable(exc))
    ok, payload = broadcast(outcome)
    if not ok:
        raise error if error is not None else payload
    return payload


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (to reach the other ranks), else an ``SSGANError`` with
    its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return SSGANError(f"{type(exc).__name__}: {exc}")
    return exc


def rank_seed(seed: int, rank_: int) -> int:
    """A seed for rank ``rank_``'s own random stream, decorrelated from the other ranks' and
    from ``seed`` itself (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(seed), int(rank_), 0x55]).generate_state(1)[0])
