"""One prepared GPU session for issues 16 and 17: three victims, their generators, the transfer
matrix with C&W, targeted attacks, and the robustness table with its C&W and PGD + EOT rows.

Written for a lent GPU machine with a fixed wall-clock budget (``--budget`` seconds) and one
chance to run. Every step is an ``ssgan`` command in its own process, so what runs here is what
a user runs; this script only schedules them against the budget (``gpu_session.Session``):

1. **Victims** (in parallel until ``--victim-share``): EnvNet, EnvNet-v2 and the log-mel CNN on
   ESC-10, train folds 1-4 / test fold 5, the ``paper`` profile. After ``--probe-epochs`` each
   victim's epoch time is known; one whose epochs do not fit is restarted with as many as do
   (the learning-rate milestones are fractions of the epochs, so the schedule keeps its shape).
2. **Generators** (in parallel until ``--gan-share``): one untargeted generator per victim (the
   front-end G on whole clips for the two EnvNets, the ``cpu`` recipe for the log-mel CNN, as
   in docs/targeted.md), the class-conditional G against EnvNet (not with ``--no-targeted``),
   and ``ssgan reproduce robustness`` against EnvNet, one process per row of its table.
   A generator still training at the deadline is stopped: its ``last`` checkpoint (the end of
   its last whole epoch, the lr halving every few epochs whatever the count) is what is
   evaluated; a robustness process is restarted with ``--set gan.epochs=k`` so that its own
   evaluations run on that checkpoint.
3. **Evaluations** (in parallel until the end): ``ssgan reproduce transfer`` for SSGAN, PGD and
   C&W (one process each), targeted SSGAN / PGD / C&W on EnvNet, Gaussian noise at 30 dB on each
   victim, and the robustness rows merged into one table (``robustness/``).

With ``--defence``, the defence table (``research/gpu_defence.py``) runs beside phases 2 and 3
as soon as EnvNet is trained.

Everything small the runs write (tables, summaries, metrics.jsonl, logs; no weights) is packed
into ``OUT/results.tar.gz`` after each phase, so a run cut short still returns what it measured.

    python3 research/gpu_issues.py --data .device/data --work /tmp/gi --out "$OUT" \\
        --budget 500 --device cuda

``--profile smoke --device cpu`` runs the same schedule on a CPU with tiny models (the test of
this script).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gpu_defence import jobs, run_defence, write_table  # noqa: E402
from gpu_session import Session, _environment, _gpu_monitor, _lines, wait_all  # noqa: E402

VICTIMS = ("envnet", "envnetv2", "logmel")  # the order of the transfer matrix
#: Per-model victim settings over the ``paper`` profile. EnvNet-v2's official lr 0.1 diverged
#: on ESC-10 (NaN from epoch 21 on the H200; docs/targeted.md); 0.01 trained it.
MODEL_SETS = {"envnetv2": ["lr=0.01"]}
#: The front-end G on whole 5 s clips, scored by the clip victim (docs/notebook/recipe.md,
#: seventh sweep).
FRONT_CLIP = ["segment_seconds=5", "victim_view=clip", "victim_crops=5"]
#: PGD-L2 at eps 1.0 is ~30 dB below a typical ESC-10 clip (docs/targeted.md).
PGD_L2 = ["norm=l2", "eps=1.0", "loss=margin"]


class Issues(Session):
    def ssgan(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "ssgan", *argv]

    def data(self) -> list[str]:
        return ["--dataset", "esc10", "--root", str(self.args.data / "ESC-50"), "--split", "fold:5"]

    def victim_dir(self, model: str) -> Path:
        return self.work / f"victim_{model}"

    def victim_cmd(self, model: str, epochs: int) -> list[str]:
        a = self.args
        own = MODEL_SETS.get(model, []) if a.profile == "paper" else []
        sets = [f"epochs={epochs}", "checkpoint_every=100000", *own, *a.victim_set]
        return self.ssgan(
            "train", "victim", *self.data(), "--model", model, "--profile", a.profile,
            "--out", str(self.victim_dir(model)), "--device", a.device,
            *[x for kv in sets for x in ("--set", kv)],
        )  # fmt: skip

    def victim_args(self, model: str) -> list[str]:
        return ["--victim", str(self.victim_dir(model)), "--victim-checkpoint", "last"]


def train_victims(s: Issues) -> list[str]:
    """Train the three victims side by side, each sized to the victim deadline; the models
    that finished."""
    a = s.args
    deadline = a.budget * a.victim_share
    models = [m for m in VICTIMS if m in a.models.split(",")]
    epochs = {m: a.victim_epochs for m in models}
    sized: set[str] = set()
    for m in models:
        s.start(f"victim_{m}", s.victim_cmd(m, epochs[m]))
    while any(s.running(f"victim_{m}") for m in models):
        for m in models:
            rows = _lines(s.victim_dir(m) / "metrics.jsonl")
            if m in sized or len(rows) < a.probe_epochs:
                continue
            sized.add(m)
            secs = sorted(r["seconds"] for r in rows[1:])  # epoch 1 carries the autotuning
            per_epoch = secs[len(secs) // 2]
            fit = int((deadline - s.now()) / per_epoch) + len(rows)
            s.note("victim epoch time", model=m, seconds=per_epoch, would_fit=fit)
            if fit < epochs[m]:
                s.stop(f"victim_{m}")
                shutil.rmtree(s.victim_dir(m))
                # a restart pays its start-up again; leave it a tenth of the time
                epochs[m] = max(a.probe_epochs, int(0.9 * fit) // 10 * 10)
                s.note("victim resized", model=m, epochs=epochs[m])
                s.start(f"victim_{m}", s.victim_cmd(m, epochs[m]))
        time.sleep(1)
    done = []
    for m in models:
        rows = _lines(s.victim_dir(m) / "metrics.jsonl")
        ok = s.returncode(f"victim_{m}") == 0
        s.note(
            "victim done" if ok else "victim failed", model=m, epochs=len(rows),
            final_test_acc=rows[-1].get("test_acc") if rows else None,
            train_seconds=round(sum(r["seconds"] for r in rows), 1),
        )  # fmt: skip
        if ok:
            done.append(m)
    return done


def gan_cmd(
    s: Issues, name: str, victim: str, profile: str, sets: list[str], *extra: str
) -> list[str]:
    a = s.args
    sets = [f"epochs={a.gan_epochs}", f"steps_per_epoch={a.gan_steps}",
            f"lr_halve_every={max(1, a.gan_epochs // 3)}", *sets, *a.gan_set]  # fmt: skip
    return s.ssgan(
        "train", "gan", *s.victim_args(victim), *s.data(), "--profile", profile, *extra,
        "--out", str(s.work / name), "--device", a.device,
        *[x for kv in sets for x in ("--set", kv)],
    )  # fmt: skip


def robustness_cmd(s: Issues, name: str, methods: str, *extra: str) -> list[str]:
    a = s.args
    rob = "smoke" if a.profile == "smoke" else "cpu"
    sets = [f"gan.{kv}" for kv in a.gan_set] + list(extra)
    return s.ssgan(
        "reproduce", "robustness", "--profile", rob, "--dataset", "esc10",
        "--root", str(a.data / "ESC-50"), "--split", "fold:5", "--victim",
        str(s.victim_dir("envnet")), "--methods", methods, "--out", str(s.work / name),
        "--device", a.device, *[x for kv in sets for x in ("--set", kv)],
    )  # fmt: skip


def train_generators(s: Issues, victims: list[str]) -> dict[str, list[str]]:
    """Start every generator (and the robustness processes); stop them at the deadline.
    Returns the robustness commands, re-run with the epochs reached where stopped."""
    a = s.args
    front = "smoke" if a.profile == "smoke" else "cpu-front"
    plain = "smoke" if a.profile == "smoke" else "cpu"
    clip = [*FRONT_CLIP, f"batch_size={a.clip_batch}"]
    if a.profile == "smoke":
        clip = ["victim_view=clip", "victim_crops=2"]
    gans: dict[str, list[str]] = {}
    for v in victims:
        if v == "logmel":
            gans[f"gan_{v}"] = gan_cmd(s, f"gan_{v}", v, plain, [])
        else:
            gans[f"gan_{v}"] = gan_cmd(s, f"gan_{v}", v, front, clip)
    if "envnet" in victims and not a.no_targeted:
        gans["gan_targeted"] = gan_cmd(s, "gan_targeted", "envnet", front, [], "--targeted")
    robust: dict[str, list[str]] = {}
    if "envnet" in victims:
        for method in a.robustness_methods.split(",") if a.robustness_methods else []:
            robust[f"rob_{method}"] = robustness_cmd(s, f"rob_{method}", method)
    for name, cmd in {**gans, **robust}.items():
        s.start(name, cmd)
    deadline = a.budget * a.gan_share
    while s.now() < deadline and any(s.running(n) for n in gans):
        time.sleep(2)
    for name in gans:
        if s.running(name):
            s.stop(name)
            meta = s.work / name / "last.json"
            k = json.loads(meta.read_text())["epoch"] if meta.is_file() else None
            s.note("generator stopped at the deadline", run=name, epochs=k)
    for name, cmd in robust.items():
        if name not in ("rob_ssgan", "rob_ssgan-eot"):
            continue  # no generator: its evaluation runs on
        gan_dir = s.work / name / ("ssgan_1.6s_eot" if name == "rob_ssgan-eot" else "ssgan_1.6s")
        meta = gan_dir / "last.json"
        if not s.running(name) or (gan_dir / "DONE").is_file():
            continue
        if not meta.is_file():  # nothing to stop at yet: it trains on, beside the evaluations
            s.note("robustness generator had no checkpoint at the deadline", run=name)
            continue
        s.stop(name)
        k = int(json.loads(meta.read_text())["epoch"])
        s.note("robustness generator stopped at the deadline", run=name, epochs=k)
        robust[name] = [*cmd, "--set", f"gan.epochs={k}"]
        s.start(name + "_eval", robust[name])
    s.pack()
    return robust


def evaluate(s: Issues, victims: list[str]) -> None:
    a = s.args
    quick = ["--limit", "4"] if a.profile == "smoke" else []
    cw = ["steps=3", "binary_search_steps=1"] if a.profile == "smoke" else [
        f"steps={a.cw_steps}", f"binary_search_steps={a.cw_search}"]  # fmt: skip
    pgd = [*PGD_L2, "steps=2" if a.profile == "smoke" else f"steps={a.pgd_steps}"]
    gens = [s.work / f"gan_{v}" for v in victims]
    have_gens = all((g / "last.json").is_file() for g in gens)
    for attack, sets in (("ssgan", []), ("pgd", pgd), ("cw", cw)):
        if attack == "ssgan" and not have_gens:
            s.note("transfer skipped: a generator has no checkpoint", attack=attack)
            continue
        s.start(f"transfer_{attack}", s.ssgan(
            "reproduce", "transfer", "--victims", *[str(s.victim_dir(v)) for v in victims],
            *(["--generators", *map(str, gens)] if attack == "ssgan" else []),
            "--attacks", attack, *[x for kv in sets for x in ("--set", f"{attack}.{kv}")],
            *s.data(), "--batch-size", str(a.eval_batch),
            "--out", str(s.work / f"transfer_{attack}"), "--device", a.device, *quick,
        ))  # fmt: skip
    for v in victims:
        s.start(f"noise_{v}", s.ssgan(
            "evaluate", "attack", "--attack", "noise", "--set", "attack.snr_db=30",
            *s.victim_args(v), *s.data(), "--out", str(s.work / f"noise_{v}"),
            "--device", a.device, "--batch-size", str(a.eval_batch), *quick,
        ))  # fmt: skip
    if "envnet" in victims and not a.no_targeted:
        targeted: list[tuple[str, str, list[str]]] = [
            ("pgd", "random", pgd),
            ("cw", "random", cw),
            ("pgd", "least-likely", pgd),
        ]
        if (s.work / "gan_targeted" / "last.json").is_file():
            targeted += [("ssgan", "random", []), ("ssgan", "least-likely", [])]
        for attack, target, sets in targeted:
            gen = ["--generator", str(s.work / "gan_targeted")] if attack == "ssgan" else []
            s.start(f"targeted_{attack}_{target}", s.ssgan(
                "evaluate", "attack", "--attack", attack, *gen,
                *[x for kv in sets for x in ("--set", f"attack.{kv}")], *s.victim_args("envnet"),
                *s.data(), "--target", target, "--batch-size", str(a.eval_batch),
                "--out", str(s.work / f"targeted_{attack}_{target}"), "--device", a.device,
                *quick,
            ))  # fmt: skip


def merge_robustness(s: Issues) -> None:
    """The robustness processes' rows (one process per attack, ``rob_<method>``) in one table,
    ``robustness/robustness.{md,json,png,html}``, from the evaluation stages that finished."""
    from ssgan.evaluation import resolve_transforms
    from ssgan.reproduce_robustness import (
        METHODS,
        ROBUSTNESS_TRANSFORMS,
        _tag,
        write_robustness_table,
    )

    merged = s.work / "robustness"
    for method in METHODS:
        stage = s.work / f"rob_{method}" / f"{_tag(method)}_test"
        if (stage / "summary.json").is_file() and not (merged / stage.name).exists():
            shutil.copytree(stage, merged / stage.name)
    done = [m for m in METHODS if (merged / f"{_tag(m)}_test" / "summary.json").is_file()]
    if not done:
        s.note("robustness: no row finished")
        return
    first = json.loads((merged / f"{_tag(done[0])}_test" / "summary.json").read_text())
    rank = {t.spec: i for i, t in enumerate(resolve_transforms(ROBUSTNESS_TRANSFORMS))}
    specs = sorted(first.get("transforms", {}), key=lambda t: rank.get(t, len(rank)))
    caption = (
        f"ASR (%) of each attack against EnvNet on ESC-10 fold:5 ({first.get('n', '?')} test "
        f"clips; profile cpu on {s.args.device}) after each channel transform"
    )
    write_robustness_table(merged, done, specs, caption)
    s.note("robustness table", rows=done)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder holding ESC-50/")
    p.add_argument("--work", type=Path, required=True, help="run folders (weights stay here)")
    p.add_argument("--out", type=Path, required=True, help="results.tar.gz and session.json")
    p.add_argument("--budget", type=float, default=500.0, help="wall-clock seconds in all")
    p.add_argument("--device", default="cuda")
    p.add_argument("--profile", default="paper", choices=("smoke", "paper"))
    p.add_argument("--models", default=",".join(VICTIMS), help="victims to train")
    p.add_argument("--victim-epochs", type=int, default=600, help="the official 600")
    p.add_argument("--victim-share", type=float, default=0.3, help="budget fraction")
    p.add_argument("--gan-share", type=float, default=0.62, help="budget fraction")
    p.add_argument("--probe-epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2, help="CPU threads per process")
    p.add_argument("--gan-epochs", type=int, default=30)
    p.add_argument("--gan-steps", type=int, default=100, help="steps per generator epoch")
    p.add_argument("--clip-batch", type=int, default=16, help="whole clips a front-end G step")
    p.add_argument("--eval-batch", type=int, default=40)
    p.add_argument("--pgd-steps", type=int, default=20)
    p.add_argument("--cw-steps", type=int, default=100)
    p.add_argument("--cw-search", type=int, default=3)
    p.add_argument(
        "--robustness-methods", default="ssgan,ssgan-eot,pgd,pgd-eot,cw,uap",
        help="rows of the robustness table, one process each ('' = none)",
    )  # fmt: skip
    p.add_argument("--no-targeted", action="store_true", help="no conditional G, no targeted")
    p.add_argument("--defence", action="store_true", help="the defence table (gpu_defence.py)")
    p.add_argument("--defence-gan-epochs", type=int, default=10, help="x 100 generator steps")
    p.add_argument("--defence-parallel", type=int, default=8, help="defence jobs at a time")
    p.add_argument("--victim-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--gan-set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)

    s = Issues(args)
    monitor = _gpu_monitor(s)
    defence: threading.Thread | None = None
    try:
        _environment(s)
        victims = train_victims(s)
        s.pack()
        if args.defence and "envnet" in victims:
            defence = threading.Thread(target=run_defence, args=(s, args.budget - 15))
            defence.start()
        if victims:
            robust = train_generators(s, victims)
            evaluate(s, victims)
            # the robustness rows finish before the table that merges them
            while s.now() < args.budget - 20 and any(
                s.running(n) for n in (*robust, *(n + "_eval" for n in robust))
            ):
                time.sleep(2)
            if robust:
                merge_robustness(s)
        if defence is not None:
            defence.join(timeout=max(0.0, args.budget - 8 - s.now()))
        wait_all(s, args.budget - 5)
        if defence is not None:  # with the cells of jobs that ended after the thread
            write_table(s, jobs(s)[1])
        for md in sorted(s.work.glob("*/*.md")):
            if md.name in ("transfer.md", "robustness.md", "defence.md"):
                print(f"## {md.parent.name}\n" + md.read_text(encoding="utf-8"), flush=True)
    finally:
        s.stopping.set()  # the defence thread starts nothing more
        if defence is not None:
            defence.join(timeout=5)
        s.finish(monitor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
