"""Targets (ssgan.targets) and the targeted evaluation (ssgan.evaluation.targeted): class names,
random / least-likely / fixed targets, the refusal of a target equal to the true label, and the
targeted baselines (PGD, C&W) reaching their targets on the tiny synthetic victim."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import synth_batch
from ssgan.attacks import CW, PGD
from ssgan.evaluation import evaluate_targeted, summarize_targeted
from ssgan.targets import choose_targets, parse_target, resolve_class

NAMES = ["low", "mid", "high", "top"]


class FakeClip:
    def __init__(self, name: str) -> None:
        self.name = name


class SynthDataset:
    def __init__(self, n: int, seed: int) -> None:
        self._x, y = synth_batch(n, 4000, seed=seed)
        self._y = [int(v) for v in y]
        self.class_names = NAMES
        self.clips = [FakeClip(f"c{i}.wav") for i in range(n)]

    def waveforms(self) -> list[torch.Tensor]:
        return list(self._x)

    def labels(self) -> list[int]:
        return list(self._y)


def test_resolve_class_by_name_index_and_case() -> None:
    assert resolve_class("high", NAMES) == 2
    assert resolve_class("TOP", NAMES) == 3
    assert resolve_class("1", NAMES) == 1
    assert resolve_class(0, NAMES) == 0
    assert parse_target("random", NAMES) == "random"
    assert parse_target("mid", NAMES) == 1
    with pytest.raises(ValueError, match=r"unknown class 'dog'.*low, mid"):
        resolve_class("dog", NAMES)
    with pytest.raises(ValueError, match="out of range"):
        resolve_class("4", NAMES)


def test_random_targets_are_uniform_over_the_other_classes() -> None:
    y = torch.arange(4).repeat(2000)
    t = choose_targets("random", y, n_classes=4, generator=torch.Generator().manual_seed(0))
    assert not bool((t == y).any())
    for label in range(4):
        counts = torch.bincount(t[y == label], minlength=4).float()
        assert counts[label] == 0
        others = counts[torch.arange(4) != label]
        assert float(others.min()) > 0.8 * float(others.max())  # ~667 each


def test_least_likely_skips_the_true_class() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0], [9.0, 3.0, 4.0, 8.0]])
    y = torch.tensor([0, 1])  # clip 0's own class has the lowest logit: not a valid target
    assert choose_targets("least-likely", y, n_classes=4, logits=logits).tolist() == [2, 2]


def test_a_target_equal_to_the_true_label_is_refused(tiny_victim) -> None:
    x, y = synth_batch(4, 4000, seed=3)
    with pytest.raises(ValueError, match="target equals the true label"):
        PGD(eps=0.5, steps=1)(tiny_victim, x, y, target=(y + torch.tensor([1, 0, 1, 1])) % 4)
    with pytest.raises(ValueError, match="target equals the true label"):
        choose_targets(2, y, n_classes=4)


@pytest.mark.parametrize(
    "attack",
    [PGD(eps=0.5, steps=10), CW(c=1000.0, lr=0.1, steps=40, binary_search_steps=1)],
    ids=["pgd", "cw"],
)
def test_targeted_baselines_reach_random_targets(attack, tiny_victim, tmp_path) -> None:
    result = evaluate_targeted(attack, tiny_victim, SynthDataset(12, seed=11), target="random",
                               out_dir=tmp_path, meta={"attack": attack.name})  # fmt: skip
    s = result.summary
    assert s["n_right"] >= 10
    # Chance is 1/3 (the victim is pushed somewhere); the baselines must aim, not just flip.
    assert s["success_rate"] >= 0.8, s
    m = s["matrix"]
    assert sum(map(sum, m["n_right"])) == s["n_right"]
    assert all(m["n_right"][i][i] == 0 for i in range(4))  # never aimed at the true class
    assert all(r["target"] != r["label"] for r in result.records)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["n_success"] == s["n_success"]
    assert (tmp_path / "targeted_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "true \\ target" in (tmp_path / "targeted.md").read_text()


def test_fixed_target_skips_clips_of_that_class(tiny_victim) -> None:
    result = evaluate_targeted(PGD(eps=0.5, steps=10), tiny_victim, SynthDataset(8, seed=12),
                               target=resolve_class("high", NAMES))  # fmt: skip
    assert result.summary["n_skipped"] == 2  # labels cycle 0..3: two clips of class 2
    assert {r["target"] for r in result.records} == {2}
    assert all(r["label"] != 2 for r in result.records)


def test_summary_counts_successes_only_on_right_clips() -> None:
    records = [
        # right and sent to the target; right but only flipped elsewhere; wrong from the start
        {"label": 0, "target": 1, "correct": True, "success": True, "changed": True, "snr_db": 30.0,
         "success_pcm16": False},
        {"label": 0, "target": 2, "correct": True, "success": False, "changed": True,
         "snr_db": 10.0, "success_pcm16": False},
        {"label": 1, "target": 0, "correct": False, "success": False, "changed": False,
         "snr_db": 20.0, "success_pcm16": False},
    ]  # fmt: skip
    s = summarize_targeted(records, 3)
    assert (s["n_right"], s["n_success"]) == (2, 1)
    assert s["success_rate"] == 0.5 and s["untargeted_asr"] == 1.0
    assert (s["n_success_pcm16"], s["success_rate_pcm16"]) == (0, 0.0)
    assert s["msnr_db"] == 30.0  # over successes only
    assert s["matrix"]["success_rate"][0] == [None, 1.0, 0.0]
    assert s["matrix"]["success_rate"][1] == [None, None, None]
