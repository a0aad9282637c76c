"""The parts of our SSGAN recipe beside the paper's: exact-SNR output, the not-yet-fooled margin,
training without D, windows at random offsets, long crops through the attack's own stitching,
the quietest-scale search at attack time and checkpoint selection at the target SNR."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import synth_batch
from helpers import SNR_CONFIG
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.losses import margin_loss, targeted_margin_loss
from ssgan.metrics import snr_db
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import scale_to_snr
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.victim import ClipClassifier
from ssgan.training.gan import GANTrainConfig, g_step, make_state
from ssgan.training.gan_selection import selection_score
from ssgan.training.gan_steps import _perturb


def test_scale_to_snr_is_exact_per_example_and_keeps_silence_silent() -> None:
    x = torch.randn(3, 1000)
    x[2] = 0.0
    g = torch.randn(3, 1000)
    delta = scale_to_snr(g, x, torch.tensor([20.0, 35.0, 30.0]))
    got = 20 * torch.log10(x[:2].norm(dim=1) / delta[:2].norm(dim=1))
    assert torch.allclose(got, torch.tensor([20.0, 35.0]), atol=1e-3)
    assert torch.equal(delta[2], torch.zeros(1000))
    # the direction is kept
    assert torch.allclose(torch.cosine_similarity(delta[:2], g[:2], dim=1), torch.ones(2))


@pytest.mark.parametrize("time", [1, 257, 4000])
def test_snr_generator_hits_its_snr_on_every_segment_and_is_differentiable(time: int) -> None:
    torch.manual_seed(0)
    G = build_generator(GeneratorSpec(channels=4, n_blocks=1, output="snr", snr_db=27.0))
    x = torch.randn(4, time, requires_grad=True)
    delta = G(x)
    assert delta.shape == x.shape
    if time > 1:
        snr = 20 * torch.log10(x.norm(dim=1) / delta.norm(dim=1))
        assert torch.allclose(snr, torch.full((4,), 27.0), atol=1e-3)
    delta.sum().backward()
    assert all(p.grad is not None for p in G.parameters())
    with pytest.raises(ValueError, match="output"):
        build_generator(GeneratorSpec(output="sigmoid"))


def test_unfooled_margin_ignores_fooled_examples() -> None:
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 0])  # example 1 is already fooled
    plain = margin_loss(logits, y, 1.0)
    only = margin_loss(logits, y, 1.0, unfooled_only=True)
    assert plain.item() == pytest.approx((6 + 0 + 2) / 3)
    assert only.item() == pytest.approx((6 + 2) / 2)
    all_fooled = margin_loss(torch.tensor([[0.0, 3.0]]), torch.tensor([0]), 1.0, unfooled_only=True)
    assert all_fooled.item() == 0.0
    hit = targeted_margin_loss(logits, torch.tensor([1, 1, 1]), 1.0, unfooled_only=True)
    assert hit.item() == pytest.approx((6 + 2) / 2)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(400, 3)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        return self.fc(x)


def test_g_step_without_d_scores_random_windows_and_leaves_d_alone() -> None:
    net = _Net()
    victim = ClipClassifier(net, window=400, n_crops=10)
    cfg = dataclasses.replace(SNR_CONFIG, victim_view="windows", victim_crops=3)
    state = make_state(cfg)
    d_before = {k: v.clone() for k, v in state.D.state_dict().items()}
    g_before = {k: v.clone() for k, v in state.G.state_dict().items()}
    x, y = synth_batch(4, 800, seed=1)
    out = g_step(state, x, y % 3, victim)
    assert net.calls == [(12, 400)]  # 3 windows per crop, straight into the window network
    assert out["g/fool"] == 0.0
    assert all(torch.equal(d_before[k], v) for k, v in state.D.state_dict().items())
    assert any(not torch.equal(g_before[k], v) for k, v in state.G.state_dict().items())


def test_long_training_crops_are_perturbed_as_the_attack_stitches_segments() -> None:
    state = make_state(dataclasses.replace(SNR_CONFIG, crop_seconds=0.2))
    x, _ = synth_batch(3, 3200, seed=2)
    state.G.eval()
    attack = SSGANAttack.from_generator(state.G, segment_seconds=SNR_CONFIG.segment_seconds)
    with torch.no_grad():
        assert torch.allclose(_perturb(state.G, x, 800), attack.perturbation(x), atol=1e-7)
    with pytest.raises(ValueError, match="crop_seconds"):
        GANTrainConfig(segment_seconds=1.6, crop_seconds=1.0)


class _LoudnessVictim(torch.nn.Module):
    """Class 1 once the clip's mean is above 0.01: the quieter a positive offset, the closer
    it is to the decision boundary, so the quietest fooling scale is known exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=1, keepdim=True)
        return torch.cat([torch.zeros_like(m), 1000 * (m - 0.01)], dim=1)


