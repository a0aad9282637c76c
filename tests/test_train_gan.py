"""SSGAN training: D / G steps, victim freezing, checkpoints and exact resume (ssgan.training.gan)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import TinyVictim, synth_batch
from helpers import TINY_GAN
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.errors import CheckpointError, OutputError
from ssgan.gan_validation import validate_generator
from ssgan.training.gan import PROFILES, GANTrainConfig, d_step, g_step, make_state, train_gan


def _data(n: int, seed: int) -> tuple[list[torch.Tensor], list[int]]:
    x, y = synth_batch(n, 4000, seed=seed)
    return list(x), y.tolist()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def _victim_in_train_mode() -> tuple[TinyVictim, list[bool]]:
    """An untrained TinyVictim left in *train* mode with trainable weights, recording the mode
    it is called in: g_step must switch it to eval, freeze it and restore both afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        victim = TinyVictim()
    victim.train()
    modes: list[bool] = []
    victim.register_forward_pre_hook(lambda m, _: modes.append(m.training))
    return victim, modes


def test_d_step_changes_only_d() -> None:
    state = make_state(TINY_GAN)
    g0, d0 = _snapshot(state.G), _snapshot(state.D)
    x = torch.stack(_data(4, 0)[0])[:, :800]
    losses = d_step(state, x)
    assert set(losses) == {"d/loss", "d/real", "d/fake"}
    assert all(math.isfinite(v) for v in losses.values())
    assert _changed(d0, state.D)
    assert not _changed(g0, state.G)


def test_g_step_changes_only_g_and_never_the_victim() -> None:
    state = make_state(TINY_GAN)
    victim, modes = _victim_in_train_mode()
    g0, d0, v0 = _snapshot(state.G), _snapshot(state.D), _snapshot(victim)
    clips, labels = _data(4, 1)
    x = torch.stack(clips)[:, :800]
    losses = g_step(state, x, torch.tensor(labels), victim)
    assert {"g/loss", "g/fool", "g/adv", "g/pert", "g/fooled"} <= set(losses)
    assert _changed(g0, state.G)
    assert not _changed(d0, state.D)
    assert not _changed(v0, victim)  # BatchNorm running stats too: it ran in eval mode
    assert modes == [False]
    assert victim.training  # restored
    assert all(p.requires_grad for p in victim.parameters())  # restored
    assert all(p.grad is None for p in victim.parameters())  # received no gradient
    assert all(p.grad is None for p in state.D.parameters())


def test_config_validation_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"flip_prob=1\.5"):
        GANTrainConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="batch_size=0"):
        GANTrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="real_label_min"):
        GANTrainConfig(real_label_min=0.95, real_label_max=0.9)
    assert PROFILES["paper"].epochs == 150 and PROFILES["paper"].lr == 1e-4
    assert PROFILES["paper"].batch_size == 16 and PROFILES["paper"].lr_halve_every == 10


def _train(tmp_path, name: str, config: GANTrainConfig, *, resume: bool = False) -> dict:
    victim, _ = _victim_in_train_mode()
    victim.eval()
    return train_gan(
        config, victim, _data(8, 2), _data(4, 3), tmp_path / name, resume=resume, progress=False,
        validate=validate_generator,
    )  # fmt: skip


