"""Adversarial fine-tuning (ssgan.training.defence, ``ssgan train victim --adversarial``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TinyVictim, synth_batch
from helpers import TINY_GAN, TINY_VICTIM, victim_data
from ssgan.attacks.adversary import load_adversary
from ssgan.gan_validation import validate_generator
from ssgan.training.defence import Adversary, fine_tune_victim
from ssgan.training.gan import train_gan
from ssgan.training.victim import train_victim

ONE_EPOCH = dataclasses.replace(TINY_VICTIM, epochs=1)


class Shift:
    """A stand-in attack that adds 0.5 and remembers how it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, net, x, y, *, generator=None):
        self.calls.append((x.shape[0], net.training))
        return x + 0.5


def test_adversary_replaces_the_requested_share_of_the_batch() -> None:
    x, y = synth_batch(8, 100, seed=0)
    attack = Shift()
    mixed = Adversary(attack, fraction=0.25)(TinyVictim(), x, y, torch.Generator().manual_seed(0))
    changed = (mixed != x).any(dim=1)
    assert int(changed.sum()) == 2 and attack.calls[0][0] == 2
    torch.testing.assert_close(mixed[changed], x[changed] + 0.5)
    again = Adversary(Shift(), fraction=0.25)(TinyVictim(), x, y, torch.Generator().manual_seed(0))
    assert torch.equal(mixed, again)
    with pytest.raises(ValueError, match="fraction=0"):
        Adversary(attack, fraction=0.0)


