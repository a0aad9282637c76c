"""Before / after the channels_last fix for one-channel maps (``ssgan.models.layout``), one run.

Every model turns its ``(batch, time)`` waveform into a ``(batch, 1, 1, time)`` map. Until the
fix, the models called ``.contiguous(memory_format=torch.channels_last)`` on it, a no-op for one
channel (NCHW strides already count as channels_last then), so oneDNN picked NCHW for the first
convolution and every layer after it. "before" re-creates exactly that by swapping the legacy
helpers back into the model modules; "after" is the library as it is. Both run in this process,
interleaved, on the same random weights and inputs:

- ``generator``: ``SSGANAttack.perturbation`` of ``--clips`` 5 s clips (segmentation, G,
  stitching; no gradient), float32 and bf16 autocast;
- ``envnet step`` / ``envnetv2 step``: forward + backward of a training batch of windows
  (``--batch``, bf16 autocast, train mode; the optimiser step is layout-independent);
- ``discriminator step``: forward + backward of D on ``--batch`` 1.6 s segments (float32);
- ``victim 10-crop grad``: gradient of the clip-level EnvNet victim on one 5 s clip w.r.t. the
  waveform, float32 (one PGD / C&W iteration).

    python benchmarks/layout.py --out bench/layout.json
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import common
import torch

from ssgan.attacks.ssgan import SSGANAttack
from ssgan.models import discriminator as d_module
from ssgan.models import envnet as envnet_module
from ssgan.models.discriminator import Discriminator
from ssgan.models.envnet import EnvNet, EnvNetV2
from ssgan.models.generators import build_generator
from ssgan.models.generators import convolutional as g_module
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.victim import ClipClassifier

_PATCHED = (envnet_module, g_module, d_module)


def _legacy_channels_last(h: torch.Tensor) -> torch.Tensor:
    return h.contiguous(memory_format=torch.channels_last)


def _legacy_waveform_map(x: torch.Tensor) -> torch.Tensor:
    return x[:, None, None, :].contiguous(memory_format=torch.channels_last)


_LEGACY = {"channels_last": _legacy_channels_last, "waveform_map": _legacy_waveform_map}


@contextlib.contextmanager
def legacy_layout() -> Iterator[None]:
    """The models as they were before the fix (ambiguous one-channel strides)."""
    saved = [(m, name, getattr(m, name)) for m in _PATCHED for name in _LEGACY if hasattr(m, name)]
    try:
        for m, name, _ in saved:
            setattr(m, name, _LEGACY[name])
        yield
    finally:
        for m, name, original in saved:
            setattr(m, name, original)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=16, help="5 s clips for the generator (16)")
    p.add_argument("--batch", type=int, default=32, help="training batch of the steps (32)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per setting (median)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--out", metavar="FILE.json", help="write the results as JSON here")
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    return p


def _cases(args: argparse.Namespace) -> list[tuple[str, Callable[[], object]]]:
    torch.manual_seed(0)
    sr = 16_000
    clip_samples = sr if args.quick else 5 * sr
    bf16 = common.bf16_supported()
    fc = 16 if args.quick else 4096

    generator = build_generator(GeneratorSpec()).eval()
    attack = SSGANAttack.from_generator(generator, segment_seconds=1.6)
    clips = torch.randn(args.clips, clip_samples) * 0.1

    def generate(autocast: bool) -> Callable[[], object]:
        def fn() -> object:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return attack.perturbation(clips)

        return fn

    def train_step(net: torch.nn.Module, window: int) -> Callable[[], object]:
        net.train()
        x = torch.randn(args.batch, window) * 0.1

        def fn() -> object:
            net.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = net(x).float().logsumexp(1).mean()
            loss.backward()
            return loss

        return fn

    disc = Discriminator()
    segments = torch.randn(args.batch, round(1.6 * sr)) * 0.1

    def d_step() -> object:
        disc.zero_grad(set_to_none=True)
        disc.logits(segments).square().mean().backward()
        return None

    victim = ClipClassifier(EnvNet(10, fc_width=fc).eval(), window=24_014)
    victim.requires_grad_(False)
    one_clip = torch.randn(1, clip_samples) * 0.1

    def victim_grad() -> object:
        x = one_clip.clone().requires_grad_()
        victim(x)[0, 0].backward()
        return x.grad

    cases: list[tuple[str, Callable[[], object]]] = [
        ("generator fp32", generate(False)),
        ("envnet step", train_step(EnvNet(10, fc_width=fc), 24_014)),
        ("envnetv2 step", train_step(EnvNetV2(10, fc_width=fc), 24_180)),
        ("discriminator step", d_step),
        ("victim 10-crop grad", victim_grad),
    ]
    if bf16:
        cases.insert(1, ("generator bf16", generate(True)))
    return cases


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for name, fn in _cases(args):
        timings: dict[str, float] = {}
        # Interleave before/after so that a load change on the machine hits both alike.
        for label in ("before", "after", "before", "after"):
            ctx = legacy_layout() if label == "before" else contextlib.nullcontext()
            with ctx, torch.set_grad_enabled(True):
                t = common.bench(fn, repeats=args.repeats, warmup=1)["median_s"]
            timings[label] = min(timings.get(label, float("inf")), t)
        rows.append(
            {
                "case": name,
                "before_s": timings["before"],
                "after_s": timings["after"],
                "speedup": timings["before"] / timings["after"],
            }
        )
    print(
        common.table(
            rows,
            [
                ("case", "case", ""),
                ("before_s", "before s", ".4f"),
                ("after_s", "after s", ".4f"),
                ("speedup", "before/after", ".2f"),
            ],
        )
    )
    return {
        "machine": common.machine_info("cpu"),
        "quick": args.quick,
        "settings": vars(args),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.clips, args.batch, args.repeats = 2, 2, 1
    with common.num_threads(args.threads):
        payload = run(args)
    common.write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    common.run_cli(main)
