"""The two SNR conventions (docs/snr.md): the box SNR against [16]'s own formula, budgets set in
either convention (noise, FGM / PGD-L2 by SNR, DDN and the quietest-scale search, SSGAN's
pass-through), bad convention names, and both figures in records, summaries and reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers import FakeDataset
from ssgan.attacks import DDN, FGM, PGD, GaussianNoise, make_attack
from ssgan.attacks.budget import Budget
from ssgan.attacks.ddn import quietest_scale, refine_min_norm
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.cli import build_parser
from ssgan.cli.evaluate_attack import build_attack
from ssgan.evaluation import evaluate_attack, read_records
from ssgan.metrics import check_convention, snr_box_db, snr_db, snr_in
from ssgan.models.generators import build_generator
from ssgan.models.generators.spec import GeneratorSpec

SR = 16_000
TIME = 1600
CONVENTIONS = ("true", "box")
# A budget per convention that keeps x + delta far inside [-1, 1] (no clipping) for CLIPS.
BUDGET_DB = {"true": 20.0, "box": 35.7}


def clips(n: int = 4, seed: int = 0) -> torch.Tensor:
    """Tones of peak 0.3 plus a little noise: far from +-1, so nothing is clipped."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(TIME) / SR
    f0 = 300 + 2000 * torch.rand(n, 1, generator=g)
    x = 0.25 * torch.sin(2 * math.pi * f0 * t) + 0.02 * torch.randn(n, TIME, generator=g)
    return x.float()


class Linear(nn.Module):
    """A fixed linear victim: its input gradient is never zero, so every L2 step is taken."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(TIME, n_classes)
        with torch.no_grad():
            g = torch.Generator().manual_seed(1)
            self.fc.weight.copy_(torch.randn(n_classes, TIME, generator=g) / TIME**0.5)
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Stubborn(nn.Module):
    """Always class 0 whatever it hears, with a zero input gradient: never fooled on y = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = x.sum(dim=1) * 0.0 + self.w
        return torch.stack([zero + 1.0, zero, zero], dim=1)


# ----------------------------------------------------------------------------- (a) box formula


def uap_energy(v: np.ndarray, n: int) -> float:
    """[16]'s ``energy``: ``sqrt(sum(v^2) / n)`` with a fixed ``n`` (not the clip's length)."""
    return math.sqrt(float(np.sum(v.astype(np.float64) ** 2)) / n)


def uap_snr(x: np.ndarray, x_adv: np.ndarray, n: int = 16000) -> float:
    """[16]'s SNR (sajabdoli/UAP), transcribed: audio held in [0, 1], then eq. 10."""
    x01, xadv01 = (x + 1) / 2, (x_adv + 1) / 2
    return 20 * math.log10(uap_energy(x01, n) / uap_energy(xadv01 - x01, n))


def test_box_snr_is_the_formula_of_16s_code_whatever_its_fixed_n() -> None:
    x = clips(2)
    delta = 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    x_adv = x + delta
    got = snr_box_db(x, x_adv)
    for k in range(2):
        xk, ak = x[k].double().numpy(), x_adv[k].double().numpy()
        for n in (16000, TIME, 1):  # both energies share n: it cancels
            assert float(got[k]) == pytest.approx(uap_snr(xk, ak, n), abs=1e-9)
        # The box figure is not the true one: here ~13 dB above it.
        offset = 20 * math.log10(np.sqrt(np.mean((xk + 1) ** 2)) / np.sqrt(np.mean(xk**2)))
        assert float(got[k] - snr_db(x[k], x_adv[k])) == pytest.approx(offset, abs=1e-9)
        assert offset > 10


def test_box_snr_by_hand() -> None:
    x = torch.zeros(1000, dtype=torch.float64)  # rms(x + 1) = 1
    x_adv = torch.full((1000,), 0.01, dtype=torch.float64)  # rms(delta) = 0.01
    assert float(snr_box_db(x, x_adv)) == pytest.approx(40.0, abs=1e-9)
    assert float(snr_db(x, x_adv)) == -math.inf  # silence: no true SNR to speak of
    assert float(snr_in("box", x, x_adv)) == pytest.approx(40.0, abs=1e-9)
    assert float(snr_box_db(x, x)) == math.inf


