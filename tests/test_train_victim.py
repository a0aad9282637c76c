"""Victim training: loss goes down, exact resume, checkpoints reload, clear errors."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import TINY_VICTIM, victim_data
from ssgan.errors import CheckpointError, OutputError
from ssgan.models.envnet import ENVNET_MIN_WINDOW
from ssgan.models.victim import load_victim, predict_clips
from ssgan.training.victim import (
    PROFILES,
    VictimTrainConfig,
    epoch_batches,
    get_profile,
    lr_at,
    make_batch,
    time_stretch,
    train_victim,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("victim") / "run"
    train, test = victim_data()
    train_victim(TINY_VICTIM, train, test, out, progress=False, dataset_info={"dataset": "synth"})
    return out


def test_run_directory_layout_and_metrics(run_dir: Path) -> None:
    for name in ("config.json", "metrics.jsonl", "last.json", "last.safetensors", "best.json"):
        assert (run_dir / name).is_file(), name
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert set(lines[0]) >= {"epoch", "loss", "train_acc", "test_acc", "lr", "seconds"}
    meta = json.loads((run_dir / "last.json").read_text())
    assert meta["class_names"] == ["a", "b", "c", "d"]
    assert meta["sample_rate"] == 16_000
    assert meta["window"] == ENVNET_MIN_WINDOW
    assert meta["dataset"] == "synth"
    assert meta["seed"] == 3
    assert json.loads((run_dir / "config.json").read_text())["fc_width"] == 32


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    train, test = victim_data()
    cfg = dataclasses.replace(TINY_VICTIM, epochs=8, eval_every=100, lr_milestones=(0.9,))
    train_victim(cfg, train, test, tmp_path / "r", progress=False)
    losses = [json.loads(s)["loss"] for s in (tmp_path / "r" / "metrics.jsonl").open()]
    assert min(losses[-3:]) < losses[0] * 0.85


def test_reload_reproduces_the_recorded_accuracy(run_dir: Path) -> None:
    clf, meta = load_victim(run_dir, checkpoint="best")
    assert not clf.training
    assert all(not p.requires_grad for p in clf.parameters())
    _, test = victim_data()
    pred, _ = predict_clips(clf, test.waveforms())
    assert float((pred == test.y).float().mean()) == pytest.approx(meta["accuracy"])
    again, _ = load_victim(run_dir, checkpoint="best")
    x = test.x[:3]
    with torch.no_grad():
        assert torch.equal(clf(x), again(x))


def test_resume_equals_the_uninterrupted_run(run_dir: Path, tmp_path: Path) -> None:
    train, test = victim_data()
    out = tmp_path / "r"
    first = train_victim(TINY_VICTIM, train, test, out, progress=False, stop_after_epoch=1)
    assert first["epochs_done"] == 1
    train_victim(TINY_VICTIM, train, test, out, resume=True, progress=False)
    a = load_file(str(run_dir / "last.safetensors"))
    b = load_file(str(out / "last.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_refuses_a_non_empty_run_dir_without_resume(run_dir: Path) -> None:
    train, test = victim_data()
    with pytest.raises(OutputError, match="not empty"):
        train_victim(TINY_VICTIM, train, test, run_dir, progress=False)


def test_resume_with_another_config_is_refused(run_dir: Path) -> None:
    train, test = victim_data()
    with pytest.raises(CheckpointError, match=r"lr: run has 0\.05, now 0\.1"):
        train_victim(dataclasses.replace(TINY_VICTIM, lr=0.1), train, test, run_dir, resume=True)


def test_truncated_weights_give_a_clear_error(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    data = (broken / "best.safetensors").read_bytes()
    (broken / "best.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_victim(broken, checkpoint="best")


def test_missing_checkpoint_and_wrong_model(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_victim(tmp_path / "absent")
    wrong = tmp_path / "wrong"
    shutil.copytree(run_dir, wrong)
    meta = json.loads((wrong / "best.json").read_text())
    meta["model"]["name"] = "envnetv2"
    meta["model"]["window"] = 24_180
    (wrong / "best.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit model 'envnetv2'"):
        load_victim(wrong, checkpoint="best")
    meta["model"]["name"] = "vgg"
    (wrong / "best.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown model 'vgg'"):
        load_victim(wrong, checkpoint="best")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 1}, "batch_size=1"),
        ({"lr": 0.0}, "lr=0.0"),
        ({"model": "vgg"}, "model='vgg'"),
        ({"lr_milestones": (0.75, 0.5)}, r"lr_milestones=\(0.75, 0.5\)"),
        ({"time_stretch": 0.5}, "time_stretch=0.5"),
        ({"warmup_epochs": 2}, "warmup_epochs=2"),
    ],
)
def test_bad_options(change: dict, message: str, tmp_path: Path) -> None:
    train, test = victim_data()
    with pytest.raises(ValueError, match=message):
        train_victim(
            dataclasses.replace(TINY_VICTIM, **change), train, test, tmp_path, progress=False
        )
    assert not any(tmp_path.iterdir())  # nothing written


def test_lr_schedule_is_the_official_one() -> None:
    cfg = VictimTrainConfig(epochs=100, lr=0.01)
    assert [lr_at(cfg, e) for e in (1, 50, 51, 75, 76, 100)] == pytest.approx(
        [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001]
    )
    v2 = get_profile("paper", "envnetv2")
    assert (v2.lr, v2.lr_milestones, v2.warmup_epochs) == (0.1, (0.3, 0.6, 0.9), 10)
    assert lr_at(v2, 10) == pytest.approx(0.01)
    assert lr_at(v2, 11) == pytest.approx(0.1)
    paper = PROFILES["paper"]
    assert (paper.batch_size, paper.momentum, paper.weight_decay, paper.nesterov) == (
        64,
        0.9,
        5e-4,
        True,
    )


def test_epoch_batches_cover_each_clip_once_and_drop_a_single_clip_batch() -> None:
    batches = epoch_batches(21, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4] * 5  # the 21st clip alone would be a batch of 1
    seen = torch.cat(batches).tolist()
    assert len(set(seen)) == 20 and set(seen) <= set(range(21))
    again = epoch_batches(21, 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))


def test_make_batch_is_seeded_and_window_long() -> None:
    clips = [torch.randn(3000), torch.randn(100)]
    a = make_batch(clips, 1000, torch.Generator().manual_seed(0), gain_db=6, stretch=1.25)
    b = make_batch(clips, 1000, torch.Generator().manual_seed(0), gain_db=6, stretch=1.25)
    assert a.shape == (2, 1000)
    assert torch.equal(a, b)
    assert time_stretch(torch.arange(10.0), 2.0).shape == (20,)
    torch.testing.assert_close(time_stretch(torch.arange(10.0), 1.0), torch.arange(10.0))


def test_a_diverged_training_stops_before_its_checkpoint(tmp_path: Path) -> None:
    """A learning rate that blows the weights up ends the run with a clear error at the end of
    the epoch, before a checkpoint of the NaN network is written."""
    from ssgan.errors import TrainingDivergedError

    train, test = victim_data()
    cfg = dataclasses.replace(TINY_VICTIM, lr=1e30, bf16=False)
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 1 .*--set lr="):
        train_victim(cfg, train, test, tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "last.json").exists()


def test_non_finite_weights_are_refused_at_load(run_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bad = tmp_path / "nan"
    shutil.copytree(run_dir, bad)
    tensors = load_file(str(bad / "last.safetensors"))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name][0] = math.nan
    save_file(tensors, str(bad / "last.safetensors"))
    with pytest.raises(CheckpointError, match=r"last\.safetensors: non-finite weights in 1 "):
        load_victim(bad)
    load_victim(run_dir)  # the untouched run still loads


def test_an_epoch_ends_with_its_metrics_line_before_its_checkpoint(tmp_path: Path) -> None:
    """Both training loops end an epoch through ``close_epoch``: the metrics line first, then the
    checkpoint (a crash between leaves a line the resume trims, never a checkpointed epoch
    without its line); no checkpoint and no stream gathering when none is due."""
    import json

    from ssgan.training.loop import close_epoch

    lines_at_save: list[list[dict[str, float]]] = []

    def save_last(streams: dict[str, int]) -> None:
        assert streams == {"rank0": 7}
        text = (tmp_path / "metrics.jsonl").read_text(encoding="utf-8")
        lines_at_save.append([json.loads(line) for line in text.splitlines()])

    def must_not_run(*_: object) -> dict[str, int]:
        raise AssertionError("called although no checkpoint is due")

    close_epoch(tmp_path, {"epoch": 1, "loss": 0.5}, checkpoint_due=True,
                gather_streams=lambda: {"rank0": 7}, save_last=save_last)  # fmt: skip
    assert lines_at_save == [[{"epoch": 1, "loss": 0.5}]]
    close_epoch(tmp_path, {"epoch": 2, "loss": float("nan")}, checkpoint_due=False,
                gather_streams=must_not_run, save_last=must_not_run)  # fmt: skip
    rows = (tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]
    assert json.loads(rows[1])["loss"] is None  # strict JSON: NaN written as null
