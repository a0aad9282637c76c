"""Does ``torch.compile`` pay for the generator? Eager against compiled G, one run.

G (the default 36 K-parameter generator, random weights) on ``--segments`` 1.6 s segments, no
gradient, float32 and bf16 autocast (where the CPU has it): the compile time of the first call
and the best of ``--repeats`` warm calls of each. Not used by the library, which runs G eagerly
(docs/performance.md has the figures that decided it). ``--victim-step`` adds the same
comparison for one EnvNet training step (batch 32, bf16 autocast where the CPU has it, forward
+ backward), whose convolution throughput is below the issue's target.

    python benchmarks/compile_generator.py --out benchmarks/results/compile_generator.json

Each row also has ``max_abs_diff``, the largest difference between the eager and the compiled
output (compilation must not change what G computes). ``--quick`` (what
``tests/test_benchmarks.py`` runs): 2 segments, 1 timed call, float32 only; a compilation that
fails there (no C++ compiler, say) is skipped, with ``compiled: false`` and the error in the
JSON, and only the eager figures are measured.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import common
import torch

from ssgan.models.generators import build_generator
from ssgan.models.generators.spec import GeneratorSpec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--segments", type=int, default=64, help="1.6 s segments per call (64)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per setting (best of)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--victim-step", action="store_true", help="also an EnvNet training step")
    p.add_argument("--out", metavar="FILE.json", help="write the results as JSON here")
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    return p


def _victim_step(repeats: int) -> dict[str, Any]:
    from ssgan.models.envnet import EnvNet

    torch.manual_seed(0)
    net = EnvNet(10).train()
    x = torch.randn(32, net.window) * 0.1
    bf16 = common.bf16_supported()

    def step(model: Any) -> None:  # the network or its torch.compile wrapper
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x).float().logsumexp(1).mean()
        loss.backward()

    compiled = torch.compile(net)
    t0 = time.perf_counter()
    step(compiled)
    compile_s = time.perf_counter() - t0
    eager = common.bench(lambda: step(net), repeats=repeats)["min_s"]
    comp = common.bench(lambda: step(compiled), repeats=repeats)["min_s"]
    return {
        "precision": "envnet train step" + (" bf16" if bf16 else " fp32"),
        "eager_s": eager,
        "compiled_s": comp,
        "speedup": eager / comp,
        "compile_seconds": compile_s,
    }


def _compile(g: torch.nn.Module, x: torch.Tensor, quick: bool) -> tuple[Any, float, str | None]:
    """``(compiled G or None, seconds of the first call, error)``; only ``quick`` survives a
    compilation that fails."""
    t0 = time.perf_counter()
    try:
        compiled = torch.compile(g)
        with torch.no_grad():
            compiled(x)
    except Exception as exc:  # inductor without a compiler, an unsupported platform, ...
        if not quick:
            raise
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:500]
    return compiled, time.perf_counter() - t0, None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.segments = min(args.segments, 2)
        args.repeats = min(args.repeats, 1)
    rows: list[dict[str, Any]] = []
    with common.num_threads(args.threads):
        torch.manual_seed(0)
        g = build_generator(GeneratorSpec()).eval()
        x = torch.randn(args.segments, 25_600) * 0.1
        audio_s = x.numel() / 16_000
        compiled, compile_s, error = _compile(g, x, args.quick)
        # bf16 autocast is a second compilation (a guard fails), too slow for --quick.
        bf16 = common.bf16_supported() and not args.quick
        for prec in [False] + ([True] if bf16 else []):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec):
                eager = common.bench(lambda: g(x), repeats=args.repeats)["min_s"]
                row: dict[str, Any] = {
                    "precision": "bf16" if prec else "fp32",
                    "eager_s": eager,
                    "eager_x_realtime": audio_s / eager,
                }
                if compiled is not None:
                    comp = common.bench(lambda: compiled(x), repeats=args.repeats)["min_s"]
                    diff = (compiled(x).float() - g(x).float()).abs().max().item()
                    row.update(
                        compiled_s=comp,
                        compiled_x_realtime=audio_s / comp,
                        speedup=eager / comp,
                        max_abs_diff=diff,
                    )
            rows.append(row)
        if args.victim_step:
            rows.append(_victim_step(args.repeats))
        first = f"not compiled: {error}" if error else f"first compiled call {compile_s:.1f} s"
        print(f"G on {args.segments} x 1.6 s, {torch.get_num_threads()} threads; {first}")
        print(
            common.table(
                rows,
                [
                    ("precision", "precision", ""),
                    ("eager_s", "eager s", ".4f"),
                    ("compiled_s", "compiled s", ".4f"),
                    ("speedup", "eager/compiled", ".2f"),
                ],
            )
        )
        payload = {
            "benchmark": "compile_generator",
            "machine": common.machine_info("cpu"),
            "quick": args.quick,
            "segments": args.segments,
            "repeats": args.repeats,
            "compiled": error is None,
            "compile_error": error,
            "compile_seconds": compile_s if error is None else None,
            "rows": rows,
        }
    common.write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    common.run_cli(main)
