"""Channel transforms: what happens to a clip between the attacker and the victim.

A transform is named by a spec ``NAME[:key=value,...]`` (``parse_transform``), e.g. ``mp3:kbps=64``
or ``reverb:rt60_s=0.5,drr_db=3``; unset keys keep their defaults. The registered names:

- ``mp3`` (``kbps=128``): MP3 encode + decode through libsndfile, delay removed (aligned);
- ``resample`` (``rate_hz=8000``): soxr down to ``rate_hz`` and back to 16 kHz;
- ``noise`` (``snr_db=30``): white Gaussian noise at ``snr_db``;
- ``bgnoise`` (``snr_db=20``, ``path`` required, ``pattern=*``): a real recording (a file, or
  the audio files of a folder that match ``pattern``) at ``snr_db``;
- ``bandpass`` (``low_hz=0, high_hz=8000``): keep ``low_hz..high_hz`` only;
- ``gain`` (``min_db=-6, max_db=6``): a random gain in ``[min_db, max_db]`` dB;
- ``shift`` (``max_ms=50``): a random delay or advance within +-``max_ms``, zero-filled;
- ``reverb`` (``rt60_s=0.3, drr_db=0``): a synthetic room (``functional.synthetic_rir``).

A ``Transform`` is called as ``t(x, generator=g)`` on ``(batch, time)`` 16 kHz waveforms.
``straight_through=True`` makes the non-differentiable ones pass a gradient (BPDA, Athalye et
al. 2018), which is how EOT trains through a codec: ``mp3`` the identity's (``x + (t(x) -
x).detach()``), ``resample`` that of the low-pass at half the new rate it amounts to. ``EOT``
draws one of several transforms per clip.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ssgan import SAMPLE_RATE
from ssgan.audio import is_audio_file, load_audio
from ssgan.transforms import functional as F

__all__ = [
    "EOT",
    "TRANSFORMS",
    "Transform",
    "eot_for",
    "parse_transform",
    "parse_transforms",
]


@dataclass(frozen=True)
class _Kind:
    """One registered transform: its parameters (name -> (type, default)) and how to apply it."""

    params: dict[str, tuple[type, Any]]
    apply: Callable[..., Tensor]  # (x, generator, **params) -> x'
    differentiable: bool
    required: tuple[str, ...] = ()
    # For a non-differentiable transform: a differentiable stand-in whose gradient the
    # straight-through pass uses ((x, **params) -> x'), or None for the identity's.
    surrogate: Callable[..., Tensor] | None = None


def _no_rng(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    return lambda x, generator, **kw: fn(x, **kw)


def _bgnoise(
    x: Tensor, generator: torch.Generator, *, snr_db: float, path: str, pattern: str
) -> Tensor:
    return F.add_background_noise(x, _recordings(path, pattern), snr_db=snr_db, generator=generator)


@functools.lru_cache(maxsize=8)
def _recordings(path: str, pattern: str) -> tuple[Tensor, ...]:
    """The background recordings of ``path`` (a file, or the audio files in a folder matching
    ``pattern``, sorted by name), loaded once as mono 16 kHz peak-normalised tensors."""

    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob(pattern) if p.is_file() and is_audio_file(p))
    elif root.is_file():
        files = [root]
    else:
        raise ValueError(f"bgnoise: path={path!r} is neither a file nor a folder")
    if not files:
        raise ValueError(f"bgnoise: no audio files matching {pattern!r} under {path}")
    return tuple(torch.from_numpy(load_audio(f)) for f in files)


TRANSFORMS: dict[str, _Kind] = {
    "mp3": _Kind({"kbps": (int, 128)}, _no_rng(F.mp3_roundtrip), differentiable=False),
    "resample": _Kind(
        {"rate_hz": (float, 8000.0)},
        _no_rng(F.resample_roundtrip),
        differentiable=False,
        # Going down to rate_hz and back removes what lies above rate_hz / 2: the gradient of
        # that low-pass, not the identity's, tells a generator where its energy is lost.
        surrogate=lambda x, rate_hz: F.band_limit(x, high_hz=min(rate_hz, SAMPLE_RATE) / 2),
    ),
    "noise": _Kind(
        {"snr_db": (float, 30.0)},
        lambda x, generator, **kw: F.add_gaussian_noise(x, generator=generator, **kw),
        differentiable=True,
    ),
    "bgnoise": _Kind(
        {"snr_db": (float, 20.0), "path": (str, None), "pattern": (str, "*")},
        _bgnoise,
        differentiable=True,
        required=("path",),
    ),
    "bandpass": _Kind(
        {"low_hz": (float, 0.0), "high_hz": (float, 8000.0)},
        _no_rng(F.band_limit),
        differentiable=True,
    ),
    "gain": _Kind(
        {"min_db": (float, -6.0), "max_db": (float, 6.0)},
        lambda x, generator, **kw: F.random_gain(x, generator=generator, **kw),
        differentiable=True,
    ),
    "shift": _Kind(
        {"max_ms": (float, 50.0)},
        lambda x, generator, **kw: F.random_time_shift(x, generator=generator, **kw),
        differentiable=True,
    ),
    "reverb": _Kind(
        {"rt60_s": (float, 0.3), "drr_db": (float, 0.0)},
        lambda x, generator, **kw: F.reverberate(x, generator=generator, **kw),
        differentiable=True,
    ),
}


@dataclass(frozen=True)
class Transform:
    """A registered transform with its settings; build it with ``parse_transform``."""

    name: str
    params: tuple[tuple[str, Any], ...]  # (key, value) for every key, in registry order

    @property
    def kind(self) -> _Kind:
        return TRANSFORMS[self.name]

    @property
    def differentiable(self) -> bool:
        return self.kind.differentiable

    @property
    def spec(self) -> str:
        """The canonical spec (every key written), e.g. ``"mp3:kbps=128"``; parses back to
        an equal ``Transform``."""
        return f"{self.name}:" + ",".join(f"{k}={_fmt(v)}" for k, v in self.params)

    def __call__(
        self,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        straight_through: bool = False,
    ) -> Tensor:
        """``x (batch, time)`` through the transform; ``generator`` draws its randomness (a
        fresh one seeded with 0 when None). ``straight_through``: for a non-differentiable
        transform, the identity's gradient (value unchanged)."""
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        kwargs = dict(self.params)
        if self.differentiable or not straight_through:
            return self.kind.apply(x, g, **kwargs)
        y = self.kind.apply(x.detach(), g, **kwargs)
        if self.kind.surrogate is not None:
            s = self.kind.surrogate(x, **kwargs)
            return s + (y - s).detach()
        return x + (y - x).detach()


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _value(name: str, key: str, raw: str, typ: type) -> Any:
    try:
        v = typ(raw)
    except ValueError:
        raise ValueError(f"transform {name!r}: {key}={raw!r} is not {typ.__name__}") from None
    if isinstance(v, float) and math.isnan(v):
        raise ValueError(f"transform {name!r}: {key}={raw!r} is not a number")
    return v


