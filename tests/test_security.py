"""Loading cannot run code; checkpoints are atomic; a corrupt checkpoint is a clear error."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from ssgan.errors import CheckpointError
from ssgan.io import load_checkpoint, save_checkpoint

MARKER_NAME = "PWNED"


class _Exploit:
    """Unpickling this calls os.system-like code: it would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(path: Path, marker: Path) -> None:
    with open(path, "wb") as fh:
        pickle.dump({"optimizer": _Exploit(marker)}, fh)


def test_malicious_training_state_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_checkpoint(run, "last", {"w": torch.zeros(3)}, {"kind": "x"}, state={"epoch": 1})
    marker = tmp_path / MARKER_NAME
    # sanity: the exploit really does run when unpickled unsafely
    probe = tmp_path / "probe.pkl"
    _plant(probe, tmp_path / "probe-ran")
    with open(probe, "rb") as fh:
        pickle.load(fh)
    assert (tmp_path / "probe-ran").exists()

    _plant(run / "last.state.pt", marker)
    with pytest.raises(CheckpointError, match=r"last\.state\.pt: refused or corrupted"):
        load_checkpoint(run, "last", with_state=True)
    assert not marker.exists()


def test_malicious_pickle_in_victim_run_is_never_loaded(tmp_path: Path) -> None:
    from ssgan.models.envnet import EnvNet
    from ssgan.models.victim import load_victim
    from ssgan.training.victim import VictimTrainConfig, train_victim

    class Tiny:
        class_names = ("a", "b")

        def __init__(self, seed: int) -> None:
            g = torch.Generator().manual_seed(seed)
            self._x = [torch.randn(6000, generator=g).clamp(-1, 1) for _ in range(4)]

        def waveforms(self):
            return self._x

        def labels(self):
            return [0, 1, 0, 1]

    assert EnvNet  # the real model class is what the run holds
    config = VictimTrainConfig(epochs=1, batch_size=2, fc_width=16, eval_every=1)
    run = tmp_path / "victim"
    train_victim(config, Tiny(0), Tiny(1), run, progress=False)
    marker = tmp_path / MARKER_NAME
    for name in ("best.state.pt", "last.state.pt", "model.pt", "best.pt"):
        _plant(run / name, marker)
    _model, meta = load_victim(run)
    assert list(meta["class_names"]) == ["a", "b"]
    assert not marker.exists()
    # resuming reads last.state.pt: it must be refused, not executed
    from ssgan.training.victim import train_victim as tv

    with pytest.raises(CheckpointError):
        tv(
            config.__class__(epochs=2, batch_size=2, fc_width=16, eval_every=1),
            Tiny(0),
            Tiny(1),
            run,
            resume=True,
            progress=False,
        )
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_corrupted_checkpoint_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "run"
    save_checkpoint(run, "last", {"w": torch.arange(1000.0)}, {"kind": "x"}, state={"e": 1})
    weights = run / "last.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:200])
    elif damage == "garbage":
        weights.write_bytes(os.urandom(4096))
    else:
        weights.unlink()
    with pytest.raises(CheckpointError, match=r"last\.safetensors"):
        load_checkpoint(run, "last")


def test_checkpoint_writes_leave_no_temp_files_and_readable_modes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_checkpoint(run, "a", {"w": torch.ones(2)}, {"k": 1}, state={"s": torch.ones(1)})
    names = sorted(p.name for p in run.iterdir())
    assert names == ["a.json", "a.safetensors", "a.state.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert (run / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    tensors, meta, state = load_checkpoint(run, "a", with_state=True)
    assert meta == {"k": 1} and torch.equal(tensors["w"], torch.ones(2))
    assert state is not None and torch.equal(state["s"], torch.ones(1))
