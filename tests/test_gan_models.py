"""SSGAN generator and discriminator (ssgan.models.generators / discriminator)."""

from __future__ import annotations

import pytest
import torch

from ssgan.models.discriminator import Discriminator
from ssgan.models.generators import build_generator
from ssgan.models.generators.spec import DEFAULT_MAX_DELTA, GeneratorSpec


def _generator(**fields) -> torch.nn.Module:
    return build_generator(GeneratorSpec(**fields))


def _seeded(cls, seed: int = 0, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


@pytest.mark.parametrize("time", [1, 2, 15, 16, 17, 255, 256, 257, 1000, 25_600])
def test_generator_keeps_any_length(time: int) -> None:
    g = _seeded(_generator)
    x = torch.rand(2, time, generator=torch.Generator().manual_seed(time)) * 2 - 1
    assert g(x).shape == (2, time)


def test_generator_respects_max_delta_even_when_saturated() -> None:
    g = _seeded(_generator, max_delta=0.01)
    with torch.no_grad():
        g.net[-1].bias.fill_(100.0)  # drive tanh into saturation
    with torch.no_grad():
        delta = g(torch.rand(3, 700, generator=torch.Generator().manual_seed(0)))
    assert float(delta.abs().max()) <= 0.01
    assert float(delta.abs().max()) > 0.0099


def test_generator_is_per_example_and_differentiable() -> None:
    g = _seeded(_generator)
    x = torch.rand(3, 500, generator=torch.Generator().manual_seed(1)) * 2 - 1
    batch = g(x)
    torch.testing.assert_close(g(x[1:2]), batch[1:2], rtol=1e-5, atol=1e-7)
    x.requires_grad_(True)
    g(x).pow(2).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_parameter_counts() -> None:
    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    default = _generator()
    assert 30_000 <= count(default) <= 40_000  # the ~30 K AdvGAN-sized G (docs/design.md)
    assert count(_generator(channels=4, n_blocks=2)) < count(default)
    assert 5_000 <= count(Discriminator()) <= 20_000
    assert default.max_delta == DEFAULT_MAX_DELTA


@pytest.mark.parametrize("time", [1, 100, 1024, 25_600, 64_000])
def test_discriminator_outputs_probabilities(time: int) -> None:
    d = _seeded(Discriminator)
    x = torch.rand(3, time, generator=torch.Generator().manual_seed(time)) * 2 - 1
    p = d(x)
    assert p.shape == (3,)
    assert torch.all((p > 0) & (p < 1))
    torch.testing.assert_close(torch.sigmoid(d.logits(x)), p)


def test_models_are_seeded_reproducibly() -> None:
    a, b = _seeded(_generator, 3), _seeded(_generator, 3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 0}, "channels"),
        ({"max_delta": 0.0}, "max_delta"),
        ({"max_delta": 2.0}, "max_delta"),
        ({"block_kernel": 4}, "block_kernel"),
        ({"n_blocks": -1}, "n_blocks"),
    ],
)
def test_generator_validates_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _generator(**kwargs)


def test_models_reject_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="batch, time"):
        _generator()(torch.zeros(5))
    with pytest.raises(ValueError, match="batch, time"):
        Discriminator()(torch.zeros(1, 1, 5))
    with pytest.raises(ValueError, match="pool"):
        Discriminator(pool=0)
