"""Crash-safe training: SIGKILL a real ``ssgan train`` process, resume, get the same weights.

Each trainer runs as a CLI subprocess on a tiny synthetic folder dataset. The crashed run is
killed (SIGKILL: no cleanup, no ``finally``) at several points -- while a ``last`` checkpoint file
is being written (a ``.tmp`` file beside it exists), and right after start-up -- then resumed with
``--resume`` until it finishes. Its final ``last`` and ``best`` weights must equal an
uninterrupted run's bit for bit, and after every kill the checkpoint on disk must load and be at
most one epoch behind (``checkpoint_every=1``). A truncated checkpoint must stop ``--resume`` with
a clear error, never restart from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from safetensors.torch import load_file

from helpers import make_victim_run
from ssgan.io import load_checkpoint

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _dataset(root: Path) -> Path:
    root.mkdir()
    rows = ["path,label,fold"]
    rng = np.random.default_rng(0)
    for i in range(8):
        label = ("dog", "rain")[i % 2]
        t = np.arange(4000) / 16000
        x = np.sin(2 * np.pi * (300 + 500 * (i % 2)) * t) + 0.1 * rng.standard_normal(t.size)
        sf.write(str(root / f"c{i}.wav"), (0.5 * x).astype(np.float32), 16000)
        rows.append(f"c{i}.wav,{label},{1 + i // 6}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _victim_cmd(root: Path, out: Path) -> list[str]:
    sets = ["fc_width=8", "epochs=4", "checkpoint_every=1", "eval_every=1", "batch_size=2"]
    return [sys.executable, "-m", "ssgan", "train", "victim", "--dataset", "folder", "--root",
            str(root), "--split", "fold:2", "--profile", "smoke", "--out", str(out),
            *[a for s in sets for a in ("--set", s)]]  # fmt: skip


def _gan_cmd(root: Path, victim: Path, out: Path) -> list[str]:
    sets = ["epochs=4", "steps_per_epoch=2", "batch_size=2", "val_clips=2", "segment_seconds=0.2",
            "g_channels=2", "g_blocks=1", "d_mfe_channels=2", "d_del_channels=2"]  # fmt: skip
    return [sys.executable, "-m", "ssgan", "train", "gan", "--victim", str(victim), "--dataset",
            "folder", "--root", str(root), "--split", "fold:2", "--profile", "smoke", "--out",
            str(out), *[a for s in sets for a in ("--set", s)]]  # fmt: skip


def _epoch(out: Path) -> int:
    try:
        return int(json.loads((out / "last.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _run_until(cmd: list[str], out: Path, *, tmp_number: int | None, after_s: float) -> bool:
    """Run ``cmd``; SIGKILL it at the ``tmp_number``-th ``last`` temp file seen, or ``after_s``.

    Returns True when it was killed, False when it finished (exit 0) first.
    """
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start, seen, seen_names = time.monotonic(), 0, set()
    try:
        while proc.poll() is None:
            if tmp_number is not None and out.is_dir():
                for name in os.listdir(out):
                    if (
                        name.startswith(".last.")
                        and name.endswith(".tmp")
                        and name not in seen_names
                    ):
                        seen_names.add(name)
                        seen += 1
                if seen >= tmp_number:
                    before = _epoch(out)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    _check_after_kill(out, before)
                    return True
            elif tmp_number is None and time.monotonic() - start > after_s:
                before = _epoch(out)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                _check_after_kill(out, before)
                return True
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, err
    return False


def _check_after_kill(out: Path, before: int) -> None:
    """The checkpoint on disk is whole and at most the running epoch behind."""
    if (out / "last.json").exists():
        load_checkpoint(out, "last", with_state=True)  # raises on a torn file
        assert _epoch(out) >= before


def model_weights(out: Path, name: str) -> dict:
    return load_file(str(out / f"{name}.safetensors"))


def _assert_same(a: Path, b: Path) -> None:
    for name in ("last", "best"):
        wa, wb = model_weights(a, name), model_weights(b, name)
        assert wa.keys() == wb.keys()
        for key in wa:
            assert wa[key].dtype == wb[key].dtype
            assert (wa[key] == wb[key]).all(), (name, key)
    assert json.loads((a / "last.json").read_text())["epoch"] == _epoch(b)


def _crash_and_resume(cmd_for, out: Path) -> int:
    kills = 0
    # Killed during the 2nd checkpoint write; right after start-up; during the next write.
    plan = [(2, 0.0), (None, 1.0), (1, 0.0)]
    for number, after in plan:
        # --resume from any state, as a user would: before the first checkpoint is complete
        # (a kill inside its write leaves tensors without last.json) it starts afresh.
        cmd = cmd_for(out) + (["--resume"] if _resumable(out) else [])
        kills += _run_until(cmd, out, tmp_number=number, after_s=after)
    resume = ["--resume"] if _resumable(out) else []
    _run_until([*cmd_for(out), *resume], out, tmp_number=None, after_s=1e9)
    return kills


def _resumable(out: Path) -> bool:
    return out.exists()


def _assert_corrupt_resume_refused(cmd_for, done: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(done, broken)
    data = (broken / "last.safetensors").read_bytes()
    (broken / "last.safetensors").write_bytes(data[: len(data) // 3])
    res = subprocess.run([*cmd_for(broken), "--resume"], env=ENV, capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ssgan: error:") and "last.safetensors" in last
    assert "truncated or corrupted" in last
    assert (broken / "last.safetensors").stat().st_size == len(data) // 3  # nothing rewritten


def test_victim_training_survives_sigkill(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data")
    ref = tmp_path / "ref"
    _run_until(_victim_cmd(root, ref), ref, tmp_number=None, after_s=1e9)
    out = tmp_path / "crashed"
    kills = _crash_and_resume(lambda o: _victim_cmd(root, o), out)
    assert kills >= 2
    _assert_same(out, ref)
    _assert_corrupt_resume_refused(lambda o: _victim_cmd(root, o), ref, tmp_path)


def test_gan_training_survives_sigkill(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data")
    victim = make_victim_run(tmp_path / "victim")
    ref = tmp_path / "ref"
    _run_until(_gan_cmd(root, victim, ref), ref, tmp_number=None, after_s=1e9)
    out = tmp_path / "crashed"
    kills = _crash_and_resume(lambda o: _gan_cmd(root, victim, o), out)
    assert kills >= 2
    _assert_same(out, ref)
    _assert_corrupt_resume_refused(lambda o: _gan_cmd(root, victim, o), ref, tmp_path)
