"""``ssgan demo``: the method at work in minutes, on the bundled clips, with shipped weights.

1. The shipped victim (``pretrained:esc10-logmel``, never trained on ESC-10 fold 5) and the
   shipped generator trained against it (``pretrained:esc10-logmel-ssgan``) attack the bundled
   clips: folds 1-4 (clips both saw in training) and fold 5 (held out). Beside the generator,
   Gaussian noise and PGD-L2 (10 steps) at the same per-clip SNR budget, on the same clips.
2. A fresh generator is trained against the same victim on the bundled folds 1-4 for a few
   minutes (the ``demo`` GAN profile at the shipped generator's budget) and scored on fold 5: the
   training loop at work, its figures those of minutes of training on 36 clips, labelled so.

Every row is an ``evaluate_attack`` run with its records, summary and report under ``out``; a
rerun skips the rows already written. ``demo.md`` holds the table.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ssgan.attacks.noise import GaussianNoise
from ssgan.attacks.pgd import PGD
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.data import bundled_root, load_dataset
from ssgan.data.splits import make_split
from ssgan.gan_validation import validate_generator
from ssgan.io import atomic_write_text
from ssgan.models.victim import load_victim
from ssgan.pretrained import PREFIX, provenance, resolve_run
from ssgan.reproduce_stages import Reporter, Stage, eval_stage, run_stages
from ssgan.training.gan import PROFILES as GAN_PROFILES
from ssgan.training.gan import train_gan

__all__ = ["DEMO_GENERATOR", "DEMO_VICTIM", "run_demo"]

DEMO_VICTIM = PREFIX + "esc10-logmel"
DEMO_GENERATOR = PREFIX + "esc10-logmel-ssgan"
FRESH_EPOCHS = 16
"""Epochs (of 50 steps) of the demo's fresh generator: about two minutes on 2 CPU cores."""


def _row(label: str, summaries: dict[str, dict[str, Any]]) -> str:
    def pct(s: dict[str, Any] | None, key: str) -> str:
        return "-" if not s or s.get(key) is None else f"{100 * s[key]:.1f} %"

    def db(s: dict[str, Any] | None, key: str) -> str:
        return "-" if not s or s.get(key) is None else f"{s[key]:.1f}"

    tr, te = summaries.get("train"), summaries.get("test")
    secs = (te or tr or {}).get("seconds_per_example")
    cells = [
        label,
        pct(tr, "asr"),
        pct(te, "asr"),
        f"{db(te, 'msnr_db')} / {db(te, 'msnr_box_db')}",
        "-" if secs is None else f"{1000 * secs:.0f} ms",
    ]
    return "| " + " | ".join(cells) + " |"


