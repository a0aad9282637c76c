"""The generator that acts through a copy of the victim's front end
(ssgan.models.generators.front_end)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import synth_batch
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.gan_validation import validate_generator
from ssgan.metrics import snr_db
from ssgan.models.envnet import EnvNet, EnvNetV2, _swap
from ssgan.models.generators import build_generator
from ssgan.models.generators.front_end import FrontEnd, front_spec
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.layout import waveform_map
from ssgan.models.logmel import LogMelCNN
from ssgan.models.victim import ClipClassifier
from ssgan.training.gan import PROFILES, train_gan


def _net(kind: type, seed: int = 0) -> torch.nn.Module:
    """A small network of the victim's family with BatchNorm statistics that are not 0 / 1."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = kind(4, fc_width=16)
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net.front(waveform_map(torch.randn(4, net.window) * 0.2))
        for bn in (net.front[0][1], net.front[1][1]):
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


def test_front_spec_reads_envnet_and_envnetv2_and_refuses_others() -> None:
    assert front_spec(EnvNet(3, fc_width=16)) == (40, 8, 1, 40, 8, 1, 160)
    assert front_spec(EnvNetV2(3, fc_width=16)) == (32, 64, 2, 64, 16, 2, 64)
    wrapped = ClipClassifier(EnvNet(3, fc_width=16), window=24_014)
    assert front_spec(wrapped) == (40, 8, 1, 40, 8, 1, 160)
    with pytest.raises(ValueError, match="LogMelCNN: the victim-front-end generator needs"):
        front_spec(LogMelCNN(3))
    with pytest.raises(ValueError, match="7 positive ints"):
        FrontEnd((40, 8, 1))


@pytest.mark.parametrize("kind", [EnvNet, EnvNetV2])
def test_transpose_of_the_victim_gradient_map_is_the_victim_input_gradient(kind: type) -> None:
    """With u = dL/dp the front end's transpose gives exactly the victim's input gradient."""
    net = _net(kind)
    x = (
        torch.randn(2, net.window, generator=torch.Generator().manual_seed(1)) * 0.1
    ).requires_grad_()
    p = net.front(waveform_map(x))
    p.retain_grad()
    net.classifier(net.body(_swap(p)).flatten(1))[:, 1].sum().backward()
    front = FrontEnd(front_spec(net))
    front.load_from(net)
    pooled, saved, winners = front(x.detach())
    torch.testing.assert_close(pooled, p.detach()[:, :, 0], rtol=1e-4, atol=1e-5)
    g = front.transpose(p.grad[:, :, 0], saved, winners)
    assert g.shape == x.shape
    torch.testing.assert_close(g, x.grad, rtol=1e-3, atol=1e-7)


def test_generator_with_a_front_end_any_length_exact_snr_and_what_trains() -> None:
    net = _net(EnvNet)
    G = build_generator(GeneratorSpec(output="snr", snr_db=25.0, front=front_spec(net)))
    G.load_front(net)
    torch.testing.assert_close(G.front_end.weight2, net.front[1][0].weight)
    assert all(not name.startswith("front_end") for name, _ in G.named_parameters())
    for time in (1, 100, 173, 174, 5000):
        x = torch.randn(2, time, generator=torch.Generator().manual_seed(time)) * 0.3
        delta = G(x)
        assert delta.shape == x.shape and bool(torch.isfinite(delta).all())
        loud = delta.norm(dim=1) > 0  # a short clip's pooled frame may route nothing to it
        assert time < 174 or bool(loud.all())
        got = snr_db(x[loud], x[loud] + delta[loud]).double()
        torch.testing.assert_close(got, torch.full_like(got, 25.0), atol=1e-3, rtol=0)
    assert float(G(torch.zeros(1, 3000)).detach().abs().max()) == 0.0  # silence: no scale
    x = torch.randn(3, 4000) * 0.3
    (G(x) * torch.randn(3, 4000)).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in G.parameters())
    with pytest.raises(ValueError, match="front= needs output='snr'"):
        build_generator(GeneratorSpec(output="tanh", front=front_spec(net)))
    with pytest.raises(ValueError, match="context=True"):
        build_generator(GeneratorSpec(output="snr", context=True, front=front_spec(net)))
    with pytest.raises(ValueError, match="built without front="):
        build_generator(GeneratorSpec()).load_front(net)