def parse_transform(spec: str) -> Transform:
    """``"NAME[:key=value,...]"`` -> ``Transform``; ``ValueError`` names an unknown transform or
    key (listing the known ones), a bad value, or a missing required key. Values are checked by
    running the transform once on a short silent clip, so a bad setting fails here, not later."""
    if isinstance(spec, Transform):
        return spec
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
    kind = TRANSFORMS[name]
    values = {k: default for k, (_, default) in kind.params.items()}
    for item in (s for s in rest.split(",") if s.strip()):
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"transform {name!r}: {item!r} is not key=value")
        if key not in kind.params:
            known = ", ".join(kind.params)
            raise ValueError(f"transform {name!r} has no setting {key!r}; known: {known}")
        values[key] = _value(name, key, raw.strip(), kind.params[key][0])
    missing = [k for k in kind.required if values[k] is None]
    if missing:
        raise ValueError(f"transform {name!r} needs {', '.join(f'{k}=...' for k in missing)}")
    transform = Transform(name, tuple(values.items()))
    transform(torch.zeros(1, 64))  # validates the values (each function checks its own)
    return transform


def parse_transforms(items: Iterable[str | Transform]) -> list[Transform]:
    """Parse several specs. An item without ``:`` that holds ``=`` continues the previous spec,
    so a comma-split list (``--set eot=reverb:rt60_s=0.5,drr_db=3,mp3``) parses as meant."""
    specs: list[str | Transform] = []
    for item in items:
        if isinstance(item, str) and ":" not in item and "=" in item and specs:
            if isinstance(specs[-1], Transform):
                raise ValueError(f"{item!r}: a setting with no transform name before it")
            specs[-1] = f"{specs[-1]},{item}"
        else:
            specs.append(item)
    return [parse_transform(s) if isinstance(s, str) else s for s in specs]


class EOT:
    """Expectation over transformation (Athalye et al., ICML 2018): each clip of a batch goes
    through one of ``transforms`` drawn uniformly, or, with probability ``1 - prob``, through
    none. Non-differentiable transforms pass the gradient straight through, so a loss on the
    output trains whatever made ``x``.

    Example::

        eot = EOT(["mp3:kbps=64", "resample:rate_hz=8000", "reverb"], prob=0.8)
        logits = victim(eot(x_adv, generator=g))
    """

    def __init__(self, transforms: Sequence[str | Transform], *, prob: float = 1.0) -> None:
        self.transforms = parse_transforms(transforms)
        if not self.transforms:
            raise ValueError("EOT: no transforms given")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob={prob!r}: must be in [0, 1]")
        self.prob = float(prob)

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        batch = x.shape[0]
        pick = torch.randint(len(self.transforms), (batch,), generator=generator)
        keep = torch.rand(batch, generator=generator) >= self.prob  # these clips pass untouched
        pick = torch.where(keep, torch.full_like(pick, -1), pick)
        out = x.clone()
        for k, t in enumerate(self.transforms):
            rows = (pick == k).nonzero().flatten().to(x.device)
            if rows.numel():
                out = out.index_copy(
                    0, rows, t(x[rows], generator=generator, straight_through=True)
                )
        return out

    def specs(self) -> list[str]:
        return [t.spec for t in self.transforms]


@functools.lru_cache(maxsize=16)
def eot_for(specs: tuple[str, ...], prob: float = 1.0) -> EOT:
    """The ``EOT`` of ``specs`` (a comma-split list is rejoined), built once per setting: a
    training step calls it every batch and parsing checks each transform on a test clip."""
    return EOT(specs, prob=prob)
