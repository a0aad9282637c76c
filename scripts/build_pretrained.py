"""Rebuild the weights shipped in ``src/ssgan/weights/`` with the project's own commands.

    python scripts/build_pretrained.py --root $SSGAN_DATA/ESC-50 --work runs/pretrained

1. ``ssgan train victim``: the log-mel CNN on ESC-10, official folds 1-4 (fold 5 held out);
2. ``ssgan train gan``: an exact-SNR SSGAN generator against it, query-free at attack time;
3. ``ssgan evaluate victim`` / ``ssgan evaluate attack`` on fold 5: the victim's accuracy, the
   generator's ASR and, at the same budget, Gaussian noise's;
4. the weights alone (no optimiser state, no discriminator) go to
   ``src/ssgan/weights/esc10-logmel`` and ``.../esc10-logmel-ssgan`` with a ``provenance.json``
   (commands, commit, data and licence, the measured figures).

Every step is an ordinary CLI call, resumable by rerunning (a finished step is skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "src" / "ssgan" / "weights"
VICTIM_NAME = "esc10-logmel"
GAN_NAME = "esc10-logmel-ssgan"
DATA_LICENCE = (
    "ESC-50 / ESC-10 (K. J. Piczak, 2015), clips from freesound.org, CC BY-NC 3.0 "
    "(https://github.com/karolpiczak/ESC-50); weights derived from it: non-commercial use"
)


def ssgan(*args: str, log: list[str]) -> None:
    cmd = ["ssgan", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run([sys.executable, "-m", "ssgan", *args], check=True)
    log.append(" ".join(cmd))


def training_seconds(run: Path) -> float:
    """The run's own clock: the sum of its epochs' seconds (a resumed call adds nothing)."""
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line]
    return round(sum(float(r.get("seconds", r.get("epoch_s", 0.0))) for r in rows), 1)


def commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def export(run: Path, checkpoint: str, prefix: str, dest: Path, provenance: dict) -> None:
    """``run/checkpoint`` reduced to the tensors under ``prefix`` (the weights users load)."""
    tensors = {k: v for k, v in load_file(str(run / f"{checkpoint}.safetensors")).items()
               if k.startswith(prefix)}  # fmt: skip
    meta = json.loads((run / f"{checkpoint}.json").read_text(encoding="utf-8"))
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("best", "last"):  # both names, so either --*-checkpoint reads the same weights
        weights = {k: v.contiguous() for k, v in tensors.items()}
        save_file(weights, str(dest / f"{name}.safetensors"))
        (dest / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (dest / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n", "utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="the ESC-50 folder (official layout)")
    p.add_argument("--work", type=Path, default=Path("runs/pretrained"), help="run folders")
    p.add_argument("--victim-epochs", type=int, default=40)
    p.add_argument("--gan-profile", default="cpu")
    p.add_argument("--gan-epochs", type=int, default=10)
    p.add_argument("--snr-db", type=float, default=30.0, help="the generator's exact true SNR")
    p.add_argument("--note", default="", help="conditions of the build (e.g. a shared machine)")
    args = p.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    data = ["--dataset", "esc10", "--root", args.root]
    victim, gan = work / "victim", work / "gan"
    # --resume: a run killed half-way goes on, a finished one returns at once.
    ssgan("train", "victim", *data, "--model", "logmel", "--split", "fold:5", "--profile", "cpu",
          "--set", f"epochs={args.victim_epochs}", "--out", str(victim), "--resume",
          log=log)  # fmt: skip
    ssgan("train", "gan", "--victim", str(victim), *data, "--profile", args.gan_profile,
          "--set", f"epochs={args.gan_epochs}", "--set", f"snr_db={args.snr_db}",
          "--out", str(gan), "--resume", log=log)  # fmt: skip
    figures = {}
    for name, extra in (
        ("ssgan", ["--generator", str(gan)]),
        ("noise", ["--set", f"attack.snr_db={args.snr_db}"]),
    ):
        out = work / f"eval_{name}"
        if not (out / "summary.json").is_file():
            ssgan("evaluate", "attack", "--attack", name, *extra, "--victim", str(victim),
                  *data, "--subset", "test", "--out", str(out), "--overwrite",
                  log=log)  # fmt: skip
        s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        figures[name] = {k: s.get(k) for k in ("n", "acc", "asr", "msnr_db", "msnr_box_db",
                                               "seconds_per_example")}  # fmt: skip
    victim_meta = json.loads((victim / "last.json").read_text(encoding="utf-8"))
    common = {
        "built_by": "scripts/build_pretrained.py "
        + " ".join(
            f"--{k.replace('_', '-')}={v}"
            for k, v in vars(args).items()
            if k not in ("work", "note")
        ),
        "commit": commit(),
        "data": "ESC-10 (the 10-class subset of ESC-50), 16 kHz mono; train folds 1-4, test fold 5",
        "data_licence": DATA_LICENCE,
        "commands": log,
        "machine": f"{os.cpu_count()} CPU cores" + (f"; {args.note}" if args.note else ""),
    }
    export(victim, "last", "net.", WEIGHTS / VICTIM_NAME, {
        **common,
        "what": "log-mel CNN victim (ssgan.models.logmel), 10-crop clip protocol",
        "training_seconds": training_seconds(victim),
        "test_accuracy_fold5": victim_meta.get("accuracy"),
        "test_accuracy_fold5_evaluated": figures["ssgan"]["acc"],
    })  # fmt: skip
    export(gan, "best", "G.", WEIGHTS / GAN_NAME, {
        **common,
        "what": f"SSGAN generator, exact true SNR {args.snr_db:g} dB, profile {args.gan_profile}, "
        f"trained against pretrained:{VICTIM_NAME}",
        "victim": f"pretrained:{VICTIM_NAME}",
        "training_seconds": training_seconds(gan),
        "fold5_test": figures,
    })  # fmt: skip
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
