"""``ssgan attack``: write SSGAN adversarial versions of audio files of any length and rate.

For each input ``IN`` it writes ``DIR/<stem>_adv.wav`` (or ``.flac``: the input's format family
unless ``--format`` says otherwise) at the input's own sample rate, channel count, sample format
and level: G perturbs the peak-normalised 16 kHz mono clip, the perturbation is resampled back to
the input's rate and added to every channel of the original samples. One JSON line per input goes
to stdout and to ``DIR/results.jsonl``: the written file's rate and channels, the SNR in dB
(paper eq. 10, on the normalised 16 kHz clip: ``snr_db`` the true one, ``snr_box_db`` in [16]'s
box convention, ``ssgan.metrics``) and, with ``--victim``, the predictions (class
names) on the clean input and on the written file as read back through the normal loader. Inputs
and existing outputs are never overwritten without ``--overwrite`` (an input never, even with
it); every file is written to a temporary name and renamed. Inputs are streamed
(``ssgan.streaming``): decoded, resampled and perturbed in blocks of ``--chunk-segments``
segments, so an hour-long file needs no more memory than a short one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ssgan.cli.common import (
    add_device_arg,
    add_generator_checkpoint_arg,
    add_settings_arg,
    add_victim_checkpoint_arg,
    settings_from_args,
)
from ssgan.errors import AudioError, OutputError
from ssgan.streaming import OUTPUT_FORMATS, output_format

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "attack",
        help="write SSGAN adversarial versions of audio files",
        description="Perturb audio files of any length and sample rate with a trained SSGAN "
        "generator; writes <stem>_adv.wav or .flac at the input's own rate, channels and level, "
        "and results.jsonl.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IN", type=Path, help="audio files")
    parser.add_argument("--generator", required=True, metavar="RUN_G", help="GAN run directory")
    parser.add_argument("--victim", default=None, metavar="RUN_V", help="victim run (predictions)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument(
        "--format",
        choices=sorted(OUTPUT_FORMATS),
        default=None,
        help="output format (default: the input's, flac for .flac inputs, else wav)",
    )
    add_generator_checkpoint_arg(parser)
    add_victim_checkpoint_arg(parser)
    parser.add_argument(
        "--overlap", action="store_true", help="crossfade half-overlapping segments"
    )
    parser.add_argument(
        "--chunk-segments", type=int, default=64, help="segments through G at once (memory)"
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="arithmetic of the generator (bfloat16: faster on CPUs with AVX512-BF16 and GPUs)",
    )
    parser.add_argument(
        "--target",
        default=None,
        metavar="CLASS",
        help="class (name or index) a class-conditional generator (train gan --targeted) aims at",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(quietest=False, refine_steps=0, segment_seconds=None)
    add_settings_arg(
        parser,
        ("attack",),
        default="attack",
        example="attack.overlap=true",
        aliases=f"; keys: {', '.join(_STREAM_SETTINGS)} (the flags of the same names)",
    )
    add_device_arg(parser)
    parser.set_defaults(func=run, data_parallel=True)  # torchrun: docs/distributed.md


#: What ``--set attack.KEY=VALUE`` may change here, with the type of each. ``quietest`` and
#: ``refine_steps`` are the attack-time steps that query the victim (docs/recipe.md): they need
#: ``--victim``, and such a file is attacked in memory rather than streamed.
_STREAM_SETTINGS: dict[str, type] = {
    "overlap": bool,
    "chunk_segments": int,
    "precision": str,
    "quietest": bool,
    "refine_steps": int,
    "segment_seconds": float,
}


def _apply_settings(args: argparse.Namespace) -> None:
    """``--set attack.KEY=VALUE`` onto the flags of the same name (``ValueError`` if bad)."""
    from ssgan.config import convert_value, parse_key_values

    for key, raw in parse_key_values(settings_from_args(args)["attack"]).items():
        if key not in _STREAM_SETTINGS:
            raise ValueError(
                f"--set attack.{key}: not a setting of `ssgan attack`; known: "
                f"{', '.join(_STREAM_SETTINGS)}"
            )
        value = convert_value(key, raw, _STREAM_SETTINGS[key])
        if key == "precision" and value not in ("float32", "bfloat16"):
            raise ValueError(f"--set attack.precision={raw!r}: expected float32 or bfloat16")
        if key == "refine_steps" and value < 0:
            raise ValueError(f"--set attack.refine_steps={raw!r}: expected a count >= 0")
        setattr(args, key, value)
    if (args.quietest or args.refine_steps) and args.victim is None:
        raise ValueError(
            "--set attack.quietest / attack.refine_steps query the victim: pass --victim RUN_V"
        )


def plan_outputs(
    inputs: list[Path], out_dir: Path, *, overwrite: bool, fmt: str | None = None
) -> list[Path]:
    """``out_dir/<stem>_adv.<wav|flac>`` for each input (``fmt``, else the input's format
    family); ``OutputError`` for any unsafe target."""
    resolved_inputs = {p.resolve() for p in inputs}
    outputs: list[Path] = []
    seen: dict[Path, Path] = {}
    for path in inputs:
        target = out_dir / f"{path.stem}_adv.{output_format(path, fmt)}"
        key = target.resolve()
        if key in resolved_inputs:
            raise OutputError(f"{target}: would overwrite an input file")
        if key in seen:
            raise OutputError(f"{target}: inputs {seen[key]} and {path} map to the same output")
        if target.exists() and not overwrite:
            raise OutputError(f"{target}: exists (use --overwrite to replace it)")
        seen[key] = path
        outputs.append(target)
    results = out_dir / "results.jsonl"
    if results.resolve() in resolved_inputs:
        raise OutputError(f"{results}: would overwrite an input file")
    if results.exists() and not overwrite:
        raise OutputError(f"{results}: exists (use --overwrite to replace it)")
    return outputs


def run(args: argparse.Namespace) -> int:
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.io import atomic_write_text
    from ssgan.streaming import attack_file

    try:
        _apply_settings(args)
    except ValueError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 2
    if args.chunk_segments < 1:
        message = f"--chunk-segments={args.chunk_segments}: must be >= 1"
        print(f"ssgan: error: {message}", file=sys.stderr)
        return 2
    from ssgan import distributed

    def plan() -> list[Path]:
        if args.out.exists() and not args.out.is_dir():
            raise OutputError(f"{args.out}: exists and is not a directory")
        planned = plan_outputs(list(args.inputs), args.out, overwrite=args.overwrite,
                               fmt=args.format)  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        return planned

    # Under torchrun rank 0 checks every target once; each rank then attacks its share of the
    # files (inputs[rank::world]) and rank 0 writes results.jsonl in the inputs' order.
    outputs = distributed.on_main(plan)
    attack = SSGANAttack.from_run(
        args.generator,
        checkpoint=args.generator_checkpoint,
        overlap=args.overlap,
        chunk_segments=args.chunk_segments,
        device=args.device,
        precision=args.precision,
        quietest=args.quietest,
        refine_steps=args.refine_steps,
        segment_seconds=args.segment_seconds,
    )
    victim = None
    class_names: list[str] | None = None
    if args.victim is not None:
        from ssgan.models.victim import load_victim

        victim, meta = load_victim(args.victim, args.device, checkpoint=args.victim_checkpoint)
        names = meta.get("class_names")
        class_names = list(names) if isinstance(names, list) else None

    target_class = _target_class(args, attack, class_names)

    def name(index: int) -> Any:
        return class_names[index] if class_names and 0 <= index < len(class_names) else index

    lines: list[tuple[int, str]] = []
    failed = 0
    pairs = distributed.shard(list(enumerate(zip(args.inputs, outputs, strict=True))))
    bar = tqdm(pairs, desc="attack", unit="file", disable=not distributed.is_main())
    for position, (path, target) in bar:
        record: dict[str, Any] = {"input": str(path), "output": str(target)}
        try:
            # Two streaming passes: memory does not grow with the file's length.
            result = attack_file(attack, path, target, victim=victim, target_class=target_class)
        except (AudioError, OutputError) as exc:
            failed += 1
            record["error"] = str(exc)
            tqdm.write(f"ssgan: error: {exc}", file=sys.stderr)
        except OSError as exc:  # disk full, permissions: the file is skipped, never half-written
            failed += 1
            record["error"] = f"{target}: cannot write ({exc.strerror or exc})"
            tqdm.write(f"ssgan: error: {record['error']}", file=sys.stderr)
        else:
            record["seconds"] = result.seconds
            record["sample_rate"] = result.sample_rate
            record["channels"] = result.channels
            record["snr_db"] = result.snr_db
            record["snr_box_db"] = result.snr_box_db
            if result.clean_logits is not None and result.adv_logits is not None:
                clean = int(result.clean_logits.argmax(1)[0])
                adv = int(result.adv_logits.argmax(1)[0])
                record.update(clean_pred=name(clean), adv_pred=name(adv), flipped=clean != adv)
        line = json.dumps(record)
        lines.append((position, line))
        tqdm.write(line, file=sys.stdout)
    gathered = sorted(item for part in distributed.all_gather(lines) for item in part)
    if distributed.is_main():
        text = "".join(line + "\n" for _, line in gathered)
        atomic_write_text(args.out / "results.jsonl", text)
    failed = int(sum(distributed.all_reduce_sum([failed])))
    distributed.barrier("waiting for rank 0 to write results.jsonl")
    return 1 if failed else 0


def _target_class(
    args: argparse.Namespace, attack: Any, class_names: list[str] | None
) -> int | None:
    """``--target`` as a class index, checked against the generator (class-conditional or not)."""
    from ssgan.errors import SSGANError
    from ssgan.io import load_checkpoint
    from ssgan.targets import resolve_class

    if attack.num_classes and args.target is None:
        raise SSGANError(f"{args.generator}: a class-conditional generator needs --target CLASS")
    if args.target is None:
        return None
    if not attack.num_classes:
        raise SSGANError(f"{args.generator}: not class-conditional (train gan --targeted); "
                         "drop --target")  # fmt: skip
    if class_names is None:  # no --victim: the class names the GAN run recorded
        _, meta, _ = load_checkpoint(args.generator, args.generator_checkpoint)
        names = meta.get("class_names")
        class_names = list(names) if isinstance(names, list) else None
    names = class_names or [str(i) for i in range(attack.num_classes)]
    try:
        return resolve_class(args.target, names)
    except ValueError as exc:
        raise SSGANError(f"--target: {exc}") from None
