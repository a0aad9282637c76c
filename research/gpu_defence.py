"""The adversarial fine-tuning defence table of issue 17, as one phase of a prepared GPU session.

Runs beside the other phases of ``research/gpu_issues.py`` (in a thread that only starts and
watches ``ssgan`` processes) once the session's EnvNet is trained:

1. a fixed SSGAN generator against that EnvNet (the ``cpu`` recipe, ``--defence-gan-epochs``);
2. three 30-epoch fine-tunes of the EnvNet (docs/robustness.md's plan, lr 1e-3 as in the CPU
   run): on clean crops only (the control), with half of each batch replaced by the fixed
   generator's crops, and by PGD's (Linf 0.002, 5 steps);
3. every victim (the original and the three fine-tuned) against the fixed generator, PGD-Linf
   0.002 (10 steps), PGD-L2 1.0 (20 steps, ~30 dB) and C&W-L2; a generator re-trained with the
   fixed one's budget against each fine-tuned victim (the adaptive attacker), then scored;
4. ``research/defence_table.py`` writes ``defence/defence.{json,md}``.

Each job starts when the jobs it needs have finished well (a failed one skips what depends on
it), at most ``--defence-parallel`` at a time; nothing is started after ``until``.
"""

from __future__ import annotations

import time
from typing import Any

#: Victims of the table: run name (``base`` = the session's EnvNet) -> row label.
ROWS = {
    "base": "EnvNet (this session)",
    "clean": "+ clean fine-tune (control)",
    "ssgan": "+ SSGAN-crop fine-tune",
    "pgd": "+ PGD-crop fine-tune",
}
#: The fine-tune of docs/robustness.md's plan (30 epochs), at the CPU run's fine-tuning lr.
FINE_TUNE = ["epochs=30", "lr=0.001", "bf16=false", "checkpoint_every=100000"]
PGD_CROPS = ["--adversarial", "pgd", "--set", "adversarial.eps=0.002", "--set",
             "adversarial.steps=5"]  # fmt: skip
#: Columns: name -> (label, ``ssgan evaluate attack`` arguments). SSGAN's are added per row.
ATTACKS = {
    "pgd_linf": ("PGD Linf 0.002, 10 steps", ["--attack", "pgd", "--set", "attack.eps=0.002",
                                               "--set", "attack.steps=10"]),
    "pgd_l2": ("PGD-L2 1.0, 20 steps", ["--attack", "pgd", "--set", "attack.norm=l2",
                                         "--set", "attack.eps=1.0", "--set", "attack.loss=margin",
                                         "--set", "attack.steps=20"]),
    "cw": ("C&W-L2 100x3", ["--attack", "cw", "--set", "attack.steps=100",
                            "--set", "attack.binary_search_steps=3"]),
}  # fmt: skip
FIXED, RETRAINED = "SSGAN, fixed G", "SSGAN, G trained against this victim"


class Job:
    """A command and the jobs that must have succeeded before it starts."""

    def __init__(self, cmd: list[str], needs: list[str] | None = None) -> None:
        self.cmd, self.needs = cmd, list(needs or [])


