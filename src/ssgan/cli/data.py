"""``ssgan data check DATASET --root DIR [--json]``: decode every clip and report problems."""

from __future__ import annotations

import argparse
import json

from ssgan.cli.common import progress_bar
from ssgan.data import DATASETS, load_dataset
from ssgan.data.check import check_dataset


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="inspect datasets")
    inner = parser.add_subparsers(dest="data_command", required=True)
    check = inner.add_parser(
        "check",
        help="read every file of a dataset; counts, durations and problem files",
        description="Exit status 0 when every clip loads, 1 otherwise.",
    )
    check.add_argument("dataset", choices=DATASETS)
    check.add_argument("--root", required=True, help="dataset folder, or 'bundled'")
    check.add_argument(
        "--csv",
        default=None,
        help="labels CSV (folder datasets; default ROOT/labels.csv, else one subfolder per class)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--no-cache", action="store_true", help="decode without the disk cache")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    ds = load_dataset(args.dataset, args.root, csv_path=args.csv, cache=not args.no_cache)
    with progress_bar(len(ds), f"checking {ds.name}") as bar:
        report = check_dataset(ds, progress=bar.update)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        d = report["duration_seconds"]
        print(f"{report['dataset']} at {report['root']}")
        print(
            f"  {report['clips']} clips load, {report['classes']} classes, "
            f"{report['folds']} folds, delivered at {report['sample_rate']} Hz"
        )
        print("  per fold: " + ", ".join(f"{k}: {v}" for k, v in report["per_fold"].items()))
        print("  per class: " + ", ".join(f"{k}: {v}" for k, v in report["per_class"].items()))
        print(
            f"  duration: min {d['min']:.3f} s, mean {d['mean']:.3f} s, max {d['max']:.3f} s, "
            f"total {d['total'] / 3600:.2f} h"
        )
        if report["problems"]:
            print(f"  {len(report['problems'])} problem file(s):")
            for p in report["problems"]:
                print(f"    {p['file']}: {p['reason']}")
        else:
            print("  no problems")
    return 1 if report["problems"] else 0
