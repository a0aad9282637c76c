"""EnvNet and EnvNet-v2: raw-waveform environmental sound classifiers (the paper's victims).

- EnvNet: Y. Tokozume and T. Harada, "Learning environmental sounds with end-to-end
  convolutional neural network", ICASSP 2017.
- EnvNet-v2: Y. Tokozume, Y. Ushiku and T. Harada, "Learning from between-class examples for
  deep sound recognition", ICLR 2018.

Both take one window of a clip, ``(batch, window)`` 16 kHz float32 waveforms, and return logits
``(batch, n_classes)``. The clip-level protocol (padding, 10 crops, averaged softmax) lives in
``ssgan.models.victim``. Layer tables follow the papers above and the official Chainer code:
every conv is Conv (no bias) -> BatchNorm -> ReLU, pooling strides equal kernel sizes, and after
the 1-D front end the channel axis is swapped to the height axis so that the following 2-D convs
see a (frequency-like, time) image.

Speed: every 4-D activation is kept in ``torch.channels_last``; on the 2-core AVX512 CPU this
project develops on, the (1, k) convs run ~3x faster in that layout than in NCHW
(docs/performance.md). The models are layout-agnostic for their callers (inputs and outputs are
2-D).
"""

from __future__ import annotations

import torch
from torch import nn

from ssgan.models.layout import channels_last, waveform_map

# EnvNet's window at 16 kHz (~1.5 s), fixed by its layer table (it flattens to 50 x 11 x 14).
ENVNET_WINDOW = 24_014

# EnvNet-v2's native window is 66,650 samples at 44.1 kHz (1.51 s). The paper runs everything at
# 16 kHz; keeping the same duration gives 24,180 samples, the same 1.5 s that EnvNet sees, so
# both victims are attacked on the same crop protocol. The layer table is valid for it (the last
# pooling leaves 256 x 10 x 1; the shortest valid window is ENVNETV2_MIN_WINDOW = 23,642). Keeping
# the sample count instead (66,650 = 4.2 s at 16 kHz) would cover whole UrbanSound8K clips (<= 4 s)
# in one crop, so the 10 crops would be near copies, at ~2.8x the cost per crop. The FC input
# size is derived from the window, so any window >= ENVNETV2_MIN_WINDOW works.
ENVNETV2_WINDOW = 24_180


def _conv_bn_relu(
    in_ch: int, out_ch: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)
) -> nn.Sequential:
    # No bias: BatchNorm's shift makes it redundant (as in the official code).
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def _fc(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, out_features), nn.ReLU(inplace=True), nn.Dropout(dropout)
    )


def _check_input(x: torch.Tensor, window: int, name: str) -> None:
    if x.dim() != 2 or x.shape[1] != window:
        raise ValueError(
            f"{name} expects (batch, {window}) waveforms, got shape {tuple(x.shape)}; "
            "wrap it in ssgan.models.victim.ClipClassifier for clips of any length"
        )


def _swap(h: torch.Tensor) -> torch.Tensor:
    """(batch, channels, 1, time) -> (batch, 1, channels, time): channels become the height."""
    return channels_last(h.transpose(1, 2))


class EnvNet(nn.Module):
    """EnvNet (Tokozume & Harada 2017) on ``(batch, window)`` 16 kHz waveforms -> logits.

    Layers (output shape for the default window 24,014, batch omitted)::

        conv1 40 (1,8) -> 40x1x24007; conv2 40 (1,8) -> 40x1x24000; maxpool (1,160) -> 40x1x150
        swap -> 1x40x150; conv3 50 (8,13) -> 50x33x138; maxpool (3,3) -> 50x11x46
        conv4 50 (1,5) -> 50x11x42; maxpool (1,3) -> 50x11x14 = 7700
        fc5 4096, fc6 4096 (ReLU, dropout 0.5); fc7 n_classes

    Args:
        n_classes: number of output classes.
        window: input length in samples; the FC input size is derived from it (7700 for the
            default 24,014, the published 16 kHz EnvNet).
        dropout: dropout probability after fc5 and fc6.
        fc_width: width of fc5 and fc6; 4096 is the published network (smaller only for fast
            tests and experiments).
    """

    def __init__(
        self,
        n_classes: int,
        *,
        window: int = ENVNET_WINDOW,
        dropout: float = 0.5,
        fc_width: int = 4096,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes={n_classes}: need at least 2 classes")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout}: must be in [0, 1)")
        if fc_width < 1:
            raise ValueError(f"fc_width={fc_width}: must be positive")
        self.fc_width = fc_width
        self.n_classes = n_classes
        self.window = window
        self.front = nn.Sequential(
            _conv_bn_relu(1, 40, (1, 8)),
            _conv_bn_relu(40, 40, (1, 8)),
            nn.MaxPool2d((1, 160)),
        )
        self.body = nn.Sequential(
            _conv_bn_relu(1, 50, (8, 13)),
            nn.MaxPool2d((3, 3)),
            _conv_bn_relu(50, 50, (1, 5)),
            nn.MaxPool2d((1, 3)),
        )
        self.feature_shape = _feature_shape(self, window, "EnvNet")
        n_features = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        self.classifier = nn.Sequential(
            _fc(n_features, fc_width, dropout),
            _fc(fc_width, fc_width, dropout),
            nn.Linear(fc_width, n_classes),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, window)`` -> the last pooled map ``(batch, 50, 11, 14)`` (default window)."""
        h = waveform_map(x)
        return self.body(_swap(self.front(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, window)`` -> logits ``(batch, n_classes)``."""
        _check_input(x, self.window, "EnvNet")
        return self.classifier(self.features(x).flatten(1))


