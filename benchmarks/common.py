"""Shared pieces of the benchmark scripts: machine info, timing, runs to measure, tables, JSON.

The scripts are run from the repository root, e.g. ``python benchmarks/attack_cost.py --quick``;
Python puts ``benchmarks/`` on ``sys.path`` so ``import common`` finds this file.

Runs: every script takes ``--victim RUN_V`` and (where it needs one) ``--generator RUN_G``. When
they are not given, ``ensure_runs`` trains smoke-profile runs on the bundled ESC-10 clips (the
commands below, once; later calls reuse them from ``--work``) so that each script always runs.
Their figures then describe a barely trained victim and generator: speed figures hold, ASR and
MSNR mean little.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = Path(os.environ.get("SSGAN_CACHE", Path.home() / ".cache" / "ssgan")) / "bench_runs"

# The smoke runs ``ensure_runs`` trains when no runs are given (see the module docstring).
SMOKE_VICTIM = [
    "train", "victim", "--profile", "smoke", "--dataset", "esc10", "--root", "bundled",
    "--split", "fold:5", "--set", "fc_width=64",
]  # fmt: skip
SMOKE_GAN = [
    "train", "gan", "--profile", "smoke", "--dataset", "esc10", "--root", "bundled",
    "--split", "fold:5",
]  # fmt: skip


# ----------------------------------------------------------------------------- machine


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags") and key not in out:
                out[key] = value.strip()
    return out


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    with contextlib.suppress(Exception):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, torch, threads, date, commit."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    out: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_model": info.get("model name", platform.processor() or "unknown"),
        "cpu_count": os.cpu_count(),
        "cores_usable": usable,
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "bf16_native": bf16_supported(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "device": device,
        "commit": _git_commit(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out


def _git_commit() -> str | None:
    # Read-only queries; a dirty tree is marked so that figures are not pinned to a wrong commit.
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(torch.device(device))


def bench(
    fn: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 1,
    repeats: int = 5,
    max_seconds: float | None = None,
) -> dict[str, float]:
    """Seconds per call of ``fn``: ``warmup`` untimed calls, then up to ``repeats`` timed ones.

    Returns ``{"median_s", "min_s", "mean_s", "n"}``. ``max_seconds`` stops repeating once the
    timed calls have taken that long (at least one call is always timed).
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if max_seconds is not None and sum(times) >= max_seconds:
            break
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "mean_s": statistics.fmean(times),
        "n": len(times),
    }


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n)``, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- runs


def add_common_args(parser: argparse.ArgumentParser, *, generator: bool = True) -> None:
    """``--victim --generator --root --out --quick --device --threads --work --train-set``."""
    parser.add_argument("--victim", metavar="RUN_V", help="victim run (default: train smoke)")
    if generator:
        parser.add_argument("--generator", metavar="RUN_G", help="SSGAN run (default: smoke)")
    parser.add_argument(
        "--root", default="bundled", help="ESC-50 folder of the victim's dataset, or 'bundled'"
    )
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="last",
        help="checkpoint of the victim and generator runs (default last, as the tables)",
    )
    parser.add_argument("--out", metavar="FILE.json", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="where smoke runs are trained and kept"
    )
    parser.add_argument(
        "--train-set", dest="victim_set", action="append", default=[], metavar="KEY=VALUE",
        help="extra --set for the smoke victim training (e.g. window=5294 for tiny tests)",
    )  # fmt: skip
    parser.add_argument(
        "--gan-set", action="append", default=[], metavar="KEY=VALUE",
        help="extra --set for the smoke GAN training",
    )  # fmt: skip


def _train(args: list[str], out: Path) -> None:
    if (out / "best.json").is_file():
        return
    if out.exists():
        # A half-written run (interrupted training): start it again from scratch.
        import shutil

        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ssgan", *args, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"training failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}{proc.stdout[-1000:]}"
        )


def ensure_runs(
    victim: str | Path | None,
    generator: str | Path | None,
    *,
    work: Path = DEFAULT_WORK,
    need_generator: bool = True,
    victim_set: Sequence[str] = (),
    gan_set: Sequence[str] = (),
) -> tuple[Path, Path | None]:
    """The victim and generator runs to measure, training smoke ones where none is given.

    Smoke runs live in ``work/<hash of their settings>/{victim,gan}`` and are reused.
    """
    import hashlib

    key = hashlib.sha1(json.dumps([list(victim_set), list(gan_set)]).encode()).hexdigest()[:10]
    v_key = hashlib.sha1(json.dumps(list(victim_set)).encode()).hexdigest()[:10]
    base = work / f"smoke-{key}"
    if victim is None:
        v_dir = work / f"smoke-victim-{v_key}"
        _train([*SMOKE_VICTIM, *_sets(victim_set)], v_dir)
    else:
        v_dir = Path(victim)
    g_dir: Path | None = None
    if need_generator:
        if generator is None:
            g_dir = (base if victim is None else work / f"smoke-{key}-{_slug(v_dir)}") / "gan"
            _train([*SMOKE_GAN, "--victim", str(v_dir), *_sets(gan_set)], g_dir)
        else:
            g_dir = Path(generator)
    return v_dir, g_dir


def _sets(items: Sequence[str]) -> list[str]:
    return [a for kv in items for a in ("--set", kv)]


def _slug(path: Path) -> str:
    import hashlib

    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]


def spread(total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(total)`` (splits are ordered by class, so the
    first ``n`` clips would be a handful of classes)."""
    n = min(n, total)
    return [i * total // n for i in range(n)] if n > 0 else []


def victim_test_set(victim_meta: dict[str, Any], root: str) -> tuple[Any, Any]:
    """``(dataset, test split)`` the victim was evaluated on (its recorded dataset and split)."""
    from ssgan.data import load_dataset, make_split

    name = victim_meta.get("dataset") or "esc10"
    split = victim_meta.get("split") or "fold:5"
    dataset = load_dataset(str(name), root)
    _, test = make_split(dataset, str(split))
    return dataset, test


# ----------------------------------------------------------------------------- output


def fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return format(v, spec)
    return str(v)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table; ``columns`` are ``(key, header, format spec)``."""
    cells = [[h for _, h, _ in columns]]
    cells += [[fmt(r.get(k), spec) for k, _, spec in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            c.rjust(w) if j else c.ljust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as strict JSON (NaN / inf as null), atomically."""
    if path is None:
        return
    from ssgan.io import atomic_write_json, json_safe

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, json_safe(payload))


def run_cli(main: Callable[[list[str] | None], int]) -> None:
    """``sys.exit(main())`` with library logging at INFO on stderr."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main(None))
