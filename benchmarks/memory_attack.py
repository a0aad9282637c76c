"""Peak resident memory of ``ssgan attack`` on long files (target: < 1 GB for one hour at 16 kHz).

Writes a 1-minute and a 1-hour 16 kHz 16-bit WAV (a tone plus noise), runs ``ssgan attack`` on
each in a fresh subprocess and reports the child's peak RSS (``resource.getrusage
(RUSAGE_CHILDREN).ru_maxrss``, measured per run by running each in its own wrapper process) and
wall time, as a table and as JSON (``--json-out``).

Without ``--generator`` it first trains a smoke-profile victim and GAN on the bundled clips
(about a minute on a laptop CPU); memory does not depend on how well G was trained.

``--quick`` (what ``tests/test_benchmarks.py`` runs): one 15-second file, and without
``--generator`` the smallest training (EnvNet's shortest window, 16-wide FC layers, one epoch;
a GAN epoch of 2 steps). Each row also gives the length of the written ``<stem>_adv.wav``.

Usage:
    python benchmarks/memory_attack.py [--generator RUN_G] [--work DIR] [--minutes 1 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import numpy as np
import soundfile as sf

PY = sys.executable

# Measures one command's peak RSS from inside a wrapper, so runs do not see each other's maxima.
_WRAPPER = """
import resource, subprocess, sys, json, time
t = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "max_rss_kib": ru.ru_maxrss, "wall_s": time.perf_counter() - t}))
"""


def write_long_wav(path: Path, minutes: float, *, rate: int = 16000, seed: int = 0) -> Path:
    """A tone + noise, written in one-minute blocks so this script itself stays small."""
    rng = np.random.default_rng(seed)
    block = 60 * rate
    total = int(minutes * 60 * rate)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as fh:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / rate
            x = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
            fh.write(x.astype(np.float32))
    return path


def ssgan(*args: str) -> None:
    subprocess.run([PY, "-m", "ssgan", *args], check=True, stdout=subprocess.DEVNULL)


# --quick: the smallest training (as tests/test_benchmarks.py's runs); memory does not depend on it
_QUICK_VICTIM = ["--set", "window=5294", "--set", "fc_width=16", "--set", "epochs=1"]
_QUICK_GAN = ["--set", "epochs=1", "--set", "steps_per_epoch=2", "--set", "val_clips=2",
              "--set", "victim_crops=1"]  # fmt: skip


def train_smoke_generator(work: Path, quick: bool = False) -> Path:
    prefix = "quick_" if quick else ""
    victim, gan = work / f"{prefix}victim", work / f"{prefix}gan"
    if not (victim / "best.json").exists():
        ssgan("train", "victim", "--profile", "smoke", "--root", "bundled", "--dataset", "esc10",
              "--out", str(victim), "--set", "fc_width=64",
              *(_QUICK_VICTIM if quick else []))  # fmt: skip
    if not (gan / "best.json").exists():
        ssgan("train", "gan", "--profile", "smoke", "--victim", str(victim), "--root", "bundled",
              "--dataset", "esc10", "--out", str(gan), *(_QUICK_GAN if quick else []))  # fmt: skip
    return gan


def measure(audio: Path, generator: Path, out: Path, extra: list[str]) -> dict:
    cmd = [PY, "-m", "ssgan", "attack", str(audio), "--generator", str(generator),
           "--out", str(out), "--overwrite", *extra]  # fmt: skip
    res = subprocess.run([PY, "-c", _WRAPPER, *cmd], check=True, capture_output=True, text=True)
    stats = json.loads(res.stdout.strip().splitlines()[-1])
    if stats["rc"] != 0:
        raise SystemExit(f"ssgan attack failed on {audio} (exit {stats['rc']})")
    seconds = sf.info(str(audio)).duration
    written = out / f"{audio.stem}_adv.wav"
    return {
        "input_seconds": seconds,
        "output_seconds": sf.info(str(written)).duration if written.is_file() else None,
        "input_mib": audio.stat().st_size / 2**20,
        "peak_rss_mib": stats["max_rss_kib"] / 1024,  # Linux reports KiB
        "wall_s": stats["wall_s"],
        "realtime_factor": seconds / stats["wall_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, default=None, help="GAN run (else: train one)")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0])
    parser.add_argument("--chunk-segments", type=int, default=64)
    parser.add_argument("--json-out", "--out", dest="json_out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = [0.25]
    work = args.work or Path(tempfile.mkdtemp(prefix="ssgan-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    generator = args.generator or train_smoke_generator(work, args.quick)
    rows = []
    for minutes in args.minutes:
        audio = work / f"tone_{minutes:g}min.wav"
        if not audio.exists():
            write_long_wav(audio, minutes)
        row = measure(
            audio, generator, work / "out", ["--chunk-segments", str(args.chunk_segments)]
        )
        row["minutes"] = minutes
        rows.append(row)
        print(f"{minutes:g} min done: {row['peak_rss_mib']:.0f} MiB", file=sys.stderr)
    print(f"{'input':>10} {'file MiB':>9} {'peak RSS MiB':>13} {'wall s':>8} {'x realtime':>11}")
    for r in rows:
        print(f"{r['minutes']:>8g} m {r['input_mib']:>9.1f} {r['peak_rss_mib']:>13.0f} "
              f"{r['wall_s']:>8.1f} {r['realtime_factor']:>11.1f}")  # fmt: skip
    result = {
        "benchmark": "memory_attack",
        "machine": common.machine_info("cpu"),
        "quick": args.quick,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "chunk_segments": args.chunk_segments,
        "rows": rows,
        "target_peak_rss_mib": 1024,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0 if all(r["peak_rss_mib"] < 1024 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
