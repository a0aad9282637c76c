"""How many test clips share a source recording with a training clip, per split.

ESC-50 clips are cut from freesound recordings (``{fold}-{src_file}-{take}-{target}.wav``) and
UrbanSound8K slices from freesound recordings (``{fsID}-{classID}-{occurrenceID}-{sliceID}.wav``).
The official folds keep each recording inside one fold; the paper's random 90/10 split does not,
so a test clip can have a sibling from the same recording in the training set (issue 28, protocol
difference (a)). Reads file names only, decodes no audio.

    python research/split_overlap.py --data ../shared/data \
        --out docs/results/split_overlap.json
    # + a victim's accuracy on the test clips with and without a sibling in training
    python research/split_overlap.py --data ../shared/data --victim runs/victim_paper_split \
        --dataset esc10 --split paper
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


def victim_by_sibling(
    run: str, dataset: str, root: Path, split: str, seed: int
) -> dict[str, object]:
    """Accuracy of a victim run on its test clips with and without a same-recording clip in
    training (10-crop protocol, ``last`` checkpoint)."""
    import torch

    from ssgan.models.victim import load_victim

    victim, _ = load_victim(run, checkpoint="last")
    train, test = make_split(load_dataset(dataset, root), split, seed=seed)
    seen = {source_of(dataset, c.name) for c in train.clips}
    groups: dict[str, list[bool]] = {"with sibling": [], "without": []}
    with torch.no_grad():
        for clip, wave, label in zip(test.clips, test.waveforms(), test.labels(), strict=True):
            right = int(victim(wave[None]).argmax(1)) == label
            groups["with sibling" if source_of(dataset, clip.name) in seen else "without"].append(
                right
            )
    return {
        "victim": run,
        "dataset": dataset,
        "split": split,
        "seed": seed,
        **{f"{k}: right / n": f"{sum(v)} / {len(v)}" for k, v in groups.items()},
        "accuracy": sum(sum(v) for v in groups.values()) / len(test.clips),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out")
    p.add_argument("--victim", help="also: this run's accuracy with / without a sibling")
    p.add_argument("--dataset", default="esc10", help="the victim's dataset")
    p.add_argument("--split", default="paper", help="the victim's split")
    args = p.parse_args()
    data = Path(args.data)
    if args.victim:
        root = data / ("ESC-50" if args.dataset.startswith("esc") else "UrbanSound8K")
        print(victim_by_sibling(args.victim, args.dataset, root, args.split, args.seeds[0]))
        return
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
