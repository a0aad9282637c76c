"""Transfer scoring (ssgan.evaluation.transfer, evaluate_attack(transfer_victims=...)): only
clips the target victim gets right count; the matrix and its report; the CLI options."""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from ssgan.cli import build_parser
from ssgan.evaluation import (
    evaluate_attack,
    read_records,
    summarize_transfer,
    transfer_matrix,
)
from ssgan.report.transfer import write_transfer_report

Y = [0, 1, 2, 3]


class TableVictim(nn.Module):
    """Predicts from a table: clip ``i`` is the clip whose first sample is ``i / 100``; a clip
    whose second sample is non-zero is "adversarial" and gets ``adv[i]``, else ``clean[i]``."""

    n_classes = 4

    def __init__(self, clean: list[int], adv: list[int]) -> None:
        super().__init__()
        self.clean, self.adv = torch.tensor(clean), torch.tensor(adv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = (x[:, 0] * 100).round().long()
        pred = torch.where(x[:, 1] != 0, self.adv[i], self.clean[i])
        return 5.0 * nn.functional.one_hot(pred, 4).float()


def mark(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **_: object) -> torch.Tensor:
    """The stand-in attack: writes 0.5 into sample 1 (so every clip is perturbed)."""
    x_adv = x.clone()
    x_adv[:, 1] = 0.5
    return x_adv


class Clip:
    def __init__(self, name: str) -> None:
        self.name = name


class Clips:
    def __init__(self) -> None:
        self.class_names = ["a", "b", "c", "d"]
        x = torch.full((4, 64), 0.3)
        x[:, 0] = torch.arange(4) / 100
        x[:, 1] = 0.0
        self._x = list(x)
        self.clips = [Clip(f"{i}.wav") for i in range(4)]

    def waveforms(self) -> list[torch.Tensor]:
        return list(self._x)

    def labels(self) -> list[int]:
        return list(Y)


def test_only_clips_the_target_victim_gets_right_count(tmp_path) -> None:
    source = TableVictim(clean=Y, adv=[1, 0, 3, 2])  # white box: all four fooled
    # The target gets clip 2 wrong when clean, so its flip (2 -> 3) must not count; clip 1
    # keeps its label. Successes: clips 0 and 3 of the three it gets right.
    target = TableVictim(clean=[0, 1, 0, 3], adv=[1, 1, 3, 0])
    result = evaluate_attack(mark, source, Clips(), batch_size=3, n_examples=0, out_dir=tmp_path,
                             transfer_victims={"target": target, "source": source})  # fmt: skip
    assert result.summary["asr"] == 1.0
    s = result.summary["transfer"]["target"]
    assert (s["n"], s["n_right"], s["n_success"]) == (4, 3, 2)
    assert s["asr"] == 2 / 3
    # Both SNR conventions, each under its own name (box: against x + 1, louder reference).
    assert math.isfinite(s["msnr_db"]) and s["msnr_box_db"] > s["msnr_db"] + 5
    assert result.summary["transfer"]["source"]["asr"] == 1.0  # the diagonal: white box
    assert [r["transfer"]["target"]["success"] for r in result.records] == [
        True, False, False, True
    ]  # fmt: skip
    # The records written hold every decision: the summary is theirs.
    assert summarize_transfer(read_records(tmp_path)) == result.summary["transfer"]


def test_matrix_rows_are_sources_and_the_report_is_written(tmp_path) -> None:
    victims = {
        "v1": TableVictim(clean=Y, adv=[1, 0, 3, 2]),
        "v2": TableVictim(clean=[0, 1, 0, 3], adv=[0, 1, 0, 3]),  # never fooled
    }
    matrix = transfer_matrix({"mark": lambda source: mark}, victims, Clips())
    table = matrix["attacks"]["mark"]
    assert table["asr"] == [[1.0, 0.0], [1.0, 0.0]]
    assert table["n_right"] == [[4, 3], [4, 3]]
    md = write_transfer_report(tmp_path, matrix, title="fake")
    text = md.read_text()
    assert "source \\ target" in text
    assert "MSNR (true, dB):" in text and "MSNR (box, [16], dB):" in text
    assert len(table["msnr_box_db"]) == 2
    assert (tmp_path / "transfer_mark.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "transfer.json").read_text())["victims"] == ["v1", "v2"]


def test_cli_options_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["evaluate", "attack", "--attack", "pgd", "--victim", "v", "--dataset", "esc10",
         "--root", "r", "--out", "o", "--transfer-to", "v2", "v3", "--target", "least-likely"]
    )  # fmt: skip
    assert args.transfer_to == ["v2", "v3"] and args.target == "least-likely"
    args = parser.parse_args(
        ["reproduce", "transfer", "--victims", "a", "b", "c", "--generators", "ga", "gb", "gc",
         "--root", "r", "--out", "o", "--set", "pgd.eps=0.01"]
    )  # fmt: skip
    assert len(args.victims) == 3 and args.settings == ["pgd.eps=0.01"]
