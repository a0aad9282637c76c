"""The SSGAN generator G: a ``GeneratorSpec`` in, a network out, by ``build_generator``.

One house for G: the spec (``spec``: every shape field, and which combinations are allowed),
what the architectures share (``base``: ``Generator``'s input checks and output head,
``scale_to_snr``, ``low_pass``) and the three architectures, one module each, chosen by
``GeneratorSpec.architecture``:

- ``convolutional``: the paper's encoder / residual blocks / decoder on the waveform;
- ``front_end``: G acts through a copy of the victim's front end (``spec.front``);
- ``spectral``: a complex mask on the segment's own STFT (``spec.spectral``).
"""

from __future__ import annotations

from ssgan.models.generators.base import Generator
from ssgan.models.generators.convolutional import ConvolutionalGenerator
from ssgan.models.generators.front_end import FrontEndGenerator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.generators.spectral import SpectralGenerator

__all__ = ["build_generator"]

_ARCHITECTURES: dict[str, type[Generator]] = {
    "conv": ConvolutionalGenerator,
    "front": FrontEndGenerator,
    "spectral": SpectralGenerator,
}


def build_generator(spec: GeneratorSpec) -> Generator:
    """The generator ``spec`` describes (the spec has refused a combination that makes none).

    Its state-dict keys are those of the architecture's module attributes (``net.*`` for the
    convolutional G, ``front_end.*`` and ``feature_net.*``, ``spectral_mask.*``), as saved runs
    and the shipped weights hold them.
    """
    return _ARCHITECTURES[spec.architecture](spec)
