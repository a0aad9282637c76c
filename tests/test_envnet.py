"""EnvNet / EnvNet-v2: the layer tables, derived FC sizes, input checks."""

from __future__ import annotations

import pytest
import torch

from ssgan.models.envnet import (
    ENVNET_MIN_WINDOW,
    ENVNET_WINDOW,
    ENVNETV2_MIN_WINDOW,
    ENVNETV2_WINDOW,
    EnvNet,
    EnvNetV2,
    build_model,
)


def test_envnet_flattens_to_7700_at_its_window() -> None:
    net = EnvNet(50)
    assert net.window == ENVNET_WINDOW == 24_014
    assert net.feature_shape == (50, 11, 14)
    assert net.classifier[0][0].in_features == 7700
    assert net.classifier[0][0].out_features == 4096
    assert net.classifier[1][0].out_features == 4096
    assert net.classifier[2].out_features == 50


def test_envnet_intermediate_sizes_follow_the_layer_table() -> None:
    net = EnvNet(10, fc_width=8).eval()
    x = torch.zeros(1, ENVNET_WINDOW)
    h = x[:, None, None, :]
    h = net.front[0](h)
    assert h.shape == (1, 40, 1, 24_007)
    h = net.front[1](h)
    assert h.shape == (1, 40, 1, 24_000)
    h = net.front[2](h)
    assert h.shape == (1, 40, 1, 150)
    h = h.transpose(1, 2)
    h = net.body[0](h)
    assert h.shape == (1, 50, 33, 138)
    h = net.body[1](h)
    assert h.shape == (1, 50, 11, 46)
    h = net.body[2](h)
    assert h.shape == (1, 50, 11, 42)
    assert net.body[3](h).shape == (1, 50, 11, 14)


def test_convs_have_no_bias_and_are_followed_by_batchnorm() -> None:
    for net in (EnvNet(3, fc_width=8), EnvNetV2(3, fc_width=8)):
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert len(convs) == len(bns) == (4 if isinstance(net, EnvNet) else 10)
        assert all(c.bias is None for c in convs)


def test_envnetv2_native_window_gives_the_official_20480_features() -> None:
    assert EnvNetV2(10, window=66_650, fc_width=8).feature_shape == (256, 10, 8)


def test_envnetv2_default_window_is_16khz_151s() -> None:
    net = EnvNetV2(10, fc_width=8)
    assert net.window == ENVNETV2_WINDOW == 24_180
    assert net.feature_shape == (256, 10, 1)
    assert net.classifier[0][0].in_features == 2560


@pytest.mark.parametrize(
    ("cls", "window"),
    [
        (EnvNet, ENVNET_MIN_WINDOW),
        (EnvNet, 7_777),
        (EnvNetV2, ENVNETV2_MIN_WINDOW),
        (EnvNetV2, 25_001),
    ],
)
def test_output_shapes_at_odd_windows(cls: type, window: int) -> None:
    net = cls(7, window=window, fc_width=16).eval()
    x = torch.randn(3, window, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert net(x).shape == (3, 7)
    n_features = net.feature_shape[0] * net.feature_shape[1] * net.feature_shape[2]
    assert net.classifier[0][0].in_features == n_features


@pytest.mark.parametrize(
    ("cls", "min_window"), [(EnvNet, ENVNET_MIN_WINDOW), (EnvNetV2, ENVNETV2_MIN_WINDOW)]
)
def test_window_below_the_minimum_is_refused(cls: type, min_window: int) -> None:
    with pytest.raises(ValueError, match=f"window={min_window - 1}"):
        cls(4, window=min_window - 1)


def test_wrong_input_length_names_the_shape() -> None:
    net = EnvNet(4, window=ENVNET_MIN_WINDOW, fc_width=8)
    with pytest.raises(ValueError, match=r"\(2, 100\)"):
        net(torch.zeros(2, 100))


def test_bad_hyperparameters() -> None:
    with pytest.raises(ValueError, match="n_classes=1"):
        EnvNet(1)
    with pytest.raises(ValueError, match=r"dropout=1\.0"):
        EnvNetV2(4, dropout=1.0)
    with pytest.raises(ValueError, match="fc_width=0"):
        EnvNet(4, fc_width=0)
    with pytest.raises(ValueError, match="model='resnet'"):
        build_model("resnet", 4)


def test_channels_last_gives_the_same_logits_as_contiguous() -> None:
    torch.manual_seed(0)
    net = EnvNet(4, window=ENVNET_MIN_WINDOW, fc_width=8).eval()
    x = torch.randn(2, ENVNET_MIN_WINDOW, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        torch.testing.assert_close(net_cl(x), ref, rtol=1e-4, atol=1e-5)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    net = EnvNet(4, window=ENVNET_MIN_WINDOW, fc_width=8, dropout=0.0)
    x = torch.randn(4, ENVNET_MIN_WINDOW, generator=torch.Generator().manual_seed(1))
    net(x).logsumexp(-1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
