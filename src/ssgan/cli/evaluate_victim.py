"""``ssgan evaluate victim``: clip-level accuracy, per-class accuracy and confusion matrix."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from ssgan.cli.common import (
    add_dataset_args,
    add_device_arg,
    add_victim_args,
    dataset_from_args,
    open_victim_from_args,
    resolve_split,
    victim_class_names,
)
from ssgan.data import make_split
from ssgan.io import atomic_write_json, atomic_write_text
from ssgan.models.victim import predict_clips


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "victim",
        help="clean clip-level accuracy of a trained victim",
        description="Clip-level accuracy of a victim (a run, or a model of your own) on a dataset "
        "split's test set.",
    )
    add_victim_args(parser)
    add_dataset_args(parser, victim_split=True)
    add_device_arg(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--out", default=None, help="write summary.json and confusion.csv here")
    parser.set_defaults(func=run)


def confusion_matrix(labels: torch.Tensor, pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(n_classes, n_classes)`` counts; row = true class, column = predicted class."""
    flat = labels.long() * n_classes + pred.long()
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def summarize(confusion: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """Accuracy = trace / total; per-class accuracy = diagonal / row sum (recall)."""
    total = int(confusion.sum())
    rows = confusion.sum(dim=1)
    per_class = {
        name: (float(confusion[i, i]) / int(rows[i]) if int(rows[i]) else None)
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(confusion.trace()) / total if total else None,
        "n_clips": total,
        "per_class_accuracy": per_class,
    }


def confusion_csv(confusion: torch.Tensor, class_names: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true\\predicted", *class_names])
    for name, row in zip(class_names, confusion.tolist(), strict=True):
        writer.writerow([name, *row])
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    model, meta = open_victim_from_args(args)
    resolve_split(args, meta)
    dataset = dataset_from_args(args)
    class_names = victim_class_names(args.victim, meta, list(dataset.class_names))
    _, test = make_split(dataset, args.split, seed=args.split_seed)
    labels = torch.tensor(test.labels(), dtype=torch.long)
    pred, _ = predict_clips(model, test.waveforms(), batch_size=args.batch_size, device=args.device)
    confusion = confusion_matrix(labels, pred, len(class_names))
    summary = summarize(confusion, class_names)
    summary.update(
        victim=str(args.victim),
        checkpoint=args.victim_checkpoint if meta.get("format") == "run" else None,
        recorded_accuracy=meta.get("accuracy"),
        dataset=dataset.name,
        split=args.split,
    )
    if args.out:
        out = Path(args.out)
        atomic_write_json(out / "summary.json", summary)
        atomic_write_text(out / "confusion.csv", confusion_csv(confusion, class_names))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"accuracy {summary['accuracy']:.4f} on {summary['n_clips']} clips")
        for name, acc in summary["per_class_accuracy"].items():
            print(f"  {name:24s} {'-' if acc is None else f'{acc:.3f}'}")
        print(confusion_csv(confusion, class_names), end="")
    return 0
