"""SSGAN: the short-time synthesis GAN attack (paper section IV) under the common Attack interface.

A trained generator G maps a ``t1``-second segment to a perturbation. Attacking a clip of any
length (paper section IV-D, "SIP" at test time): cut the clip into consecutive non-overlapping
``t1`` segments (the last one filled with the clip's own audio), run G on all segments batched
(``chunk_segments`` at a time, so memory stays bounded for hour-long inputs), stitch the
perturbations, trim to the original length: ``x_adv = x + delta``, clipped to [-1, 1].

With ``overlap=True`` the segments start every ``t1 / 2`` and their perturbations are crossfaded
(``ssgan.data.segments.overlap_add``) instead of butting against each other.

The attack needs no gradient of the victim at attack time: one forward pass of a ~36 K-parameter
network per segment. ``fit`` trains G against a victim with ``ssgan.training.gan``; a run
trained with ``ssgan train gan`` loads with ``SSGANAttack.from_run(run_dir)``.

Reference: SSGAN, "GAN-based short-time synthesis adversarial examples for environmental sound
classification" (see /shared/paper); G after AdvGAN (Xiao et al., IJCAI 2018).

Example:
    >>> attack = SSGANAttack.from_run("runs/gan")          # doctest: +SKIP
    >>> x_adv = attack(victim, x, y)                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ssgan import SAMPLE_RATE
from ssgan.attacks.base import LearnedAttack
from ssgan.attacks.checks import check_choice, check_int, check_positive
from ssgan.attacks.ddn import quietest_scale, refine_min_norm
from ssgan.data import segments as sip
from ssgan.io import unflatten_state_dict
from ssgan.losses import input_gradient
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.training.gan import fit_gan
from ssgan.training.gan_checkpoint import load_generator
from ssgan.training.gan_config import fit_config

logger = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "SSGANAttack"]

PRECISIONS = ("float32", "bfloat16")
"""Arithmetic of the generator at attack time (``SSGANAttack(precision=...)``)."""


class SSGANAttack(LearnedAttack):
    """The SSGAN attack: ``x_adv = x + G(x)`` segment by segment, for clips of any length.

    Args:
        segment_seconds: ``t1``, the segment length G was trained on (1.6 s in the paper).
        overlap: crossfade half-overlapping segments instead of butting them.
        chunk_segments: how many segments go through G at once (bounds memory).
        spec: the generator's shape and output (``ssgan.models.generators.spec.GeneratorSpec``),
            or its fields as keywords (``channels=4, snr_db=25.0``: output defaults to
            ``"snr"`` here), read back as attributes (``attack.snr_db``); see
            ``ssgan.models.generators.base.Generator`` for each (``front`` is a victim's
            ``ssgan.models.generators.front_end.front_spec``: ``fit`` copies that victim's
            front end; ``spectral``: G is a complex mask on the segment's STFT). A
            ``grad_input`` generator reads the victim's input gradient on the clip: one victim
            backward per call, so it queries the victim (its own row, "SSGAN + gradient",
            between SSGAN and FGM in cost).
        profile: the ``ssgan.training.gan.PROFILES`` entry ``fit`` trains with.
        epochs: overrides that profile's epoch count in ``fit`` (``None``: keep it).
        quietest: after G, rescale each clip's perturbation to the quietest loudness that still
            fools the victim: a bisection on the clip's SNR in ``[search_min_snr_db,
            search_max_snr_db]`` over ``search_steps`` halvings, ``search_steps + 2`` victim
            forward passes per clip (no gradient; ``ssgan.attacks.ddn.quietest_scale``), never
            louder than a perturbation that already fools. A clip not fooled even at
            ``search_min_snr_db`` keeps that loudest scale. Off by default: it queries the
            victim, so it is reported as its own row ("SSGAN + quietest").
        refine_steps: after G (and before ``quietest``), this many steps of the minimum-norm
            search of DDN (``ssgan.attacks.ddn``) starting from G's perturbation: each clip's
            loudness walks down where it fools and up (never louder than
            ``search_min_snr_db``) where it does not, along the victim's gradient. One victim
            forward + backward per step: its own row ("SSGAN + refine k"). 0 (default): off.
        refine_gamma: the relative change of each clip's norm per refine step.
        snr_convention: what G's ``snr_db`` and the SNRs of ``quietest`` / ``refine_steps``
            (``search_min_snr_db``, ``search_max_snr_db``) are measured against: ``"true"``
            (the clip, default) or ``"box"`` (``x + 1``, [16]'s convention; ``ssgan.metrics``).
        precision: ``"float32"`` or ``"bfloat16"``: the arithmetic of G at attack time.
            bfloat16 runs G under autocast (CPUs with AVX512-BF16 or AMX, and GPUs); the bound
            ``|delta| <= max_delta`` and the stitched output stay float32. docs/performance.md
            has its measured speed and effect on ASR / MSNR.

        num_classes: > 0: a class-conditional generator (``ssgan train gan --targeted``), one
            G for every target: it must be called with ``target=`` (a ``(batch,)`` class
            tensor) and is targeted only. 0 (default): untargeted, and ``target=`` is refused
            (a generator trained with ``target_class`` already aims at that class).
    """

    name: ClassVar[str] = "ssgan"
    targeted_supported: ClassVar[bool] = False
    queries_victim: ClassVar[bool] = False  # one G pass per segment, no victim at attack time

    def __init__(
        self,
        *,
        segment_seconds: float = 1.6,
        overlap: bool = False,
        chunk_segments: int = 64,
        spec: GeneratorSpec | None = None,
        profile: str = "cpu",
        epochs: int | None = None,
        precision: str = "float32",
        quietest: bool = False,
        search_min_snr_db: float = 10.0,
        search_max_snr_db: float = 50.0,
        search_steps: int = 6,
        refine_steps: int = 0,
        refine_gamma: float = 0.1,
        **shape: Any,
    ) -> None:
        if not search_min_snr_db < search_max_snr_db:
            raise ValueError(
                f"search_min_snr_db={search_min_snr_db!r} must be below "
                f"search_max_snr_db={search_max_snr_db!r}"
            )
        try:  # the attack's default output is the exact-SNR one (the paper's G is "tanh")
            spec = GeneratorSpec(**{"output": "snr", **shape}) if spec is None else spec
            self.spec: GeneratorSpec = spec.replace(**shape) if shape else spec
        except TypeError as exc:  # an unknown keyword
            raise TypeError(f"SSGANAttack: {exc}") from None
        self.quietest = bool(quietest)
        self.search_min_snr_db = float(search_min_snr_db)
        self.search_max_snr_db = float(search_max_snr_db)
        self.search_steps = check_int("search_steps", search_steps, minimum=1)
        self.refine_steps = check_int("refine_steps", refine_steps, minimum=0)
        self.refine_gamma = check_positive("refine_gamma", refine_gamma)
        if self.refine_gamma >= 1:
            raise ValueError(f"refine_gamma={refine_gamma!r}: expected a value in (0, 1)")
        if self.quietest or self.spec.grad_input or self.refine_steps:
            self.queries_victim = True  # type: ignore[misc]
        self.precision = check_choice("precision", precision, PRECISIONS)
        self.segment_seconds = check_positive("segment_seconds", segment_seconds)
        self.overlap = bool(overlap)
        self.chunk_segments = check_int("chunk_segments", chunk_segments, minimum=1)
        # A conditional G is targeted only; the class attribute says "untargeted G".
        self.targeted_supported = self.num_classes > 0  # type: ignore[misc]
        self.profile = profile
        self.epochs = None if epochs is None else check_int("epochs", epochs, minimum=1)
        self.segment_samples = max(1, round(self.segment_seconds * SAMPLE_RATE))
        self._generator: Generator | None = None  # built on first use: see ``generator``
        self._fitted = False

    def __getattr__(self, name: str) -> Any:
        """The generator's fields read as the attack's own (``attack.snr_db``, ...)."""
        spec = self.__dict__.get("spec")
        if spec is not None and name in GeneratorSpec.field_names():
            return getattr(spec, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def keyword_settings(cls) -> dict[str, Any]:
        """The generator's fields (``GeneratorSpec``), settable one by one."""
        return typing.get_type_hints(GeneratorSpec)

    def config(self) -> dict[str, Any]:
        """The constructor's keywords with the spec's fields flat (as ``save`` writes them)."""
        out = {k: v for k, v in super().config().items() if k != "spec"}
        return {**out, **self.spec.to_dict()}

    @property
    def generator(self) -> Generator:
        """G: built from the shape arguments on first use unless one was set (``from_run``,
        ``from_generator``, ``fit``)."""
        if self._generator is None:
            self._generator = self._build_generator()
        return self._generator

    @generator.setter
    def generator(self, module: Generator) -> None:
        self._generator = module

    def _build_generator(self) -> Generator:
        return build_generator(self.spec)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_generator(
        cls, generator: Generator, *, segment_seconds: float, **kwargs: Any
    ) -> SSGANAttack:
        """Wrap an existing (e.g. in-training) generator module; it is used, not copied.

        G's shape is read from the module; a shape keyword in ``kwargs`` may repeat it but
        not contradict it."""
        spec = generator.spec
        shape = spec.to_dict()
        shape["front"] = spec.front
        clashes = sorted(k for k in shape.keys() & kwargs.keys() if kwargs[k] != shape[k])
        if clashes:
            said = (f"{k}={kwargs[k]!r} but the generator has {shape[k]!r}" for k in clashes)
            raise ValueError("from_generator: " + ", ".join(said))
        options = {k: v for k, v in kwargs.items() if k not in shape}
        attack = cls(segment_seconds=segment_seconds, spec=spec, **options)
        attack.generator = generator
        attack._fitted = True
        return attack

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        *,
        checkpoint: str = "best",
        overlap: bool = False,
        chunk_segments: int = 64,
        device: str | torch.device = "cpu",
        precision: str = "float32",
        quietest: bool = False,
        search_min_snr_db: float = 10.0,
        search_max_snr_db: float = 50.0,
        search_steps: int = 6,
        refine_steps: int = 0,
        refine_gamma: float = 0.1,
        segment_seconds: float | None = None,
    ) -> SSGANAttack:
        """Load the generator of a run written by ``ssgan train gan`` (safetensors + JSON).

        ``segment_seconds``: cut clips into segments of this length at attack time instead of
        the training crop's ``t1`` (G is fully convolutional; each segment is still scaled to
        its own SNR). ``None``: ``t1``, the paper's SIP.

        ``quietest``, ``search_*`` and ``refine_*``: the attack-time steps that query the
        victim (see the class).

        Raises ``CheckpointError`` naming the file for a missing run, a checkpoint of another
        kind or weights that do not fit the recorded generator shape.
        """
        if segment_seconds is not None:
            check_positive("segment_seconds", segment_seconds)
        options: dict[str, Any] = {
            "overlap": overlap,
            "chunk_segments": chunk_segments,
            "precision": precision,
            "quietest": quietest,
            "search_min_snr_db": search_min_snr_db,
            "search_max_snr_db": search_max_snr_db,
            "search_steps": search_steps,
            "refine_steps": refine_steps,
            "refine_gamma": refine_gamma,
        }
        generator, t1 = load_generator(run_dir, checkpoint)
        segment_seconds = t1 if segment_seconds is None else segment_seconds
        attack = cls(segment_seconds=segment_seconds, spec=generator.spec, **options)
        attack.generator = generator.to(device).eval()
        attack._fitted = True
        return attack

    # ------------------------------------------------------------------ LearnedAttack state

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def state_tensors(self) -> dict[str, Tensor]:
        return {f"G.{k}": v for k, v in self.generator.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        self.generator.load_state_dict(unflatten_state_dict(tensors, "G"), strict=True)
        self.generator.eval()
        self._fitted = True

    def _fit(
        self,
        model: nn.Module,
        clips: list[Tensor],
        labels: Tensor,
        generator: torch.Generator,
        progress: bool,
    ) -> None:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        config = fit_config(self.profile, self.spec, self.segment_seconds, seed, self.epochs)
        state = fit_gan(config, model, (clips, labels.tolist()), progress=progress)
        self.generator = state.G.eval()
        self._fitted = True

    # ------------------------------------------------------------------ the attack

    def perturbation(
        self, x: Tensor, grad: Tensor | None = None, target: Tensor | None = None
    ) -> Tensor:
        """``delta (batch, time)`` for clean ``x (batch, time)`` of any length (no gradient).

        ``grad``: the victim's input gradient at ``x`` (``ssgan.losses.input_gradient``),
        required by a ``grad_input`` generator; the call ``attack(model, x, y)`` computes it.
        ``target (batch,)``: for a class-conditional generator, else None.
        """
        self._require_fitted()
        if x.dim() != 2 or x.shape[1] < 1:
            raise ValueError(f"expected x of shape (batch, time), got {tuple(x.shape)}")
        if self.generator.grad_input and grad is None:
            raise ValueError(
                "this generator reads the victim's input gradient: call attack(model, x, y), "
                "or pass grad=input_gradient(model, x, y)"
            )
        batch, time = x.shape
        length = self.segment_samples
        hop = length // 2 if self.overlap else length
        g = self.generator
        g_device = next(g.parameters()).device
        bf16 = self.precision == "bfloat16"
        with torch.no_grad():
            if self.overlap:
                segs = sip.split_overlapping(x, length, max(hop, 1))
            else:
                segs = sip.split_segments(x, length)
            n = segs.shape[1]
            flat = segs.reshape(batch * n, length)
            flat_grad = None
            if grad is not None and self.generator.grad_input:
                if self.overlap:
                    grad_segs = sip.split_overlapping(grad, length, max(hop, 1))
                else:
                    grad_segs = sip.split_segments(grad, length)
                flat_grad = grad_segs.reshape(batch * n, length)
            seg_target = None if target is None else target.long().repeat_interleave(n)
            out = torch.empty_like(flat)
            for start in range(0, flat.shape[0], self.chunk_segments):
                stop = start + self.chunk_segments
                chunk = flat[start:stop].to(g_device, torch.float32)
                chunk_grad = None if flat_grad is None else flat_grad[start:stop].to(g_device)
                with torch.autocast(g_device.type, dtype=torch.bfloat16, enabled=bf16):
                    aim = None
                    if seg_target is not None:
                        aim = seg_target[start:stop].to(g_device)
                    delta = g(chunk, chunk_grad, target=aim)  # float32 whatever the precision
                out[start : start + chunk.shape[0]] = delta.to(out.device, out.dtype)
            deltas = out.reshape(batch, n, length)
            if self.overlap:
                return sip.overlap_add(deltas, time, max(hop, 1))
            return sip.stitch_segments(deltas, time)

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        if self.num_classes and target is None:
            raise ValueError(
                "this SSGAN generator is class-conditional (targeted): pass target= "
                f"(classes 0..{self.num_classes - 1})"
            )
        grad = None
        if self.generator.grad_input:  # __call__ has frozen the victim
            grad = input_gradient(model, x, y)
        delta = self.perturbation(x, grad, target)
        if self.refine_steps:
            delta = refine_min_norm(
                model,
                x,
                y,
                target,
                delta,
                steps=self.refine_steps,
                gamma=self.refine_gamma,
                init_snr_db=self.snr_db,
                min_snr_db=self.search_min_snr_db,
                snr_convention=self.snr_convention,
            )
        if self.quietest:
            delta = quietest_scale(
                model,
                x,
                y,
                target,
                delta,
                min_snr_db=self.search_min_snr_db,
                max_snr_db=self.search_max_snr_db,
                steps=self.search_steps,
                snr_convention=self.snr_convention,
            )
        return x + delta