def jobs(s: Any) -> tuple[dict[str, Job], list[tuple[str, str, str]]]:
    """Every job of the defence phase, and the table's cells (row, column, job name)."""
    a = s.args
    smoke = a.profile == "smoke"
    w = s.work / "defence"
    quick = ["--limit", "4"] if smoke else []

    def sets(values: list[str]) -> list[str]:
        return [x for kv in values for x in ("--set", kv)]

    def victim(row: str) -> list[str]:
        path = s.victim_dir("envnet") if row == "base" else w / f"victim_{row}"
        return ["--victim", str(path), "--victim-checkpoint", "last"]

    def gan(row: str, out: str) -> Job:
        gan_sets = [f"epochs={a.defence_gan_epochs}", "steps_per_epoch=100",
                    f"lr_halve_every={max(1, a.defence_gan_epochs // 3)}", *a.gan_set]  # fmt: skip
        if smoke:
            gan_sets = ["epochs=1", "steps_per_epoch=2", *a.gan_set]
        cmd = s.ssgan(
            "train", "gan", *victim(row), *s.data(), "--profile", "smoke" if smoke else "cpu",
            "--out", str(w / out), "--device", a.device, *sets(gan_sets),
        )  # fmt: skip
        return Job(cmd, [] if row == "base" else [f"victim_{row}"])

    def evaluate(row: str, out: str, attack: list[str], needs: list[str]) -> Job:
        cmd = s.ssgan(
            "evaluate", "attack", *attack, *victim(row), *s.data(), "--out", str(w / out),
            "--batch-size", str(a.eval_batch), "--device", a.device, *quick,
        )  # fmt: skip
        return Job(cmd, needs + ([] if row == "base" else [f"victim_{row}"]))

    out: dict[str, Job] = {"gan_fixed": gan("base", "gan_fixed")}
    fine = ["epochs=1"] if smoke else FINE_TUNE
    adversary = {"clean": [], "ssgan": ["--adversarial", str(w / "gan_fixed")], "pgd": PGD_CROPS}
    for row, extra in adversary.items():
        out[f"victim_{row}"] = Job(
            s.ssgan(
                "train", "victim", *s.data(), "--model", "envnet", "--profile",
                "smoke" if smoke else "cpu", "--init", str(s.victim_dir("envnet")), *extra,
                "--out", str(w / f"victim_{row}"), "--device", a.device,
                *sets([*fine, *a.victim_set]),
            ),
            ["gan_fixed"] if row == "ssgan" else [],
        )  # fmt: skip
    cells: list[tuple[str, str, str]] = []
    for row in ROWS:
        name = f"eval_{row}_ssgan_fixed"
        fixed = ["--attack", "ssgan", "--generator", str(w / "gan_fixed")]
        out[name] = evaluate(row, name, fixed, ["gan_fixed"])
        cells.append((ROWS[row], FIXED, name))
        if row == "base":
            cells.append((ROWS[row], RETRAINED, name))  # its fixed G was trained against it
        else:
            out[f"gan_vs_{row}"] = gan(row, f"gan_vs_{row}")
            name = f"eval_{row}_ssgan_retrained"
            again = ["--attack", "ssgan", "--generator", str(w / f"gan_vs_{row}")]
            out[name] = evaluate(row, name, again, [f"gan_vs_{row}"])
            cells.append((ROWS[row], RETRAINED, name))
        for key, (label, attack) in ATTACKS.items():
            name = f"eval_{row}_{key}"
            out[name] = evaluate(row, name, attack, [])
            cells.append((ROWS[row], label, name))
    return {f"def_{k}": v for k, v in out.items()}, cells


def run_defence(s: Any, until: float) -> None:
    """Run the defence jobs until they are done, ``until`` or ``s.stopping``; then write the
    table. An error is noted, not raised: it ends this phase, not the session."""
    try:
        _schedule(s, until)
    except Exception as exc:
        s.note("defence phase failed", error=f"{type(exc).__name__}: {exc}")


def _schedule(s: Any, until: float) -> None:
    todo, cells = jobs(s)
    for job in todo.values():
        job.needs = [f"def_{n}" for n in job.needs]
    started: set[str] = set()
    skipped: set[str] = set()
    while s.now() < until and not s.stopping.is_set():
        busy = [n for n in started if s.running(n)]
        for name, job in todo.items():
            if name in started or name in skipped:
                continue
            if any(n in skipped or (n in started and s.returncode(n) not in (None, 0))
                   for n in job.needs):  # fmt: skip
                skipped.add(name)
                s.note("defence job skipped", name=name, needs=job.needs)
            elif (
                all(n in started and s.returncode(n) == 0 for n in job.needs)
                and len(busy) < s.args.defence_parallel
            ):
                s.start(name, job.cmd)
                started.add(name)
                busy.append(name)
        if len(started) + len(skipped) == len(todo) and not busy:
            break
        time.sleep(1)
    write_table(s, cells)


def write_table(s: Any, cells: list[tuple[str, str, str]]) -> None:
    import defence_table  # research/ is on sys.path (gpu_issues puts it there)

    argv: list[str] = []
    for row, column, name in cells:
        if (s.work / "defence" / name / "summary.json").is_file():
            argv += ["--eval", row, column, str(s.work / "defence" / name)]
    if not argv:
        s.note("defence: no cell finished")
        return
    rc = defence_table.main([*argv, "--out", str(s.work / "defence" / "defence.json")])
    s.note("defence table", cells=len(argv) // 4, returncode=rc)
