"""How many test clips share a source recording with a training clip, per split.

ESC-50 clips are cut from freesound recordings (``{fold}-{src_file}-{take}-{target}.wav``) and
UrbanSound8K slices from freesound recordings (``{fsID}-{classID}-{occurrenceID}-{sliceID}.wav``).
The official folds keep each recording inside one fold; the paper's random 90/10 split does not,
so a test clip can have a sibling from the same recording in the training set (issue 28, protocol
difference (a)). Reads file names only, decodes no audio.

    python research/split_overlap.py --data ../shared/data \
        --out research/results/split_overlap.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ssgan.data import load_dataset, make_split


def source_of(dataset: str, name: str) -> str:
    stem = Path(name).stem
    parts = stem.split("-")
    return parts[1] if dataset.startswith("esc") else parts[0]


def overlap(dataset: str, root: Path, split: str, seed: int) -> dict[str, object]:
    ds = load_dataset(dataset, root)
    train, test = make_split(ds, split, seed=seed)
    seen = {source_of(dataset, c.name) for c in train.clips}
    shared = sum(source_of(dataset, c.name) in seen for c in test.clips)
    return {
        "dataset": dataset,
        "split": split,
        "seed": seed,
        "n_train": len(train.clips),
        "n_test": len(test.clips),
        "test_with_sibling_in_train": shared,
        "share": shared / len(test.clips) if test.clips else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out")
    args = p.parse_args()
    data = Path(args.data)
    rows = []
    for dataset, root, fold in (
        ("esc10", data / "ESC-50", "fold:5"),
        ("urbansound8k", data / "UrbanSound8K", "fold:2"),
    ):
        rows.append(overlap(dataset, root, fold, 0))
        rows += [overlap(dataset, root, "paper", s) for s in args.seeds]
    for r in rows:
        print(
            f"{r['dataset']:13s} {r['split']:7s} seed {r['seed']}: "
            f"{r['test_with_sibling_in_train']} of {r['n_test']} test clips "
            f"({100 * r['share']:.1f} %) share a recording with "
            f"the {r['n_train']} training clips"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
