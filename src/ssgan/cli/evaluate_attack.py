"""``ssgan evaluate attack --attack NAME ... --victim RUN_V --dataset ... --out DIR``.

Runs a registered attack over one side of
a split and writes ``records.jsonl``, ``summary.json``, ``report.md`` and ``report.html`` to
``--out`` (see ``ssgan.evaluation``). Learned attacks load their state with ``--generator``: an
``ssgan train gan`` run for ``ssgan``, a directory written by ``attack.save`` for the others.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssgan.cli.common import (
    add_dataset_args,
    add_device_arg,
    add_generator_checkpoint_arg,
    add_settings_arg,
    add_victim_args,
    dataset_from_args,
    open_victim_from_args,
    progress_bar,
    resolve_split,
    settings_from_args,
    victim_class_names,
)
from ssgan.errors import DatasetError, OutputError, SSGANError

if TYPE_CHECKING:
    from ssgan.transforms import Transform

# Files of a finished evaluation; any of them in --out means "results exist".
_RESULT_FILES = ("summary.json", "records.jsonl", "report.html", "report.md")


def register(sub: argparse._SubParsersAction) -> None:
    from ssgan.attacks import ATTACKS

    parser = sub.add_parser(
        "attack",
        help="run an attack over a dataset split: ACC, ASR, MSNR, time; records and a report",
        description="Attack every clip of one side of a split against a trained victim and "
        "write per-clip records, a summary and a Markdown + self-contained HTML report.",
    )
    parser.add_argument("--attack", required=True, choices=sorted(ATTACKS), help="attack name")
    add_settings_arg(parser, ("attack",), default="attack", example="attack.eps=0.002")
    parser.add_argument(
        "--generator",
        default=None,
        metavar="RUN_G",
        help="learned attack state: an `ssgan train gan` run (ssgan) or an attack.save directory",
    )
    add_victim_args(parser)
    add_generator_checkpoint_arg(parser)
    add_dataset_args(parser, victim_split=True)
    parser.add_argument("--subset", choices=("train", "test"), default="test")
    parser.add_argument("--limit", type=int, default=None, help="attack only the first N clips")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the attack's generator")
    parser.add_argument(
        "--target",
        default=None,
        metavar="{random,least-likely,CLASS}",
        help="targeted: aim every clip at a random other class, its least likely class, or "
        "CLASS (name or index); writes the (true x target) success matrix",
    )
    parser.add_argument(
        "--transfer-to",
        nargs="+",
        default=[],
        metavar="RUN",
        help="also score the adversarial clips on these victims (runs, or model files with "
        "their settings in the JSON file beside them) (transfer.json)",
    )
    parser.add_argument("--examples", type=int, default=4, help="examples shown in the report")
    parser.add_argument(
        "--transform",
        action="append",
        default=[],
        metavar="NAME[:K=V,...]",
        help="also score the clips after this channel transform (repeatable), e.g. mp3:kbps=64, "
        "resample:rate_hz=8000, noise:snr_db=30, reverb:rt60_s=0.5 (docs/robustness.md)",
    )
    add_device_arg(parser)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results")
    parser.set_defaults(func=run, data_parallel=True)  # torchrun: docs/distributed.md


def _kwargs_for(func: Any, pairs: dict[str, str], what: str) -> dict[str, Any]:
    """Convert ``key=value`` strings by ``func``'s annotations (as ``make_attack`` does)."""
    from ssgan.config import convert_value

    params = {p for p in inspect.signature(func).parameters if p not in ("self", "cls")}
    hints = typing.get_type_hints(func)
    out: dict[str, Any] = {}
    for key, raw in pairs.items():
        key = key.replace("-", "_")
        if key not in params or key in ("run_dir", "directory", "device"):
            known = ", ".join(sorted(params - {"run_dir", "directory", "device"}))
            raise ValueError(f"unknown setting {key!r} for {what}; known: {known}")
        out[key] = convert_value(key, raw, hints.get(key, str))
    return out


