"""The models really run channels_last: the one-channel input trap (ssgan.models.layout)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssgan.models.discriminator import Discriminator
from ssgan.models.envnet import EnvNet, EnvNetV2
from ssgan.models.generators import build_generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.layout import channels_last, waveform_map


def test_plain_contiguous_call_is_a_no_op_for_one_channel() -> None:
    # The trap this module exists for: NCHW strides already count as channels_last for C == 1.
    h = torch.randn(2, 1, 1, 50)
    assert h.contiguous(memory_format=torch.channels_last).stride() == h.stride()
    assert nn.Conv2d(1, 4, (1, 3))(h).stride()[1] != 1  # so the conv answers in NCHW


def test_waveform_map_is_a_view_that_convolutions_keep_channels_last() -> None:
    x = torch.randn(3, 100, requires_grad=True)
    h = waveform_map(x)
    assert h.shape == (3, 1, 1, 100)
    assert h.stride() == (100, 1, 100, 1)
    assert torch.equal(h.reshape(3, 100), x)
    out = nn.Conv2d(1, 4, (1, 3))(h)
    assert out.stride()[1] == 1  # channels innermost
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_channels_last_of_a_transposed_map_copies_and_keeps_values() -> None:
    h = torch.randn(2, 5, 1, 7).contiguous(memory_format=torch.channels_last).transpose(1, 2)
    out = channels_last(h)
    assert out.shape == (2, 1, 5, 7)
    assert out.stride() == (35, 1, 7, 1)
    assert torch.equal(out, h)
    many = channels_last(torch.randn(2, 3, 4, 5))
    assert many.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="4-D"):
        channels_last(torch.randn(2, 3))


def _conv_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: outputs.append(o))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return outputs


@pytest.mark.parametrize(
    "model, length",
    [
        (EnvNet(10, fc_width=16), 24_014),
        (EnvNetV2(10, fc_width=16), 24_180),
        (Discriminator(), 25_600),
        (build_generator(GeneratorSpec()), 25_600),
    ],
    ids=["envnet", "envnetv2", "discriminator", "generator"],
)
def test_every_multi_channel_activation_is_channels_last(model: nn.Module, length: int) -> None:
    outputs = _conv_outputs(model.eval(), torch.randn(2, length) * 0.1)
    assert outputs
    for out in outputs:
        if out.shape[1] > 1:
            assert out.stride()[1] == 1, f"NCHW activation of shape {tuple(out.shape)}"