def test_stop_and_resume_equals_uninterrupted(tmp_path) -> None:
    full = _train(tmp_path, "full", TINY_GAN)
    _train(tmp_path, "split", dataclasses.replace(TINY_GAN, epochs=1))
    resumed = _train(tmp_path, "split", TINY_GAN, resume=True)
    assert full["epochs"] == resumed["epochs"] == 2
    a = load_file(str(tmp_path / "full" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "last.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [
        [json.loads(s) for s in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("full", "split")
    ]
    for la, lb in zip(*lines, strict=True):
        la.pop("epoch_s"), lb.pop("epoch_s")
        assert la == lb
    assert [m["epoch"] for m in lines[1]] == [1, 2]


def test_run_directory_refuses_reuse_and_config_changes(tmp_path) -> None:
    one = dataclasses.replace(TINY_GAN, epochs=1)
    _train(tmp_path, "run", one)
    with pytest.raises(OutputError, match="already holds"):
        _train(tmp_path, "run", one)
    with pytest.raises(CheckpointError, match="margin"):
        _train(tmp_path, "run", dataclasses.replace(one, epochs=2, margin=3.0), resume=True)
    # nothing to resume (new directory, or killed before the first checkpoint): start fresh
    _train(tmp_path, "missing", one, resume=True)
    assert (tmp_path / "missing" / "last.json").is_file()
    # a first checkpoint killed mid-write (tensors, no last.json: uncommitted) starts afresh
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "last.safetensors").write_bytes(b"x")
    _train(tmp_path, "unfinished", one, resume=True)
    assert json.loads((tmp_path / "unfinished" / "last.json").read_text())["epoch"] == 1


def test_checkpoint_round_trip_gives_identical_perturbations(tmp_path) -> None:
    summary = _train(tmp_path, "run", dataclasses.replace(TINY_GAN, epochs=1))
    assert set(summary["last"]) >= {"val/asr", "val/msnr_db", "val/acc", "g/loss", "d/loss"}
    meta = json.loads((tmp_path / "run" / "best.json").read_text())
    assert meta["kind"] == "ssgan-gan" and meta["segment_seconds"] == TINY_GAN.segment_seconds
    state = make_state(TINY_GAN)
    tensors = load_file(str(tmp_path / "run" / "best.safetensors"))
    state.G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
    attack = SSGANAttack.from_run(tmp_path / "run")
    x = torch.stack(_data(2, 9)[0])
    expected = SSGANAttack.from_generator(state.G, segment_seconds=TINY_GAN.segment_seconds)
    assert torch.equal(attack.perturbation(x), expected.perturbation(x))


def test_training_victim_scores_fewer_crops_with_shared_weights() -> None:
    from ssgan.models.victim import ClipClassifier
    from ssgan.training.gan import GANTrainConfig, training_victim

    net = torch.nn.Sequential(torch.nn.Linear(400, 3))
    victim = ClipClassifier(net, window=400, n_crops=10)
    view = training_victim(victim, 3)
    assert isinstance(view, ClipClassifier) and view.n_crops == 3 and view.net is net
    assert training_victim(victim, None) is victim
    x = torch.randn(2, 1000)
    assert view(x).shape == victim(x).shape == (2, 3)
    with pytest.raises(ValueError, match="victim_crops=0"):
        GANTrainConfig(victim_crops=0)


def test_snr_curriculum_trains_louder_first_and_validates_at_the_target(
    tmp_path, monkeypatch
) -> None:
    import ssgan.training.gan as gan_module

    config = dataclasses.replace(
        TINY_GAN, epochs=4, g_output="snr", snr_db=30.0, snr_start_db=20.0, snr_ramp_epochs=2,
        gamma=0.0, beta=0.0,
    )  # fmt: skip
    assert [config.training_snr_db(e) for e in range(4)] == [20.0, 25.0, 30.0, 30.0]
    seen: list[float] = []
    real_g_step = gan_module.g_step

    def recording_g_step(state, *args, **kwargs):
        seen.append(state.G.snr_db)
        return real_g_step(state, *args, **kwargs)

    monkeypatch.setattr(gan_module, "g_step", recording_g_step)
    torch.manual_seed(0)
    _train(tmp_path, "ramp", config)
    assert seen == [20.0, 20.0, 25.0, 25.0, 30.0, 30.0, 30.0, 30.0]
    metrics = [json.loads(line) for line in (tmp_path / "ramp" / "metrics.jsonl").open()]
    assert len(metrics) == 4
    assert all(m["val/snr_db"] == pytest.approx(30.0, abs=0.05) for m in metrics)
    assert SSGANAttack.from_run(tmp_path / "ramp", checkpoint="last").generator.snr_db == 30.0
    with pytest.raises(ValueError, match=r"snr_start_db=20\.0 needs"):
        GANTrainConfig(snr_start_db=20.0)  # the paper's tanh output
    with pytest.raises(ValueError, match="snr_ramp_epochs"):
        GANTrainConfig(g_output="snr", snr_start_db=20.0)


def test_a_diverged_training_stops_before_its_checkpoint(tmp_path) -> None:
    """A victim with NaN weights makes every G loss NaN: the training stops at the end of its
    first epoch with a clear error, and writes no checkpoint of the NaN generator."""
    from ssgan.errors import TrainingDivergedError

    torch.manual_seed(0)
    victim = TinyVictim()
    with torch.no_grad():
        next(victim.parameters()).fill_(math.nan)
    clips, labels = _data(8, 0)
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1"):
        train_gan(TINY_GAN, victim, (clips, labels), (clips[:4], labels[:4]), tmp_path / "g",
                  progress=False, validate=validate_generator)  # fmt: skip
    assert not (tmp_path / "g" / "last.json").exists()


def test_validation_clips_without_a_validator_are_refused(tmp_path) -> None:
    """The loop takes its validation as a callable (``ssgan.gan_validation``): held-out clips
    without one would be silently ignored and ``best`` chosen blind, so they are refused before
    the run directory is touched."""
    victim, _ = _victim_in_train_mode()
    with pytest.raises(ValueError, match="validate="):
        train_gan(TINY_GAN, victim.eval(), _data(8, 2), _data(4, 3), tmp_path / "g", progress=False)
    assert not (tmp_path / "g").exists()
