"""The victim networks by name: what ``ssgan train victim --model NAME`` and ``load_victim`` build.

Every entry takes ``(n_classes, *, window, fc_width)`` and maps ``(batch, window)`` waveforms to
logits, so the crop protocol (``ssgan.models.victim``), victim training and the checkpoint format
are shared by all of them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ssgan.models.envnet import ENVNET_WINDOW, ENVNETV2_WINDOW, EnvNet, EnvNetV2
from ssgan.models.logmel import LOGMEL_WINDOW, LogMelCNN

__all__ = ["DEFAULT_WINDOWS", "MODELS", "build_model"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "envnet": EnvNet,
    "envnetv2": EnvNetV2,
    "logmel": LogMelCNN,
}
DEFAULT_WINDOWS: dict[str, int] = {
    "envnet": ENVNET_WINDOW,
    "envnetv2": ENVNETV2_WINDOW,
    "logmel": LOGMEL_WINDOW,
}


def build_model(
    name: str, n_classes: int, *, window: int | None = None, fc_width: int = 4096
) -> nn.Module:
    """``build_model("logmel", 10)``: a victim network by name with its default 16 kHz window."""
    if name not in MODELS:
        raise ValueError(f"model={name!r}: expected one of {', '.join(MODELS)}")
    window = DEFAULT_WINDOWS[name] if window is None else window
    return MODELS[name](n_classes, window=window, fc_width=fc_width)
