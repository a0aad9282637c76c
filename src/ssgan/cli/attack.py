"""``ssgan attack``: write SSGAN adversarial versions of audio files of any length and rate.

Inputs are files, folders (walked recursively for every format soundfile reads) and quoted globs
(``'clips/**/*.wav'``, expanded here); ``ssgan.attack_inputs`` plans them. A file given directly
goes to ``DIR/<stem>_adv.wav`` (or ``.flac``: the input's format family unless ``--format`` says
otherwise); a file found under a folder keeps its place in a mirrored tree (``IN/a/b.mp3`` to
``DIR/a/b_adv.wav``); two inputs that map to one output are an error naming both. Each output has
the input's own sample rate, channel count, sample format and level: G perturbs the
peak-normalised 16 kHz mono clip, the perturbation is resampled back to the input's rate and added
to every channel of the original samples. One JSON line per input goes to stdout and is appended
(fsynced) to ``DIR/results.jsonl`` as soon as the file is done: input, output, the written file's
rate and channels, the SNR in dB (paper eq. 10, on the normalised 16 kHz clip: ``snr_db`` the true
one, ``snr_box_db`` in [16]'s box convention, ``ssgan.metrics``), the time it took (``time_s``)
and, with ``--victim``, the predictions (class names) on the clean input and on the written file
as read back through the normal loader; a file that cannot be attacked (corrupt, empty, silent,
...) is a record with its ``"error"`` and the others go on (exit status 1). A last
``{"summary": ...}`` line counts every file of the command, done now or before.

Rerunning the same command resumes: an output that exists with a complete record in
``results.jsonl`` is skipped; ``--overwrite`` redoes every file. An input is never overwritten,
nor an existing file that no earlier run here wrote (without ``--overwrite``); every output is
written to a temporary name and renamed. Inputs are streamed (``ssgan.streaming``): decoded,
resampled and perturbed in blocks of ``--chunk-segments`` segments, so an hour-long file needs no
more memory than a short one. Under torchrun rank ``r`` attacks its share of the files still to do
and appends to ``DIR/results.rank<r>.jsonl``; rank 0 merges them into ``results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ssgan.attack_inputs import (
    RESULTS_NAME,
    PlannedFile,
    ResumePlan,
    part_path,
    plan_attack,
    remove_stale_temps,
    resume_plan,
)
from ssgan.cli.common import (
    add_device_arg,
    add_generator_checkpoint_arg,
    add_settings_arg,
    add_victim_args,
    open_victim_from_args,
    settings_from_args,
)
from ssgan.errors import AudioError, OutputError, SSGANError
from ssgan.models.victim import ClipClassifier
from ssgan.streaming import OUTPUT_FORMATS

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "attack",
        help="write SSGAN adversarial versions of audio files",
        description="Perturb audio files of any length and sample rate with a trained SSGAN "
        "generator; writes <stem>_adv.wav or .flac at the input's own rate, channels and level "
        "(folders: a mirrored tree) and results.jsonl. Rerunning resumes: done files are skipped.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="IN",
        help="audio files, folders (walked recursively) or quoted globs ('clips/**/*.wav')",
    )
    parser.add_argument("--generator", required=True, metavar="RUN_G", help="GAN run directory")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument(
        "--format",
        choices=sorted(OUTPUT_FORMATS),
        default=None,
        help="output format (default: the input's, flac for .flac inputs, else wav)",
    )
    add_generator_checkpoint_arg(parser)
    add_victim_args(
        parser, required=False, help="victim whose predictions are reported: a run, a .pt2 or "
        "TorchScript file, or package.module:function",
    )  # fmt: skip
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
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every file (default: skip those results.jsonl records as done)",
    )
    parser.set_defaults(quietest=False, refine_steps=0, segment_seconds=None)
    add_settings_arg(
        parser,
        ("attack",),
        default="attack",
        example="attack.overlap=true",
        note=f"; keys: {', '.join(_STREAM_SETTINGS)} (the flags of the same names)",
    )
    add_device_arg(parser)
    parser.set_defaults(func=run, data_parallel=True)  # torchrun: docs/distributed.md


#: What ``--set attack.KEY=VALUE`` may change here, with the type of each. ``quietest`` and
#: ``refine_steps`` are the attack-time steps that query the victim (docs/notebook/recipe.md):
#: they need ``--victim``, and such a file is attacked in memory rather than streamed.
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


def _plan(args: argparse.Namespace) -> tuple[list[PlannedFile], ResumePlan]:
    """The files to attack with their outputs, and what an earlier run here finished."""
    if args.out.exists() and not args.out.is_dir():
        raise OutputError(f"{args.out}: exists and is not a directory")
    plan = plan_attack(args.inputs, args.out, fmt=args.format)
    return plan, resume_plan(plan, args.out, overwrite=args.overwrite)


def _start_ledger(out: Path, plan: list[PlannedFile], resume: ResumePlan) -> None:
    """Rank 0, before any file: ``results.jsonl`` holds the records kept (no torn line, no old
    summary, the ranks' part files merged), so each finished file can be appended to it."""
    from ssgan.io import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(plan)
    kept = [resume.done[i] for i in sorted(resume.done)] + resume.other
    atomic_write_text(out / RESULTS_NAME, "".join(json.dumps(r) + "\n" for r in kept))
    for part in out.glob("results.rank*.jsonl"):
        part.unlink()


def _summary(
    records: list[dict[str, Any]], *, done: int, skipped: int, other: int
) -> dict[str, Any]:
    """The last line of ``results.jsonl``: counts and means over every file of the command."""
    from ssgan.io import json_safe

    ok = [r for r in records if "error" not in r]

    def mean(key: str) -> float | None:
        values = [float(r[key]) for r in ok if isinstance(r.get(key), int | float)]
        values = [v for v in values if math.isfinite(v)]
        return math.fsum(values) / len(values) if values else None

    judged = [r for r in ok if "flipped" in r]
    summary = {
        "files": len(records),
        "done": done,
        "skipped": skipped,
        "failed": len(records) - len(ok),
        "flipped": sum(bool(r["flipped"]) for r in judged) if judged else None,
        "mean_snr_db": mean("snr_db"),
        "mean_snr_box_db": mean("snr_box_db"),
        "time_s": math.fsum(float(r.get("time_s") or 0.0) for r in records),
        "earlier_records": other,
    }
    return {"summary": json_safe(summary)}


def run(args: argparse.Namespace) -> int:
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.io import append_json_line, atomic_write_text
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

    # Under torchrun rank 0 plans and checks every target once; each rank then attacks its share
    # of the files still to do (todo[rank::world]) and rank 0 merges the records.
    plan, resume = distributed.on_main(lambda: _plan(args))
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
    victim: ClipClassifier | None = None
    class_names: list[str] | None = None
    if args.victim is not None:
        model, meta = open_victim_from_args(args)
        if not isinstance(model, ClipClassifier):  # files are streamed crop by crop
            raise SSGANError(
                f"{args.victim}: `ssgan attack` streams files through a victim with a fixed "
                "16 kHz window; give the model's window (--victim-window) or use `ssgan evaluate "
                "attack`"
            )
        victim = model
        names = meta.get("class_names")
        class_names = list(names) if isinstance(names, list) else None

    target_class = _target_class(args, attack, class_names)

    def name(index: int) -> Any:
        return class_names[index] if class_names and 0 <= index < len(class_names) else index

    distributed.on_main(lambda: _start_ledger(args.out, plan, resume))
    todo = [i for i in range(len(plan)) if i not in resume.done]
    main_rank = distributed.is_main()
    if main_rank:
        print(f"{len(plan)} files: {len(resume.done)} already done (skipped), {len(todo)} to "
              f"attack", file=sys.stderr)  # fmt: skip
    # One process appends to results.jsonl itself; under torchrun each rank to its own part file.
    ledger = (
        args.out / RESULTS_NAME
        if distributed.world_size() == 1
        else part_path(args.out, distributed.rank())
    )
    new: list[tuple[int, dict[str, Any]]] = []
    failed = 0
    bar = tqdm(distributed.shard(todo), desc="attack", unit="file", disable=not main_rank)
    for index in bar:
        path, target = plan[index].input, plan[index].output
        record: dict[str, Any] = {"input": str(path), "output": str(target)}
        start = time.perf_counter()
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
        record["time_s"] = time.perf_counter() - start
        append_json_line(ledger, record)  # kept if the run is cut off: a rerun skips the file
        new.append((index, record))
        tqdm.write(json.dumps(record), file=sys.stdout)
    gathered = dict(item for part in distributed.all_gather(new) for item in part)
    if main_rank:
        records = {**resume.done, **gathered}
        ordered = [records[i] for i in range(len(plan)) if i in records]
        summary = _summary(ordered, done=sum("error" not in r for r in gathered.values()),
                           skipped=len(resume.done), other=len(resume.other))  # fmt: skip
        text = "".join(json.dumps(r) + "\n" for r in [*ordered, *resume.other, summary])
        atomic_write_text(args.out / RESULTS_NAME, text)
        if distributed.world_size() > 1:
            for rank in range(distributed.world_size()):
                part_path(args.out, rank).unlink(missing_ok=True)
        print(json.dumps(summary), file=sys.stdout)
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