@pytest.mark.parametrize(("n_blocks", "reach"), [(2, 5), (4, 29), (6, 125)])
def test_u_has_n_blocks_minus_one_dilated_layers_and_their_receptive_field(
    n_blocks: int, reach: int
) -> None:
    """u's depth follows n_blocks (the default 4 keeps the 3-layer u that runs were saved with):
    the output frame in the middle depends on exactly ``reach`` input frames."""
    torch.manual_seed(0)
    net = _net(EnvNet)
    u = build_generator(
        GeneratorSpec(output="snr", front=front_spec(net), n_blocks=n_blocks)
    ).feature_net
    dilations = [m.dilation[0] for m in u.rest if isinstance(m, torch.nn.Conv1d)]
    assert dilations == [2**i for i in range(1, n_blocks - 1)] + [1]
    feats = torch.rand(1, 40, 301, requires_grad=True)
    context = torch.rand(1, 40, 301)  # the mean-over-frames half of the input, held fixed
    u.rest(u.first(torch.cat([feats, context], 1)))[0, :, 150].sum().backward()
    assert int((feats.grad[0].abs().sum(0) > 0).sum()) == reach
    with pytest.raises(ValueError, match="n_blocks >= 2"):
        build_generator(GeneratorSpec(output="snr", front=front_spec(net), n_blocks=1))


def test_a_conditional_front_end_generator_needs_a_target_and_depends_on_it() -> None:
    net = _net(EnvNet)
    G = build_generator(GeneratorSpec(output="snr", front=front_spec(net), num_classes=3))
    G.load_front(net)
    with torch.no_grad():
        G.feature_net.target_embedding.weight.normal_()
    x = torch.randn(2, 3000) * 0.3
    with pytest.raises(ValueError, match="needs target="):
        G(x)
    a, b = G(x, target=torch.tensor([0, 0])), G(x, target=torch.tensor([1, 1]))
    assert not torch.allclose(a, b)


def test_training_copies_the_victim_front_and_the_run_rebuilds_it(tmp_path) -> None:
    net = _net(EnvNet, seed=3)
    victim = ClipClassifier(net, window=net.window, n_crops=2)
    config = dataclasses.replace(
        PROFILES["smoke"], segment_seconds=0.05, epochs=1, batch_size=2, steps_per_epoch=2,
        g_channels=2, val_clips=2, g_output="snr", gamma=0.0, beta=0.0, margin=2.0,
        victim_view="windows", g_front=True,
    )  # fmt: skip
    x, y = synth_batch(6, 4000, seed=4)
    data = (list(x[:4]), y[:4].tolist())
    train_gan(config, victim, data, (list(x[4:]), y[4:].tolist()), tmp_path / "run", progress=False,
              validate=validate_generator)  # fmt: skip
    attack = SSGANAttack.from_run(tmp_path / "run", checkpoint="last")
    assert attack.front == (40, 8, 1, 40, 8, 1, 160)
    G = attack.generator
    torch.testing.assert_close(G.front_end.weight1, net.front[0][0].weight)
    clip = x[4:5]
    with torch.no_grad():
        delta = attack.perturbation(clip)
    assert delta.shape == clip.shape and float(delta.abs().sum()) > 0
    with pytest.raises(ValueError, match="LogMelCNN"):
        logmel = ClipClassifier(LogMelCNN(3), window=24_014, n_crops=1)
        train_gan(config, logmel, data, None, tmp_path / "logmel", progress=False)