# ----------------------------------------------------------------------------- (b) budgets


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_noise_lands_exactly_at_the_snr_of_its_convention(convention: str) -> None:
    x, y = clips(), torch.zeros(4, dtype=torch.long)
    snr = BUDGET_DB[convention]
    attack = GaussianNoise(snr_db=snr, snr_convention=convention)
    x_adv = attack(Linear(), x, y)
    assert float(x_adv.abs().max()) < 1.0  # nothing clipped
    assert torch.allclose(snr_in(convention, x, x_adv), torch.full((4,), snr).double(), atol=1e-4)
    other = "box" if convention == "true" else "true"
    assert (snr_in(other, x, x_adv) - snr).abs().min() > 1.0  # the conventions differ here
    assert attack.config()["snr_convention"] == convention


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("name", ["fgm", "pgd"])
def test_fgm_and_pgd_l2_by_snr_saturate_the_ball_of_their_convention(name, convention) -> None:
    x, y = clips(), torch.tensor([0, 1, 2, 0])
    snr = BUDGET_DB[convention]
    attack = (
        FGM(snr_db=snr, snr_convention=convention)
        if name == "fgm"
        else PGD(norm="l2", snr_db=snr, snr_convention=convention, steps=5)
    )
    x_adv = attack(Linear(), x, y, generator=torch.Generator().manual_seed(0))
    assert float(x_adv.abs().max()) < 1.0
    got = snr_in(convention, x, x_adv)
    assert bool((got >= snr - 1e-4).all()), got  # never louder than the budget
    assert torch.allclose(got, torch.full((4,), snr).double(), atol=0.01), got  # on its sphere
    budget = attack.budget()
    assert budget.snr_db == snr and budget.snr_convention == convention


def test_fgm_is_one_step_along_the_gradient() -> None:
    x, y = clips(2), torch.tensor([0, 1])
    model = Linear()
    x_var = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(
        nn.functional.cross_entropy(model(x_var), y, reduction="sum"), x_var
    )
    step = FGM(eps=0.2)(model, x, y) - x
    want = 0.2 * grad / grad.norm(dim=1, keepdim=True)
    assert torch.allclose(step, want, atol=1e-5)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_quietest_scale_and_refine_keep_the_loudest_snr_of_their_convention(convention) -> None:
    # A victim never fooled: the search keeps the loudest scale it may use, min_snr_db.
    x, y = clips(), torch.zeros(4, dtype=torch.long)
    loudest = BUDGET_DB[convention]
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    delta = quietest_scale(
        Stubborn(), x, y, None, direction, min_snr_db=loudest, max_snr_db=loudest + 30,
        snr_convention=convention,
    )  # fmt: skip
    assert torch.allclose(snr_in(convention, x, x + delta), torch.full((4,), loudest).double(),
                          atol=1e-3)  # fmt: skip
    delta = refine_min_norm(
        Stubborn(), x, y, None, torch.zeros_like(x), steps=8, init_snr_db=loudest + 2,
        min_snr_db=loudest, snr_convention=convention,
    )  # fmt: skip
    got = snr_in(convention, x, x + delta)
    assert torch.allclose(got, torch.full((4,), loudest).double(), atol=1e-3), got
    x_adv = DDN(steps=8, init_snr_db=loudest + 2, min_snr_db=loudest, snr_convention=convention)(
        Stubborn(), x, y
    )
    assert bool((snr_in(convention, x, x_adv) >= loudest - 1e-3).all())


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_ssgan_passes_its_convention_to_the_quietest_search(convention: str) -> None:
    g = build_generator(
        GeneratorSpec(channels=4, n_blocks=1, output="snr", snr_db=50.0, snr_convention=convention)
    )
    attack = SSGANAttack.from_generator(
        g.eval(), segment_seconds=100 / SR, quietest=True, search_min_snr_db=BUDGET_DB[convention]
    )
    assert attack.snr_convention == convention
    x, y = clips(), torch.zeros(4, dtype=torch.long)
    x_adv = attack(Stubborn(), x, y)
    want = torch.full((4,), BUDGET_DB[convention]).double()
    assert torch.allclose(snr_in(convention, x, x_adv), want, atol=1e-3)