def test_adversary_attacks_loud_crops_at_peak_one() -> None:
    """The trainer's random gain lifts crops above 1; attacks only take [-1, 1]."""
    x, y = synth_batch(4, 100, seed=0)
    seen: list[float] = []

    def attack(net, x, y, *, generator=None):
        seen.append(float(x.abs().max()))
        return x * 0.5

    mixed = Adversary(attack, fraction=1.0)(TinyVictim(), 2 * x, y, torch.Generator())
    assert seen == [pytest.approx(1.0)]
    torch.testing.assert_close(mixed, x)  # scaled back: 2 x * 0.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny victim run and a tiny SSGAN run (against another tiny victim: any generator will
    do as a fixed adversary)."""
    root = tmp_path_factory.mktemp("defence")
    train, test = victim_data()
    train_victim(ONE_EPOCH, train, test, root / "victim", progress=False)
    x, y = synth_batch(8, 4000, seed=5)
    gan = dataclasses.replace(TINY_GAN, epochs=1)
    train_gan(gan, TinyVictim(), (list(x), y.tolist()), (list(x[:4]), y[:4].tolist()),
              root / "gan", progress=False, validate=validate_generator)  # fmt: skip
    return root / "victim", root / "gan"


def test_generator_defence_updates_only_the_victim(runs: tuple[Path, Path], tmp_path) -> None:
    victim_dir, gan_dir = runs
    adversary = load_adversary(str(gan_dir), fraction=0.5)
    G = adversary.attack.generator
    g_before = {k: v.clone() for k, v in G.state_dict().items()}
    spy = Shift()
    real = adversary.attack

    def spying(net, x, y, *, generator=None):
        spy(net, x, y)
        return real(net, x, y, generator=generator)

    adversary.attack = spying
    train, test = victim_data()
    fine_tune_victim(ONE_EPOCH, train, test, tmp_path / "defended", adversary,
                     init_from=victim_dir, progress=False)  # fmt: skip
    # The generator is untouched and frozen; the victim moved away from its starting weights.
    assert all(torch.equal(g_before[k], v) for k, v in G.state_dict().items())
    assert not any(p.requires_grad for p in G.parameters())
    start = load_file(victim_dir / "last.safetensors")
    tuned = load_file(tmp_path / "defended" / "last.safetensors")
    moved = [k for k in start if not torch.equal(start[k], tuned[k])]
    assert any(k.endswith("weight") for k in moved)
    # Every batch (16 clips / 8 = 2 a epoch) had half its crops attacked by the training net,
    # which was in train mode again for its step (restored by the attack's bookkeeping).
    assert spy.calls == [(4, True), (4, True)]
    record = json.loads((tmp_path / "defended" / "adversarial.json").read_text())
    assert record["adversarial"] == str(gan_dir) and record["init_from"] == str(victim_dir)


def test_fine_tuning_starts_from_the_given_weights(runs: tuple[Path, Path], tmp_path) -> None:
    """With a learning rate of ~0 the fine-tuned weights are the initial ones."""
    victim_dir, _ = runs
    frozen = dataclasses.replace(ONE_EPOCH, lr=1e-12, weight_decay=0.0, momentum=0.0,
                                 nesterov=False)  # fmt: skip
    train, test = victim_data()
    fine_tune_victim(frozen, train, test, tmp_path / "ft", Adversary(Shift()),
                     init_from=victim_dir, progress=False)  # fmt: skip
    start = load_file(victim_dir / "last.safetensors")
    tuned = load_file(tmp_path / "ft" / "last.safetensors")
    for k, v in start.items():
        if "running" not in k and "num_batches" not in k:  # BatchNorm statistics do move
            torch.testing.assert_close(tuned[k], v, rtol=0, atol=1e-6)


def test_load_adversary_names_bad_inputs(runs: tuple[Path, Path]) -> None:
    _, gan_dir = runs
    with pytest.raises(ValueError, match="not a generator run directory nor one of"):
        load_adversary("wobble")
    with pytest.raises(ValueError, match="learned attack"):
        load_adversary("uap-penalty")
    with pytest.raises(ValueError, match="for a named attack"):
        load_adversary(str(gan_dir), attack_args=["eps=1"])
    pgd = load_adversary("pgd", attack_args=["eps=0.01", "steps=1"], fraction=1.0)
    assert pgd.attack.config()["eps"] == 0.01


def test_cli_trains_against_pgd(tmp_path: Path, capsys) -> None:
    from ssgan.cli import main

    argv = ["train", "victim", "--dataset", "esc10", "--root", "bundled", "--split", "fold:5",
            "--profile", "smoke", "--set", "fc_width=32", "--set", f"window={TINY_VICTIM.window}",
            "--set", "epochs=1", "--set", "n_crops=2", "--out", str(tmp_path / "d"),
            "--adversarial", "pgd", "--set", "adversarial.steps=1"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((tmp_path / "d" / "adversarial.json").read_text())
    assert record["adversarial"] == "pgd" and record["attack_config"]["steps"] == 1
    assert main([*argv[:-4], "--adversarial", "wobble", "--out", str(tmp_path / "e")]) == 2
    assert "--adversarial: adversarial='wobble'" in capsys.readouterr().err


def test_cli_init_without_adversarial_fine_tunes_on_clean_crops(tmp_path: Path, capsys) -> None:
    """The control of adversarial fine-tuning: the same fine-tune with no adversarial crops."""
    from ssgan.cli import main

    base = ["train", "victim", "--dataset", "esc10", "--root", "bundled", "--split", "fold:5",
            "--profile", "smoke", "--set", "fc_width=32", "--set", f"window={TINY_VICTIM.window}",
            "--set", "epochs=1", "--set", "n_crops=2"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    frozen = ["--set", "lr=1e-12", "--set", "weight_decay=0", "--set", "momentum=0",
              "--set", "nesterov=false"]  # fmt: skip
    assert main([*base, *frozen, "--init", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 0
    start = load_file(tmp_path / "a" / "last.safetensors")
    tuned = load_file(tmp_path / "b" / "last.safetensors")
    for k, v in start.items():
        if "running" not in k and "num_batches" not in k:
            torch.testing.assert_close(tuned[k], v, rtol=0, atol=1e-6)
    record = json.loads((tmp_path / "b" / "adversarial.json").read_text())
    assert record == {"adversarial": None, "fraction": 0.0, "attack_config": {},
                      "init_from": str(tmp_path / "a")}  # fmt: skip
    argv = [*base, "--set", "adversarial.eps=1", "--out", str(tmp_path / "c")]
    assert main(argv) == 2
    assert "--set adversarial.KEY=VALUE needs --adversarial" in capsys.readouterr().err
