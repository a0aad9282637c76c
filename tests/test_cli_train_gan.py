"""``ssgan train gan`` validates on clips held out of the training split, never the test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from helpers import CLASSES, make_victim_run
from ssgan.cli import main


def _folder(root: Path) -> Path:
    """20 tiny clips of the victim's two classes: fold 1 = 16 (8 a class), fold 2 = 4."""
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = ["path,label,fold"]
    for i in range(20):
        x = 0.3 * rng.standard_normal(4000).astype(np.float32)
        sf.write(str(root / f"c{i}.wav"), x, 16000)
        rows.append(f"c{i}.wav,{CLASSES[i % 2]},{1 if i < 16 else 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_train_gan_validates_on_held_out_training_clips(tmp_path, capsys):
    root = _folder(tmp_path / "data")
    victim = make_victim_run(tmp_path / "victim")
    out = tmp_path / "gan"
    sets = ["epochs=1", "steps_per_epoch=1", "batch_size=2", "segment_seconds=0.2",
            "g_channels=2", "g_blocks=1", "d_mfe_channels=2", "d_del_channels=2"]  # fmt: skip
    rc = main(
        ["train", "gan", "--victim", str(victim), "--victim-checkpoint", "last", "--dataset",
         "folder", "--root", str(root), "--split", "fold:2", "--profile", "smoke", "--out",
         str(out), *[a for s in sets for a in ("--set", s)]]
    )  # fmt: skip
    assert rc == 0
    meta = json.loads((out / "last.json").read_text())
    # fold 1 (16 clips, 8 per class) -> 14 to train on, ceil(8 / 10) = 1 per class held out
    assert (meta["n_train"], meta["n_val"], meta["n_test"]) == (14, 2, 4)
    assert meta["victim_checkpoint"] == "last"
    epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert epoch["val/clips"] == 2  # the held-out clips, not the 4 test clips
    capsys.readouterr()