def build_attack(args: argparse.Namespace) -> Any:
    """The attack of ``--attack``, set by ``--set attack.KEY=VALUE`` or loaded from
    ``--generator``."""
    from ssgan.attacks import LearnedAttack, attack_class, make_attack
    from ssgan.config import parse_key_values

    pairs = parse_key_values(settings_from_args(args)["attack"])
    cls = attack_class(args.attack)
    if args.attack == "ssgan":
        if args.generator is None:
            raise SSGANError("--attack ssgan needs --generator RUN_G (an `ssgan train gan` run)")
        from_run = cls.from_run  # type: ignore[attr-defined]
        kwargs = _kwargs_for(from_run, pairs, "attack 'ssgan' (loaded with --generator)")
        return from_run(
            args.generator, checkpoint=args.generator_checkpoint, device=args.device, **kwargs
        )
    if args.generator is not None:
        if not issubclass(cls, LearnedAttack):
            raise SSGANError(f"--generator is only for learned attacks; {args.attack!r} is not one")
        if pairs:
            raise SSGANError(
                "--set attack.KEY cannot change a loaded attack; its settings are saved"
            )
        return cls.load(args.generator)
    attack = make_attack(args.attack, pairs)
    if isinstance(attack, LearnedAttack) and not attack.is_fitted:
        raise SSGANError(
            f"attack {args.attack!r} is learned and not fitted: pass --generator DIR "
            "(a directory written by its save())"
        )
    return attack


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory")
    existing = [name for name in _RESULT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise OutputError(
            f"{out}: already holds results ({', '.join(existing)}); pass --overwrite to replace "
            "them or choose another --out"
        )


def run(args: argparse.Namespace) -> int:
    from ssgan.data.splits import make_split
    from ssgan.evaluation import evaluate_attack, resolve_transforms
    from ssgan.io import json_safe
    from ssgan.paper import paper_rows_for

    for name in ("batch_size", "examples"):
        if getattr(args, name) < (1 if name == "batch_size" else 0):
            raise SSGANError(f"--{name.replace('_', '-')} {getattr(args, name)}: too small")
    if args.limit is not None and args.limit < 1:
        raise SSGANError(f"--limit {args.limit}: must be at least 1")
    out: Path = args.out
    _check_out(out, args.overwrite)
    try:
        transforms = resolve_transforms(args.transform)
    except ValueError as exc:
        raise SSGANError(f"--transform: {exc}") from None
    try:
        attack = build_attack(args)
    except ValueError as exc:  # a bad --set attack.KEY: the user's to fix
        raise SSGANError(str(exc)) from None
    victim, victim_meta = open_victim_from_args(args)
    resolve_split(args, victim_meta)

    dataset = dataset_from_args(args)
    train, test = make_split(dataset, args.split, seed=args.split_seed)
    part = train if args.subset == "train" else test
    if args.limit is not None:
        part = part.subset(range(min(args.limit, len(part))))
    if len(part) == 0:
        raise DatasetError(
            f"{dataset.name}: the {args.subset} side of split {args.split!r} is empty"
        )
    victim_classes = victim_class_names(args.victim, victim_meta, list(part.class_names))
    with progress_bar(len(part), f"loading {part.name}") as bar:
        part.waveforms(progress=bar.update)

    from ssgan import distributed

    if args.target is not None:
        if args.transfer_to:
            raise SSGANError("--transfer-to scores untargeted attacks; drop --target")
        names = victim_classes or part.class_names
        return _run_targeted(args, attack, victim, part, names, out, transforms)
    transfer_victims = _load_transfer_victims(args, victim_classes or list(part.class_names))
    config = attack.config() if hasattr(attack, "config") else {}
    meta = {
        "attack": args.attack,
        "attack_config": config,
        "generator_run": str(args.generator) if args.generator else None,
        "victim": str(args.victim),
        "victim_checkpoint": args.victim_checkpoint,
        "dataset": dataset.name,
        "root": str(args.root),
        "split": args.split,
        "split_seed": args.split_seed,
        "subset": args.subset,
        "limit": args.limit,
    }
    t1 = float(getattr(attack, "segment_seconds", 1.6))
    rows = paper_rows_for(args.attack, dataset=args.dataset, subset=args.subset, t1_seconds=t1)
    result = evaluate_attack(
        attack,
        victim,
        part,
        generator_seed=args.seed,
        batch_size=args.batch_size,
        progress=True,
        out_dir=out,
        class_names=victim_classes or None,
        n_examples=args.examples,
        title=f"{args.attack} against {Path(args.victim).name} on {dataset.name} "
        f"({args.split}, {args.subset})",
        paper_rows=rows,
        meta=meta,
        transforms=transforms,
        transfer_victims=transfer_victims,
    )
    s = result.summary
    if not distributed.is_main():
        return 0  # rank 0 writes and prints
    if transfer_victims:
        _write_transfer(args, s["transfer"], out)
    if args.json:
        print(json.dumps(json_safe(s), indent=2, sort_keys=True))
    else:
        from ssgan.report.markdown import format_value as fmt

        print(
            f"{s['n']} clips: ACC {fmt(s['acc'], 'pct')} %, ASR {fmt(s['asr'], 'pct')} % "
            f"(after 16-bit PCM {fmt(s['asr_pcm16'], 'pct')} %), "
            f"MSNR true {fmt(s['msnr_db'], 'db')} dB (box [16] {fmt(s['msnr_box_db'], 'db')} dB), "
            f"{fmt(s['seconds_per_example'], 's')} s per example on {s['device']}"
        )
        for spec, v in s.get("transforms", {}).items():
            print(
                f"after {spec}: ACC {fmt(v['acc'], 'pct')} %, ASR {fmt(v['asr'], 'pct')} % "
                f"(kept {fmt(v['kept'], 'pct')} % of the ASR)"
            )
        print(f"report: {result.report_html}", file=sys.stdout)
    return 0


def _load_transfer_victims(args: argparse.Namespace, class_names: list[str]) -> dict[str, Any]:
    """``--transfer-to`` victims loaded (same checkpoint choice), refusing other class lists."""
    from ssgan.models.user_victim import open_victim

    victims: dict[str, Any] = {}
    for run in args.transfer_to:
        model, meta = open_victim(run, args.device, checkpoint=args.victim_checkpoint)
        names = list(meta.get("class_names") or [])
        if names and names != list(class_names):
            raise DatasetError(f"--transfer-to {run}: trained on other classes than --victim")
        victim_class_names(run, meta, class_names)
        victims[str(run)] = model
    return victims


def _write_transfer(args: argparse.Namespace, scores: dict[str, Any], out: Path) -> None:
    """``transfer.json``: each ``--transfer-to`` victim's figures (``ssgan.evaluation.transfer``)
    beside the source victim's name; one line each on stdout."""
    from ssgan.io import atomic_write_json, json_safe
    from ssgan.report.markdown import format_value as fmt

    atomic_write_json(out / "transfer.json", json_safe({"source": str(args.victim), **scores}))
    for run, s in scores.items():
        print(f"transfer to {run}: ASR {fmt(s['asr'], 'pct')} % of {s['n_right']} clips it "
              f"gets right, MSNR true {fmt(s['msnr_db'], 'db')} dB (box [16] "
              f"{fmt(s['msnr_box_db'], 'db')} dB)")  # fmt: skip


def _run_targeted(
    args: argparse.Namespace,
    attack: Any,
    victim: Any,
    part: Any,
    names: list[str],
    out: Path,
    transforms: Sequence[Transform],
) -> int:
    """``--target``: the targeted evaluation (ssgan.evaluation.targeted) instead of ASR."""
    from ssgan import distributed
    from ssgan.evaluation import evaluate_targeted
    from ssgan.io import json_safe
    from ssgan.report.markdown import format_value as fmt
    from ssgan.targets import parse_target

    try:
        target = parse_target(args.target, names)
    except ValueError as exc:
        raise SSGANError(f"--target: {exc}") from None
    meta = {"attack": args.attack, "victim": str(args.victim), "dataset": part.name,
            "split": args.split, "subset": args.subset, "limit": args.limit,
            "attack_config": attack.config() if hasattr(attack, "config") else {}}  # fmt: skip
    result = evaluate_targeted(attack, victim, part, target=target, generator_seed=args.seed,
                               batch_size=args.batch_size, progress=True, out_dir=out,
                               class_names=names, meta=meta, transforms=transforms)  # fmt: skip
    s = result.summary
    if not distributed.is_main():
        return 0  # rank 0 writes and prints
    if args.json:
        print(json.dumps(json_safe(s), indent=2, sort_keys=True))
    else:
        print(f"{s['n']} clips ({s['n_skipped']} skipped): targeted success "
              f"{fmt(s['success_rate'], 'pct')} % of {s['n_right']} right clips (after 16-bit "
              f"PCM {fmt(s['success_rate_pcm16'], 'pct')} %), MSNR true "
              f"{fmt(s['msnr_db'], 'db')} dB (box [16] {fmt(s['msnr_box_db'], 'db')} dB); "
              f"report: {result.report_md}")  # fmt: skip
    return 0
