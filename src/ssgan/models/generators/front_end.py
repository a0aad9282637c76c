"""The front-end generator: G acts through a copy of the victim's front end (``spec.front``).

A raw-waveform victim (EnvNet, EnvNet-v2) starts with a front end ``p(x)``: two Conv-BN-ReLU
stages along time and a max-pool, a learned filterbank. Its input gradient has the form
``grad_x L = J_p(x)^T dL/dp``: the transpose of the front end's Jacobian, which is cheap and
input-dependent (the ReLU masks and the max-pool's winners route it), applied to the small map
``dL/dp`` that the rest of the network computes. A convolutional G on the waveform has to learn
both parts from a few hundred clips and learns neither (docs/notebook/recipe.md, fourth and fifth
sweeps). ``FrontEnd`` is a frozen copy of the victim's front end with its transpose;
``FeatureMapNet`` is the small network G learns, from ``p(x)`` to a map of ``p``'s shape. With
``u = dL/dp`` the output is the victim's gradient, so the L2 fast gradient method is within
G's reach; at attack time G evaluates no victim decision, only its copy of the front end.

The copy is white-box knowledge of the victim (about 13 k weights for EnvNet), as the paper's G
has the victim's gradients in training; it is stored with G's weights, so a saved generator
needs no victim to attack.

``FrontEndGenerator`` outputs ``J_p(x)^T u(p(x))``, ``u`` a ``FeatureMapNet`` of width
``8 * channels`` with ``n_blocks - 1`` dilated layers (the default 4 gives 3), through the exact-SNR
head of ``ssgan.models.generators.base``; ``n_down`` and ``block_kernel`` are unused.
``load_front`` copies the victim's front end in when training starts.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.layout import channels_last, waveform_map

__all__ = ["FeatureMapNet", "FrontEnd", "FrontEndGenerator", "front_spec"]

SPEC_FIELDS = ("out1", "kernel1", "stride1", "out2", "kernel2", "stride2", "pool")


def front_spec(net: nn.Module) -> tuple[int, ...]:
    """``(out1, kernel1, stride1, out2, kernel2, stride2, pool)`` of ``net.front``.

    ``net`` is a window network (EnvNet, EnvNet-v2) or a ``ClipClassifier`` around one; its
    ``front`` must be two ``Conv2d (1, k) -> BatchNorm2d -> ReLU`` stages along time and a
    ``MaxPool2d (1, pool)``. Raises ``ValueError`` otherwise (e.g. the log-mel CNN).
    """
    front: Any = _front(net)
    spec: list[int] = []
    try:
        ok = isinstance(front, nn.Sequential) and len(front) == 3
        for i in range(2) if ok else ():
            conv, bn, relu = front[i][0], front[i][1], front[i][2]
            ok = ok and isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            ok = ok and isinstance(relu, nn.ReLU) and conv.groups == 1
            ok = ok and conv.kernel_size[0] == 1 and conv.stride[0] == 1
            ok = ok and conv.padding == (0, 0) and conv.in_channels == (spec[0] if i else 1)
            spec += [conv.out_channels, conv.kernel_size[1], conv.stride[1]]
        pool = front[2] if ok else None
        kernel: Any = getattr(pool, "kernel_size", None)
        kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        ok = ok and isinstance(pool, nn.MaxPool2d) and kernel[0] == 1
    except (AttributeError, IndexError, TypeError):
        ok = False
    if not ok:
        raise ValueError(
            f"{type(getattr(net, 'net', net)).__name__}: the victim-front-end generator needs a "
            "victim whose `front` is two Conv-BN-ReLU stages along time and a max-pool "
            "(EnvNet, EnvNet-v2)"
        )
    spec.append(int(kernel[1]))
    return tuple(spec)


def _front(net: nn.Module) -> Any:
    """``net.front`` through a DistributedDataParallel and a ``ClipClassifier`` wrapper."""
    net = getattr(net, "module", net)
    return getattr(getattr(net, "net", net), "front", None)


class FrontEnd(nn.Module):
    """A frozen copy of a victim's front end (``front_spec``) and the transpose of its Jacobian.

    The weights are buffers (saved with G, never trained); BatchNorm is folded into a slope and
    a shift with the victim's running statistics, as the victim runs at attack time.
    """

    def __init__(self, spec: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        spec = tuple(int(v) for v in spec)
        if len(spec) != len(SPEC_FIELDS) or min(spec) < 1:
            raise ValueError(f"front spec {spec!r}: expected 7 positive ints {SPEC_FIELDS}")
        self.spec = spec
        out1, k1, s1, out2, k2, s2, pool = spec
        self.strides = (s1, s2)
        self.pool = pool
        self.channels = out2
        self.register_buffer("weight1", torch.zeros(out1, 1, 1, k1))
        self.register_buffer("weight2", torch.zeros(out2, out1, 1, k2))
        for i, c in ((1, out1), (2, out2)):
            self.register_buffer(f"slope{i}", torch.ones(c))
            self.register_buffer(f"shift{i}", torch.zeros(c))
        # The shortest input with one pooled frame.
        self.min_samples = ((pool - 1) * s2 + k2 - 1) * s1 + k1

    @torch.no_grad()
    def load_from(self, net: nn.Module) -> None:
        """Copy ``net.front``'s weights and BatchNorm statistics (``front_spec`` must match)."""
        spec = front_spec(net)
        if spec != self.spec:
            raise ValueError(f"the victim's front end is {spec}, this generator's {self.spec}")
        front = _front(net)
        for i, stage in ((1, front[0]), (2, front[1])):
            conv, bn = stage[0], stage[1]
            slope = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            getattr(self, f"weight{i}").copy_(conv.weight)
            getattr(self, f"slope{i}").copy_(slope)
            getattr(self, f"shift{i}").copy_(bn.bias - bn.running_mean * slope)

    def _stages(self) -> tuple[tuple[Tensor, Tensor, int], ...]:
        """Per stage: the conv weight with BatchNorm's slope folded in, the shift, the stride."""
        b = self.get_buffer
        return tuple(
            (b(f"weight{i}") * b(f"slope{i}")[:, None, None, None], b(f"shift{i}"), stride)
            for i, stride in ((1, self.strides[0]), (2, self.strides[1]))
        )

    @torch.no_grad()
    def forward(self, x: Tensor) -> tuple[Tensor, list[tuple[int, Tensor]], Tensor]:
        """``x (batch, time >= min_samples)`` -> the pooled map ``(batch, channels, frames)``,
        and what ``transpose`` needs: per stage its input length and where its ReLU was off,
        the pool's winners."""
        h = waveform_map(x.float())
        saved: list[tuple[int, Tensor]] = []
        for weight, shift, stride in self._stages():
            length = h.shape[-1]
            h = F.conv2d(h, weight, shift, stride=(1, stride))
            saved.append((length, h <= 0))
            h = h.clamp_min_(0)
        p, winners = F.max_pool2d(h, (1, self.pool), return_indices=True)
        return p[:, :, 0], saved, winners

    def transpose(self, u: Tensor, saved: list[tuple[int, Tensor]], winners: Tensor) -> Tensor:
        """``J_p(x)^T u`` for ``u`` of the pooled map's shape -> ``(batch, time)``
        (differentiable in ``u``)."""
        off = saved[-1][1]
        v = F.max_unpool2d(
            u[:, :, None].float(), winners, (1, self.pool), output_size=off.shape[-2:]
        )
        # channels_last, the layout of the forward pass's tensors: several times faster for
        # these (1, k) convs on CPU (docs/performance.md), and the masks need no copy.
        v = channels_last(v)
        for (weight, _, stride), (length, off) in zip(
            reversed(self._stages()), reversed(saved), strict=True
        ):
            v = F.conv_transpose2d(v.masked_fill(off, 0.0), weight, stride=(1, stride))
            v = F.pad(v, (0, length - v.shape[-1]))  # samples no window reached: zero gradient
        return v[:, 0, 0]


