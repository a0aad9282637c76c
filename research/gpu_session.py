"""One prepared GPU session: Table II with the paper profile end to end, then the attack cost.

Written for a lent GPU machine with a fixed wall-clock budget (``--budget`` seconds) and one
chance to run: it trains the EnvNet victim on ESC-10 with the official recipe, trains SSGAN for
every segment length t1 against it (the t1 rows in parallel processes, sharing the GPU),
evaluates each row on the train and test splits, and runs ``benchmarks/attack_cost.py`` on the
same device. Every step is an ``ssgan reproduce table2`` (or benchmark) subprocess, so what runs
here is exactly what a user runs; this script only schedules them against the budget:

- the victim gets ``--victim-share`` of the budget: after a few epochs its epoch time is known,
  and if the recipe's 600 epochs do not fit it is restarted with as many epochs as do (the
  learning-rate milestones are fractions of the epochs, so the schedule keeps its shape);
- the generators get until ``--gan-share``; SSGAN's learning rate halves every 10 epochs
  whatever the epoch count, so a run stopped after k epochs *is* the first k epochs of the
  150-epoch run. At the deadline each unfinished generator is stopped and resumed with
  ``epochs=k`` (k = its last checkpoint), which ends it there and lets its evaluations run;
- the attack-cost benchmark runs alone afterwards, so its timings are not shared with training.

Everything small the runs write (tables, summaries, metrics.jsonl, logs; no weights) is packed
into ``OUT/results.tar.gz`` after each phase, so a run cut short still returns what it measured.

    python3 research/gpu_session.py --data DIR_WITH_ESC-50 --work /tmp/gs --out "$OUT" \\
        --budget 530 --device cuda

``--profile smoke --device cpu`` runs the same schedule in a minute on a CPU (the test of this
script).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# Small files worth bringing back; weights and the self-contained HTML reports stay behind.
KEEP_SUFFIXES = (".json", ".jsonl", ".md", ".csv", ".log", ".txt")


class Session:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.work: Path = args.work
        self.out: Path = args.out
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self.events: list[dict[str, Any]] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.reported: set[str] = set()
        self._lock = threading.Lock()
        # set by ``finish``: a phase running in a thread starts nothing more
        self.stopping = threading.Event()

    # ------------------------------------------------------------------ bookkeeping
    def now(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.args.budget - self.now()

    def note(self, what: str, **fields: Any) -> None:
        with self._lock:  # a phase may run in a thread of its own
            event = {"t": round(self.now(), 1), "event": what, **fields}
            self.events.append(event)
            print(json.dumps(event), flush=True)
            # replaced whole, never seen half-written by ``pack`` in the other thread
            tmp = self.work / "session.json.tmp"
            tmp.write_text(json.dumps(self.events, indent=1))
            tmp.replace(self.work / "session.json")

    def pack(self) -> None:
        """``OUT/results.tar.gz`` with every small text file under the work folder."""
        tmp = self.out / "results.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            for p in sorted(self.work.rglob("*")):
                if not p.is_file() or "cache" in p.relative_to(self.work).parts:
                    continue
                if p.suffix in KEEP_SUFFIXES and p.stat().st_size < 8 << 20:
                    tar.add(p, arcname=str(p.relative_to(self.work)))
        tmp.replace(self.out / "results.tar.gz")
        shutil.copy(self.work / "session.json", self.out / "session.json")

    def finish(self, monitor: subprocess.Popen[bytes] | None) -> None:
        """Stop every process and the GPU monitor, then pack what the session measured."""
        self.stopping.set()
        for name in list(self.procs):
            self.stop(name)
        if monitor is not None:
            monitor.terminate()
        self.note("end")
        self.pack()

    # ------------------------------------------------------------------ processes
    def start(self, name: str, cmd: list[str]) -> None:
        if self.stopping.is_set():
            self.note("not started: the session is ending", name=name)
            return
        env = dict(os.environ)
        env.update(
            OMP_NUM_THREADS=str(self.args.threads),
            SSGAN_CACHE=str(self.work / "cache" / name),
            TQDM_MININTERVAL="20",
            PYTHONUNBUFFERED="1",
        )
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (lives as long as the process)
        self.note("start", name=name, cmd=" ".join(cmd))
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def stop(self, name: str) -> None:
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.note("stopped", name=name)

    def running(self, name: str) -> bool:
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def returncode(self, name: str) -> int | None:
        p = self.procs.get(name)
        return None if p is None else p.poll()

    # ------------------------------------------------------------------ commands
    def reproduce(
        self, out: Path, t1: float, extra: list[str], profile: str | None = None
    ) -> list[str]:
        a = self.args
        gan_set = [] if profile else [f"--set=gan.{kv}" for kv in a.gan_set]
        return [
            sys.executable, "-m", "ssgan", "reproduce", "table2",
            "--profile", profile or a.profile, "--dataset", "esc10",
            "--root", str(a.data / "ESC-50"), "--split", "fold:5",
            "--segments", f"{t1:g}", "--out", str(out), "--device", a.device, *gan_set, *extra,
        ]  # fmt: skip


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line being written
            out.append(json.loads(line))
    return out


def _environment(s: Session) -> None:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    info["cpus"] = os.cpu_count()
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        info["nvidia_smi"] = smi.stdout.strip()
    s.note("environment", **info)


def _gpu_monitor(s: Session) -> subprocess.Popen[bytes] | None:
    if s.args.device == "cpu" or not shutil.which("nvidia-smi"):
        return None
    fields = "timestamp,utilization.gpu,memory.used,power.draw"
    log = open(s.logs / "gpu_util.csv", "wb")  # noqa: SIM115
    return subprocess.Popen(
        ["nvidia-smi", f"--query-gpu={fields}", "--format=csv", "-l", "5"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def train_victim(s: Session, main_out: Path, t1: float) -> bool:
    """Run the first reproduce process until its victim is trained; size its epochs to fit."""
    a = s.args
    victim = main_out / "victim"
    deadline = a.budget * a.victim_share
    epochs = a.victim_epochs
    fixed = ["--set", "victim.checkpoint_every=100000"]
    fixed += [f"--set=victim.{kv}" for kv in a.victim_set]
    s.start("t2_main", s.reproduce(main_out, t1, [*fixed, "--set", f"victim.epochs={epochs}"]))
    started, first_epoch_at = s.now(), None
    sized = late = False
    while not (victim / "DONE").is_file():
        if not s.running("t2_main"):
            s.note("victim failed", returncode=s.returncode("t2_main"))
            return False
        rows = _lines(victim / "metrics.jsonl")
        if rows and first_epoch_at is None:
            first_epoch_at = s.now()
        if not sized and first_epoch_at is not None and len(rows) >= a.probe_epochs:
            # Epoch 1 carries cuDNN's autotuning and first-call costs: leave it out. Early
            # epochs also often write a new `best` checkpoint (0.4 s for EnvNet's 190 MB on the
            # H200 machine, against 0.14 s for a whole epoch); the median of enough epochs
            # (15 by default) is not fooled by them, the median of 6 was (measured: 0.54 s).
            secs = sorted(r["seconds"] for r in rows[1:])
            per_epoch = secs[len(secs) // 2]
            # start-up (imports, decoding, CUDA context) is paid again by a restart
            startup = max(0.0, first_epoch_at - started - rows[0]["seconds"])
            fit = int((deadline - s.now() - startup) / per_epoch)
            s.note(
                "victim epoch time", seconds=per_epoch, startup_s=round(startup, 1),
                epochs_done=len(rows), would_fit=fit,
            )  # fmt: skip
            sized = True
            if fit < epochs:
                s.stop("t2_main")
                shutil.rmtree(victim)
                epochs = max(a.probe_epochs, fit // 10 * 10)
                s.note("victim resized", epochs=epochs)
                s.start(
                    "t2_main",
                    s.reproduce(main_out, t1, [*fixed, "--set", f"victim.epochs={epochs}"]),
                )
        if s.now() > deadline + 60 and not late:
            late = True
            s.note("victim over its deadline", epochs_done=len(rows))
        time.sleep(1)
    rows = _lines(victim / "metrics.jsonl")
    s.note(
        "victim done",
        epochs=len(rows),
        final_test_acc=rows[-1].get("test_acc") if rows else None,
        best_test_acc=max((r.get("test_acc") or 0 for r in rows), default=None),
        train_seconds=sum(r["seconds"] for r in rows),
    )
    return True


def train_generators(s: Session, main_out: Path, segments: list[float]) -> None:
    """The first t1 row continues in the main process; the others and the variants start
    beside it, each an ``ssgan reproduce table2`` of one row sharing the trained victim."""
    a = s.args
    victim = ["--victim", str(main_out / "victim")]
    # name -> (run folder, t1, extra reproduce arguments)
    rows: dict[str, tuple[Path, float, list[str]]] = {}
    if a.no_main_gan:
        s.stop("t2_main")
    else:
        rows["t2_main"] = (main_out, segments[0], [])
    for t1 in segments[1:]:
        rows[f"t2_{t1:g}s"] = (s.work / f"t2_{t1:g}s", t1, victim)
    for spec in a.variant:
        name, _, settings = spec.partition(":")
        sets = [f"--set=gan.{kv}" for kv in settings.split(",") if kv]
        rows[f"var_{name}"] = (s.work / f"var_{name}", segments[0], [*victim, *sets])
    for name, (out, t1, extra) in rows.items():
        if name != "t2_main":
            s.start(name, s.reproduce(out, t1, extra))
    deadline = a.budget * a.gan_share

    def gan_dir(name: str) -> Path:
        out, t1, _ = rows[name]
        return out / f"ssgan_{t1:g}s"

    while s.now() < deadline and not all((gan_dir(n) / "DONE").is_file() for n in rows):
        if not any(s.running(n) for n in rows):
            break
        time.sleep(2)
    s.pack()
    for name, (out, t1, extra) in rows.items():
        if (gan_dir(name) / "DONE").is_file() or not s.running(name):
            continue
        s.stop(name)
        meta_path = gan_dir(name) / "last.json"
        if not meta_path.is_file():
            s.note("generator had no checkpoint at the deadline", run=name)
            continue
        k = int(json.loads(meta_path.read_text())["epoch"])
        s.note("generator stopped at the deadline", run=name, t1=t1, epochs=k)
        s.start(name + "_eval", s.reproduce(out, t1, [*extra, "--set", f"gan.epochs={k}"]))


def wait_all(s: Session, until: float) -> None:
    while s.now() < until and any(s.running(n) for n in list(s.procs)):
        time.sleep(2)
    for name in list(s.procs):
        if s.running(name):
            s.stop(name)
    for name, p in list(s.procs.items()):
        if name not in s.reported:
            s.reported.add(name)
            s.note("process", name=name, returncode=p.poll())


def attack_cost(s: Session, main_out: Path, t1: float, *, early: bool = False) -> None:
    """``attack_cost.py`` on the trained victim (and generator, unless ``early``)."""
    a = s.args
    gen = main_out / f"ssgan_{t1:g}s"
    if not (main_out / "victim" / "DONE").is_file() or not (early or (gen / "last.json").is_file()):
        s.note("attack cost skipped: no victim or generator")
        return
    cmd = [
        sys.executable, str(BENCHMARKS / "attack_cost.py"), "--victim", str(main_out / "victim"),
        "--root", str(a.data / "ESC-50"), "--checkpoint", "last",
        "--clips", str(a.cost_clips), "--eps", "0.01", "--device", a.device,
        "--out", str(s.work / "attack_cost.json"),
    ]  # fmt: skip
    if early:
        cmd += ["--only", "fgsm,pgd-10,pgd-long,cw"]
    else:
        cmd += ["--generator", str(gen)]
    if a.profile == "smoke":
        cmd.append("--quick")
    s.start("attack_cost", [*cmd, *a.cost_arg])
    if not early:
        wait_all(s, a.budget - 10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder holding ESC-50/")
    p.add_argument("--work", type=Path, required=True, help="run folders (weights stay here)")
    p.add_argument("--out", type=Path, required=True, help="results.tar.gz and session.json")
    p.add_argument("--budget", type=float, default=530.0, help="wall-clock seconds in all")
    p.add_argument("--device", default="cuda")
    p.add_argument("--profile", default="paper", choices=("smoke", "paper"))
    p.add_argument("--segments", default="1.6,0.8,3.2,4.0", help="t1 rows; the first is timed")
    p.add_argument("--victim-epochs", type=int, default=600, help="the official 600")
    p.add_argument("--victim-share", type=float, default=0.33, help="budget fraction")
    p.add_argument("--gan-share", type=float, default=0.80, help="budget fraction")
    p.add_argument("--eval-share", type=float, default=0.88, help="budget fraction")
    p.add_argument("--probe-epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=3, help="CPU threads per process")
    p.add_argument("--cost-clips", type=int, default=20)
    p.add_argument(
        "--gan-set", action="append", default=[], metavar="KEY=VALUE",
        help="override an SSGAN setting in every t1 row (the deadline's epochs=k comes after)",
    )  # fmt: skip
    p.add_argument(
        "--victim-set", action="append", default=[], metavar="KEY=VALUE",
        help="override a victim training setting (the epochs are --victim-epochs)",
    )  # fmt: skip
    p.add_argument(
        "--variant", action="append", default=[], metavar="NAME:K=V[,K=V]",
        help="also train SSGAN (first t1) with these settings, in its own run folder var_NAME; "
        "pick among variants by their validation metrics, not by the test columns",
    )  # fmt: skip
    p.add_argument(
        "--no-main-gan", action="store_true",
        help="train only the --variant generators (the main process stops after the victim)",
    )  # fmt: skip
    p.add_argument("--no-smoke", action="store_true", help="skip the smoke reproduce")
    p.add_argument(
        "--cost-early", action="store_true",
        help="run the attack-cost benchmark beside the generators (iterative attacks only)",
    )  # fmt: skip
    p.add_argument(
        "--cost-arg", action="append", default=[], metavar="ARG",
        help="extra argument of attack_cost.py, e.g. --cost-arg=--eps=0.003",
    )  # fmt: skip
    args = p.parse_args(argv)
    segments = [float(v) for v in args.segments.split(",")]

    s = Session(args)
    monitor = _gpu_monitor(s)
    try:
        _environment(s)
        main_out = s.work / "t2"
        if not args.no_smoke:
            # a smoke reproduce beside the victim: every stage's code path on this device, early
            s.start("smoke", s.reproduce(s.work / "smoke", segments[0], [], profile="smoke"))
        ok = train_victim(s, main_out, segments[0])
        s.pack()
        if ok:
            if args.cost_early:
                attack_cost(s, main_out, segments[0], early=True)
            train_generators(s, main_out, segments)
            wait_all(s, args.budget * args.eval_share)
            s.pack()
            if not args.cost_early:
                attack_cost(s, main_out, segments[0])
        wait_all(s, args.budget - 5)
        for table in sorted(s.work.glob("*/table2.md")):
            print(f"## {table.parent.name}\n" + table.read_text(encoding="utf-8"), flush=True)
    finally:
        s.finish(monitor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