class EnvNetV2(nn.Module):
    """EnvNet-v2 (Tokozume, Ushiku & Harada 2018) on ``(batch, window)`` 16 kHz waveforms.

    Layers (output shape for the default window 24,180, batch omitted)::

        conv1 32 (1,64) stride (1,2) -> 32x1x12059; conv2 64 (1,16) stride (1,2) -> 64x1x6022
        maxpool (1,64) -> 64x1x94; swap -> 1x64x94
        conv3, conv4 32 (8,8) -> 32x50x80; maxpool (5,3) -> 32x10x26
        conv5, conv6 64 (1,4) -> 64x10x20; maxpool (1,2) -> 64x10x10
        conv7, conv8 128 (1,2) -> 128x10x8; maxpool (1,2) -> 128x10x4
        conv9, conv10 256 (1,2) -> 256x10x2; maxpool (1,2) -> 256x10x1 = 2560
        fc11 4096, fc12 4096 (ReLU, dropout 0.5); fc13 n_classes

    With the native 44.1 kHz window (66,650) the flattened size is 256x10x8 = 20480, as in the
    official code. Any ``window >= ENVNETV2_MIN_WINDOW`` is accepted; the FC input size is derived
    by running a dummy window through the conv stack at construction.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        window: int = ENVNETV2_WINDOW,
        dropout: float = 0.5,
        fc_width: int = 4096,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes={n_classes}: need at least 2 classes")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout}: must be in [0, 1)")
        if fc_width < 1:
            raise ValueError(f"fc_width={fc_width}: must be positive")
        self.fc_width = fc_width
        self.n_classes = n_classes
        self.window = window
        self.front = nn.Sequential(
            _conv_bn_relu(1, 32, (1, 64), stride=(1, 2)),
            _conv_bn_relu(32, 64, (1, 16), stride=(1, 2)),
            nn.MaxPool2d((1, 64)),
        )
        self.body = nn.Sequential(
            _conv_bn_relu(1, 32, (8, 8)),
            _conv_bn_relu(32, 32, (8, 8)),
            nn.MaxPool2d((5, 3)),
            _conv_bn_relu(32, 64, (1, 4)),
            _conv_bn_relu(64, 64, (1, 4)),
            nn.MaxPool2d((1, 2)),
            _conv_bn_relu(64, 128, (1, 2)),
            _conv_bn_relu(128, 128, (1, 2)),
            nn.MaxPool2d((1, 2)),
            _conv_bn_relu(128, 256, (1, 2)),
            _conv_bn_relu(256, 256, (1, 2)),
            nn.MaxPool2d((1, 2)),
        )
        self.feature_shape = _feature_shape(self, window, "EnvNetV2")
        n_features = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        self.classifier = nn.Sequential(
            _fc(n_features, fc_width, dropout),
            _fc(fc_width, fc_width, dropout),
            nn.Linear(fc_width, n_classes),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, window)`` -> the last pooled map ``(batch, 256, 10, w)``."""
        h = waveform_map(x)
        return self.body(_swap(self.front(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, window)`` -> logits ``(batch, n_classes)``."""
        _check_input(x, self.window, "EnvNetV2")
        return self.classifier(self.features(x).flatten(1))


# Smallest window whose conv stack leaves at least one time step (checked by _feature_shape).
ENVNETV2_MIN_WINDOW = 23_642
ENVNET_MIN_WINDOW = 5_294


def _feature_shape(model: EnvNet | EnvNetV2, window: int, name: str) -> tuple[int, int, int]:
    """Run one zero window through the conv stack (no grad, BN untouched) to size the FC input."""
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window={window!r}: must be a positive number of samples")
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()  # eval: the dummy must not update BatchNorm running statistics
            shape = model.features(torch.zeros(1, window)).shape[1:]
            model.train(was_training)
    except RuntimeError:
        shape = torch.Size([0, 0, 0])
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"window={window}: too short for {name}'s layer table")
    return int(shape[0]), int(shape[1]), int(shape[2])


MODELS: dict[str, type[EnvNet] | type[EnvNetV2]] = {"envnet": EnvNet, "envnetv2": EnvNetV2}
DEFAULT_WINDOWS: dict[str, int] = {"envnet": ENVNET_WINDOW, "envnetv2": ENVNETV2_WINDOW}


def build_model(
    name: str, n_classes: int, *, window: int | None = None, fc_width: int = 4096
) -> EnvNet | EnvNetV2:
    """``build_model("envnet", 10)``: a victim network by name with its default 16 kHz window."""
    if name not in MODELS:
        raise ValueError(f"model={name!r}: expected one of {', '.join(MODELS)}")
    window = DEFAULT_WINDOWS[name] if window is None else window
    return MODELS[name](n_classes, window=window, fc_width=fc_width)