def test_quietest_search_finds_the_quietest_fooling_scale() -> None:
    x = 0.1 * torch.randn(4, 2000, generator=torch.Generator().manual_seed(0))
    x = x - x.mean(dim=1, keepdim=True)
    x = 0.1 * x / x.pow(2).mean(dim=1, keepdim=True).sqrt()  # RMS exactly 0.1
    y = torch.zeros(4, dtype=torch.long)
    G = build_generator(GeneratorSpec(channels=2, n_blocks=0, output="snr", snr_db=10.0))
    with torch.no_grad():  # a constant positive output: delta is a DC offset at 10 dB
        for p in G.parameters():
            p.zero_()
        G.net[-1].bias.fill_(1.0)
    plain = SSGANAttack.from_generator(G, segment_seconds=2000 / 16000)
    quiet = SSGANAttack.from_generator(
        G, segment_seconds=2000 / 16000, quietest=True, search_steps=12
    )
    victim = _LoudnessVictim()
    xa, xq = plain(victim, x, y), quiet(victim, x, y)
    assert bool((victim(xq).argmax(1) == 1).all())
    # the boundary: a DC offset of 0.01 against ||x|| (RMS 0.1) is exactly 20 dB
    assert torch.allclose(snr_db(x, xq).float(), torch.full((4,), 20.0), atol=0.05)
    assert bool((snr_db(x, xq) > snr_db(x, xa) + 9).all())
    # a clip that nothing in the range fools keeps the loudest scale
    loud_only = SSGANAttack.from_generator(
        G, segment_seconds=2000 / 16000, quietest=True, search_min_snr_db=25.0
    )
    assert torch.allclose(
        snr_db(x, loud_only(victim, x, y)).float(), torch.full((4,), 25.0), atol=0.05
    )


def test_best_epoch_must_reach_the_target_snr_before_asr_counts() -> None:
    loud = {"val/asr": 0.9, "val/msnr_db": 20.0}
    quiet = {"val/asr": 0.5, "val/msnr_db": 30.0}
    assert selection_score(quiet, 30.0) > selection_score(loud, 30.0)
    assert selection_score(loud, None) > selection_score(quiet, None)
    assert SNR_CONFIG.selection_snr_db == 30.0


def test_loudness_head_picks_an_snr_in_range_and_the_loss_trains_it() -> None:
    torch.manual_seed(0)
    G = build_generator(
        GeneratorSpec(channels=4, n_blocks=1, output="snr", snr_db=30.0, loudness_range_db=10.0)
    )
    x = torch.randn(3, 2000)
    snr = 20 * torch.log10(x.norm(dim=1) / G(x).norm(dim=1))
    assert torch.allclose(snr, torch.full((3,), 30.0), atol=1e-3)  # zero-initialised head
    assert G.loudness is not None
    with torch.no_grad():
        G.loudness.bias.fill_(100.0)  # saturated: the quiet end of the range
    snr = 20 * torch.log10(x.norm(dim=1) / G(x).norm(dim=1))
    assert torch.allclose(snr, torch.full((3,), 40.0), atol=1e-3)
    with pytest.raises(ValueError, match="loudness_range_db"):
        build_generator(GeneratorSpec(loudness_range_db=5.0))  # tanh output has no SNR to move
    cfg = dataclasses.replace(SNR_CONFIG, loudness_range_db=10.0, loudness_weight=1.0)
    state = make_state(cfg)
    xs, ys = synth_batch(4, 800, seed=3)
    out = g_step(state, xs, ys % 2, torch.nn.Sequential(torch.nn.Linear(800, 2)))
    assert out["g/loud"] == pytest.approx(1.0, abs=1e-3)  # 40 - 30 dB, per 10 dB
    assert state.G.loudness is not None and state.G.loudness.weight.abs().sum() > 0


def test_context_film_starts_as_the_plain_generator_and_sees_the_whole_segment() -> None:
    torch.manual_seed(0)
    # tanh output: an exact-SNR output would rescale by the whole segment's norm anyway
    plain = build_generator(GeneratorSpec(channels=4, n_blocks=1))
    torch.manual_seed(0)
    ctx = build_generator(GeneratorSpec(channels=4, n_blocks=1, context=True))
    x = torch.randn(2, 4000)
    assert torch.allclose(plain(x), ctx(x), atol=1e-6)  # zero-initialised FiLM
    assert ctx.context is not None
    with torch.no_grad():
        ctx.context.weight.normal_()
    # far-away audio now changes the start of the perturbation (global receptive field)
    x2 = x.clone()
    x2[:, 3000:] = torch.randn(2, 1000)
    assert not torch.allclose(ctx(x)[:, :100], ctx(x2)[:, :100])
    assert torch.allclose(plain(x)[:, :100], plain(x2)[:, :100])
    attack = SSGANAttack.from_generator(ctx, segment_seconds=0.25)
    assert attack.context and attack.config()["context"] is True


def test_pattern_is_a_universal_waveform_tiled_from_each_segment_start(tmp_path) -> None:
    torch.manual_seed(0)
    g = build_generator(GeneratorSpec(channels=4, n_blocks=1, output="snr", pattern_samples=100))
    assert g.pattern is not None
    with torch.no_grad():
        for p in g.net.parameters():
            p.zero_()  # the network now outputs nothing: only the pattern is left
    delta = g(torch.randn(2, 250))
    # every row is the pattern tiled from the start (then scaled to the row's SNR)
    unit = delta / delta.norm(dim=1, keepdim=True)
    tiled = g.pattern.detach().repeat(1, 3)[:, :250]
    assert torch.allclose(unit, (tiled / tiled.norm()).expand(2, -1), atol=1e-5)
    # the pattern is a parameter the G loss trains
    g(torch.randn(2, 250)).pow(2).sum().backward()
    assert g.pattern.grad is not None and g.pattern.grad.abs().sum() > 0
    # it survives a save / load through the attack
    attack = SSGANAttack.from_generator(g, segment_seconds=100 / 16000)
    attack.save(tmp_path / "g")
    loaded = type(attack).load(tmp_path / "g")
    assert isinstance(loaded, SSGANAttack) and loaded.pattern_samples == 100
    assert torch.equal(loaded.generator.pattern, g.pattern)
    with pytest.raises(ValueError, match="pattern_samples"):
        build_generator(GeneratorSpec(output="tanh", pattern_samples=10))