class FeatureMapNet(nn.Module):
    """``u``: the front end's pooled map ``(batch, channels, frames)`` -> a map of that shape.

    Input: ``log1p`` of the map and its mean over frames (what the whole segment sounds like);
    ``layers`` Conv1d-ReLU layers of kernel 5 and dilation 1, 2, 4, ... (3 layers: a receptive
    field of 29 frames, 0.3 s for EnvNet; 5 layers: 125 frames, 1.25 s), then a 1x1 conv back to
    the map's channels. A class-conditional G FiLMs the first hidden layer with a learned
    (scale, shift) per target class, zero-initialised.
    """

    def __init__(self, channels: int, hidden: int, num_classes: int = 0, layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.first = nn.Conv1d(2 * channels, hidden, 5, padding=2)
        rest: list[nn.Module] = [nn.ReLU()]
        for i in range(1, layers):
            rest += [nn.Conv1d(hidden, hidden, 5, padding=2 * 2**i, dilation=2**i), nn.ReLU()]
        self.rest = nn.Sequential(*rest, nn.Conv1d(hidden, channels, 1))
        self.target_embedding: nn.Embedding | None = None
        if num_classes:
            self.target_embedding = nn.Embedding(num_classes, 2 * hidden)
            nn.init.zeros_(self.target_embedding.weight)

    def forward(self, p: Tensor, target: Tensor | None = None) -> Tensor:
        feats = torch.log1p(p)
        h = self.first(torch.cat([feats, feats.mean(dim=2, keepdim=True).expand_as(feats)], 1))
        if self.target_embedding is not None and target is not None:
            scale, shift = self.target_embedding(target.to(h.device).long()).chunk(2, dim=1)
            h = h * (1 + scale[:, :, None]) + shift[:, :, None]
        return self.rest(h)


class FrontEndGenerator(Generator):
    """G as ``J_p(x)^T u(p(x))`` through its frozen copy ``front_end`` of the victim's front end."""

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__(spec)
        self.front_end = FrontEnd(spec.front)
        self.feature_net = FeatureMapNet(
            self.front_end.channels, 8 * spec.channels, spec.num_classes, layers=spec.n_blocks - 1
        )

    def _direction(
        self, x: Tensor, grad: Tensor | None, target: Tensor | None
    ) -> tuple[Tensor, float | Tensor]:
        time = x.shape[1]
        # Shorter than one pooled frame of the front end: zero-pad (the pad gets no output).
        h = (
            F.pad(x, (0, self.front_end.min_samples - time))
            if time < self.front_end.min_samples
            else x
        )
        p, saved, winners = self.front_end(h)
        u = self.feature_net(p.to(h.dtype), target).float()
        return self.front_end.transpose(u, saved, winners)[:, :time].float(), self.snr_db

    def load_front(self, victim: nn.Module) -> None:
        """Copy the victim's front end into G (done when training starts)."""
        self.front_end.load_from(victim)
