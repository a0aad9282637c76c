"""The evaluation stage: an attack scored over a dataset, done when its ``summary.json`` exists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssgan.data import ClipDataset
from ssgan.evaluation import evaluate_attack
from ssgan.models.user_victim import open_victim
from ssgan.reproduce_stages.pipeline import Stage

if TYPE_CHECKING:
    from ssgan.models.user_victim import VictimSpec


def eval_stage(
    out: Path,
    name: str,
    *,
    make: Callable[[], Any],
    victim_dir: Path,
    victim_checkpoint: str = "last",
    victim_spec: VictimSpec | None = None,
    dataset: ClipDataset,
    device: str,
    title: str,
    paper_rows: Sequence[Any],
    meta: dict[str, Any],
    seed: int,
    transforms: Sequence[str] = (),
) -> Stage:

    run_dir = out / name

    def run() -> None:
        victim, vmeta = open_victim(
            victim_dir, device, checkpoint=victim_checkpoint, spec=victim_spec
        )
        evaluate_attack(
            make(),
            victim,
            dataset,
            generator_seed=seed,
            progress=True,
            out_dir=run_dir,
            class_names=vmeta.get("class_names"),
            title=title,
            paper_rows=paper_rows,
            meta={**meta, "victim": str(victim_dir), "device": device},
            transforms=transforms,
        )

    return Stage(f"evaluate {name}", lambda: (run_dir / "summary.json").is_file(), run)
