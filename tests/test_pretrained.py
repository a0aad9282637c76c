"""The weights shipped in the package (``ssgan.pretrained``) and the demo built on them.

Layers: pretrained (bottom), models, attacks, evaluation, demo (reproduction), CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssgan import pretrained
from ssgan.attacks.noise import GaussianNoise
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.cli import main
from ssgan.data import bundled_root, load_dataset
from ssgan.data.splits import make_split
from ssgan.errors import CheckpointError
from ssgan.metrics import snr_db
from ssgan.models.victim import load_victim

VICTIM = "pretrained:esc10-logmel"
GENERATOR = "pretrained:esc10-logmel-ssgan"


def test_the_shipped_runs_are_listed_small_and_documented() -> None:
    assert {"esc10-logmel", "esc10-logmel-ssgan"} <= set(pretrained.available())
    total = 0
    for name in ("esc10-logmel", "esc10-logmel-ssgan"):
        folder = pretrained.resolve_run(pretrained.PREFIX + name)
        total += sum(f.stat().st_size for f in folder.iterdir())
        prov = pretrained.provenance(name)
        for key in ("built_by", "commit", "data", "data_licence", "commands"):
            assert prov.get(key), (name, key)
        assert "CC BY-NC" in prov["data_licence"]
        assert all(step.startswith("ssgan ") for step in prov["commands"])
        assert prov["training_seconds"] > 0
    assert total < 8 << 20  # the package stays small


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(CheckpointError, match="esc10-logmel") as info:
        pretrained.resolve_run("pretrained:nope")
    assert "pretrained:nope" in str(info.value)
    assert pretrained.resolve_run("runs/x") == Path("runs/x")


@pytest.fixture(scope="module")
def bundled():
    dataset = load_dataset("esc10", bundled_root())
    return dataset, *make_split(dataset, "fold:5")


def test_the_shipped_victim_classifies_the_bundled_clips(bundled) -> None:
    dataset, train, _ = bundled
    victim, meta = load_victim(VICTIM)
    assert meta["class_names"] == list(dataset.class_names)
    assert not any(p.requires_grad for p in victim.parameters())
    x = torch.stack([torch.as_tensor(w) for w in train.waveforms()])
    right = (victim(x).argmax(1) == torch.tensor(train.labels())).float().mean()
    assert right >= 0.7  # clips it trained on (folds 1-4 of ESC-10)


def test_the_shipped_generator_meets_its_budget_and_beats_noise_on_its_training_clips(
    bundled,
) -> None:
    """On clips the victim gets right, the shipped generator (query-free) flips more decisions
    than Gaussian noise scaled to the same SNR on each clip."""
    _, train, _ = bundled
    victim, _ = load_victim(VICTIM)
    attack = SSGANAttack.from_run(GENERATOR, checkpoint="best")
    assert attack.snr_convention == "true"
    x = torch.stack([torch.as_tensor(w) for w in train.waveforms()])
    y = torch.tensor(train.labels())
    keep = victim(x).argmax(1) == y
    x, y = x[keep], y[keep]
    g = torch.Generator().manual_seed(0)
    x_g = attack(victim, x, y, generator=g)
    x_n = GaussianNoise(snr_db=attack.snr_db)(victim, x, y, generator=g)
    # Each whole t1 segment carries a perturbation exactly snr_db below it (the last, partial
    # segment is cut from a full one, and the clip's SNR weighs segments by their loudness).
    delta = attack.perturbation(x)
    n = attack.segment_samples
    for k in range(x.shape[1] // n):
        seg = x[:, k * n : (k + 1) * n]
        snrs = snr_db(seg, seg + delta[:, k * n : (k + 1) * n])
        silent = seg.abs().amax(1) == 0  # a silent segment gets no perturbation at all
        assert torch.equal(torch.isinf(snrs), silent)
        assert torch.allclose(
            snrs[~silent], torch.full_like(snrs[~silent], attack.snr_db), atol=0.01
        )
    assert torch.allclose(x_g, (x + delta).clamp(-1, 1))
    fooled_g = int((victim(x_g).argmax(1) != y).sum())
    fooled_n = int((victim(x_n).argmax(1) != y).sum())
    assert fooled_g >= fooled_n + 3, (fooled_g, fooled_n, len(y))


@pytest.mark.slow
def test_demo_attacks_with_the_shipped_weights_and_trains_a_fresh_generator(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--train-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    report = out / "ssgan_test" / "report.html"
    assert report.is_file() and f"report: {report.resolve()}" in printed
    for row in ("| SSGAN, shipped generator, query-free |", "| Gaussian noise |",
                "| PGD-L2, 10 steps |", "| SSGAN, fresh generator: 50 steps"):  # fmt: skip
        assert row in printed, row
    summary = {
        tag: json.loads((out / f"{tag}_train" / "summary.json").read_text())
        for tag in ("ssgan", "noise", "pgd")
    }
    assert summary["ssgan"]["asr"] > summary["noise"]["asr"]
    assert summary["pgd"]["asr"] >= summary["ssgan"]["asr"]
    assert (out / "fresh_generator" / "best.json").is_file()
    # A rerun finds every row written and redoes nothing.
    assert main(["demo", "--out", str(out), "--train-epochs", "1"]) == 0
    assert "0 to run" in capsys.readouterr().err