def run_demo(
    out: Path,
    *,
    device: str = "cpu",
    train_gan_epochs: int | None = None,
    report: Reporter = print,
) -> Path:
    """Run the demo into ``out``; returns the path of ``demo.md`` (its table)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset("esc10", bundled_root())
    train, test = make_split(dataset, "fold:5")
    victim_dir = resolve_run(DEMO_VICTIM)
    shipped = SSGANAttack.from_run(DEMO_GENERATOR, checkpoint="best", device=device)
    snr, convention = shipped.snr_db, shipped.snr_convention
    budget = f"{snr:g} dB {convention} SNR"
    info = {"dataset": dataset.name, "root": "bundled", "split": "fold:5", "demo": True}
    attacks: list[tuple[str, str, Callable[[], Any]]] = [
        ("ssgan", f"SSGAN, shipped generator, query-free ({budget})", lambda: shipped),
        ("noise", f"Gaussian noise ({budget})", partial(
            GaussianNoise, snr_db=snr, snr_convention=convention)),
        ("pgd", f"PGD-L2, 10 steps ({budget})", partial(
            PGD, norm="l2", snr_db=snr, snr_convention=convention, steps=10)),
    ]  # fmt: skip
    stages: list[Stage] = []
    for tag, title, make in attacks:
        for subset, ds in (("train", train), ("test", test)):
            stages.append(
                eval_stage(
                    out,
                    f"{tag}_{subset}",
                    make=make,
                    victim_dir=victim_dir,
                    dataset=ds,
                    device=device,
                    title=f"{title} on the bundled {subset} clips",
                    paper_rows=[],
                    meta={"attack": tag, "subset": subset, "victim_name": DEMO_VICTIM, **info},
                    seed=0,
                )
            )
    # The training loop at work: a fresh generator, minutes of training on folds 1-4.
    # The demo profile at the shipped generator's budget, so that the two rows compare.
    epochs = FRESH_EPOCHS if train_gan_epochs is None else train_gan_epochs
    config = dataclasses.replace(
        GAN_PROFILES["demo"],
        epochs=epochs,
        lr_halve_every=max(1, epochs // 2),
        snr_db=snr,
        snr_convention=convention,
    )
    fresh = out / "fresh_generator"
    timing: dict[str, float] = {}

    gan_train, val = make_split(train, "paper", seed=1)  # validation clips out of training

    def train_fresh() -> None:
        victim, vmeta = load_victim(victim_dir, device)
        start = time.perf_counter()
        train_gan(
            config,
            victim,
            gan_train,
            val,
            fresh,
            resume=True,
            device=device,
            progress=True,
            extra_meta={
                "victim_run": DEMO_VICTIM,
                "class_names": vmeta.get("class_names"),
                "dataset": dataset.name,
                "split": "fold:5",
            },
            validate=validate_generator,
        )
        timing["seconds"] = time.perf_counter() - start

    stages.append(Stage("train a fresh generator", lambda: (fresh / "done").is_file(), train_fresh))
    stages.append(
        Stage(
            "record the training time",
            lambda: (fresh / "done").is_file(),
            lambda: atomic_write_text(fresh / "done", json.dumps(timing) + "\n"),
        )
    )
    for subset, ds in (("train", train), ("test", test)):
        stages.append(
            eval_stage(
                out,
                f"fresh_{subset}",
                make=partial(SSGANAttack.from_run, fresh, checkpoint="best", device=device),
                victim_dir=victim_dir,
                dataset=ds,
                device=device,
                title=f"SSGAN, generator trained in this demo, on the bundled {subset} clips",
                paper_rows=[],
                meta={"attack": "ssgan", "subset": subset, **info},
                seed=0,
            )
        )
    run_stages(stages, report)

    def summaries(tag: str) -> dict[str, dict[str, Any]]:
        found = {}
        for subset in ("train", "test"):
            path = out / f"{tag}_{subset}" / "summary.json"
            if path.is_file():
                found[subset] = json.loads(path.read_text(encoding="utf-8"))
        return found

    clean = summaries("ssgan")
    fresh_time = json.loads((fresh / "done").read_text(encoding="utf-8")).get("seconds")
    steps = config.epochs * (config.steps_per_epoch or 0)
    fresh_label = (
        f"SSGAN, fresh generator: {steps} steps"
        + (f" ({fresh_time / 60:.1f} min)" if fresh_time else "")
        + f", demo profile ({config.snr_db:g} dB {config.snr_convention} SNR)"
    )
    lines = [
        f"Victim `{DEMO_VICTIM}` (log-mel CNN, ESC-10 folds 1-4): clean accuracy "
        + ", ".join(
            f"{100 * s['acc']:.1f} % on the {len(ds)} bundled {sub} clips"
            for sub, ds in (("train", train), ("test", test))
            if (s := clean.get(sub)) and s.get("acc") is not None
        )
        + ". ASR = fooled / correctly classified; MSNR over the fooled test clips, true SNR / "
        "[16]'s box SNR (docs/snr.md).",
        "",
        "| attack | ASR train (folds 1-4) | ASR test (fold 5) | MSNR test, true / box (dB) "
        "| time / clip |",
        "|---|---:|---:|---:|---:|",
        *(_row(title.split(" (")[0], summaries(tag)) for tag, title, _ in attacks),
        _row(fresh_label, summaries("fresh")),
        "",
        f"Budget of the first three rows: {budget}, each clip scaled to it exactly. The train "
        "columns are clips the victim and the shipped generator trained on; fold 5 is held out. "
        f"The fresh generator's row is minutes of training on {len(gan_train)} of the train clips, "
        "not the method's figure "
        "(docs/results.md has those).",
    ]
    measured = provenance(DEMO_GENERATOR).get("fold5_test", {})
    if all(isinstance(measured.get(k), dict) for k in ("ssgan", "noise")):
        g, n = measured["ssgan"], measured["noise"]
        lines += [
            "",
            f"On all {g.get('n')} ESC-10 fold-5 clips (not only the bundled ten; measured when the "
            f"weights were built, docs/pretrained.md): the shipped generator fools "
            f"{100 * g['asr']:.1f} % of the clips the victim gets right, Gaussian noise at the "
            f"same SNR {100 * n['asr']:.1f} %.",
        ]
    md = out / "demo.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    return md