def test_cli_settings_reach_pgd_by_snr() -> None:
    argv = ["evaluate", "attack", "--attack", "pgd", "--set", "attack.norm=l2",
            "--set", "attack.snr_db=35.7", "--set", "attack.snr_convention=box",
            "--victim", "v", "--dataset", "esc10", "--root", "bundled", "--out", "o"]  # fmt: skip
    attack = build_attack(build_parser().parse_args(argv))
    assert isinstance(attack, PGD)
    assert (attack.norm, attack.snr_db, attack.snr_convention) == ("l2", 35.7, "box")
    assert attack.config()["snr_convention"] == "box"
    fgm = make_attack("fgm", ["snr_db=30", "snr_convention=box"])
    assert isinstance(fgm, FGM) and fgm.config()["snr_db"] == 30.0


# ----------------------------------------------------------------------------- (c) bad names


@pytest.mark.parametrize(
    "build",
    [
        lambda: check_convention("Box"),
        lambda: GaussianNoise(snr_convention="Box"),
        lambda: PGD(norm="l2", snr_db=30.0, snr_convention="Box"),
        lambda: FGM(snr_db=30.0, snr_convention="Box"),
        lambda: DDN(snr_convention="Box"),
        lambda: Budget("l2", math.inf, snr_db=30.0, snr_convention="Box"),
        lambda: make_attack("noise", ["snr_convention=Box"]),
        lambda: quietest_scale(
            Stubborn(),
            clips(1),
            torch.zeros(1, dtype=torch.long),
            None,
            clips(1),
            snr_convention="Box",
        ),
    ],
)
def test_a_bad_convention_is_a_value_error_naming_it(build) -> None:
    with pytest.raises(ValueError, match="'Box'"):
        build()


def test_an_snr_budget_needs_l2() -> None:
    with pytest.raises(ValueError, match="norm='l2'"):
        PGD(norm="linf", snr_db=30.0)
    with pytest.raises(ValueError, match="L2"):
        Budget("linf", 0.1, snr_db=30.0)


# ----------------------------------------------------------------------------- (d) reports


def test_records_summary_and_report_carry_both_conventions(tiny_victim, tmp_path: Path) -> None:
    attack = GaussianNoise(snr_db=40.0, snr_convention="box")
    ds = FakeDataset(6)
    ds._x = [0.5 * w for w in ds._x]  # peak 0.5: the noise is never clipped
    result = evaluate_attack(attack, tiny_victim, ds, out_dir=tmp_path, n_examples=1)
    records = read_records(tmp_path)
    for r in records:
        assert r["snr_box_db"] == pytest.approx(40.0, abs=1e-3)  # the budget's convention
        assert r["snr_db"] < r["snr_box_db"] - 1.0  # the true SNR, reported beside it
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("msnr_db", "msnr_box_db", "mean_snr_db", "mean_snr_box_db"):
        assert key in summary and key in result.summary
    assert summary["mean_snr_box_db"] == pytest.approx(40.0, abs=1e-3)
    report = (tmp_path / "report.md").read_text()
    assert "Mean SNR (true) over all attacked clips (dB)" in report
    assert "| Mean SNR (box, [16]) over all attacked clips (dB) | 40.0 |" in report
    assert "SNR (box, [16]) = 20 log10(rms(x + 1)" in report
    html = (tmp_path / "report.html").read_text()
    assert "MSNR (box, [16], dB)" in html and "MSNR (true, dB)" in html
