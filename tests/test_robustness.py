"""Scoring attacks after channel transforms (ssgan.evaluation.robustness,
evaluate_attack(transforms=...))."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from helpers import FGSM, FakeDataset, Identity
from ssgan.evaluation import (
    evaluate_attack,
    read_records,
    resolve_transforms,
    summarize_transforms,
    transform_generator,
)
from ssgan.transforms import parse_transform

NEUTRAL = "gain:min_db=0,max_db=0"
LOWPASS = "bandpass:low_hz=0,high_hz=400"  # keeps only the 220 Hz class of the synthetic task


def test_scores_after_each_transform(tiny_victim, tmp_path: Path) -> None:
    result = evaluate_attack(
        FGSM(eps=0.5), tiny_victim, FakeDataset(12), batch_size=4, out_dir=tmp_path,
        transforms=[NEUTRAL, LOWPASS],
    )  # fmt: skip
    records = read_records(tmp_path)
    neutral, lowpass = (parse_transform(s).spec for s in (NEUTRAL, LOWPASS))
    for r in records:
        same = r["transforms"][neutral]
        # A transform that changes nothing scores exactly like no transform.
        assert (same["clean_pred"], same["adv_pred"]) == (r["clean_pred"], r["adv_pred"])
        assert same["success"] == r["success"]
        low = r["transforms"][lowpass]
        assert low["success"] == (low["correct"] and low["adv_pred"] != r["label"])
    per = result.summary["transforms"]
    assert per[neutral]["asr"] == result.summary["asr"] and per[neutral]["kept"] == 1.0
    # Low-passing at 400 Hz leaves the victim right on the 220 Hz class only, so ASR after it
    # is counted on those clips, not on all the clips the victim got right before.
    assert per[lowpass]["n_right"] < result.summary["n_right"]
    assert per[lowpass]["n_right"] == sum(r["transforms"][lowpass]["correct"] for r in records)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["transforms"][lowpass]["n_success"] == per[lowpass]["n_success"]
    assert summarize_transforms(records) == per
    for page in ("report.md", "report.html"):
        assert "After channel transforms" in (tmp_path / page).read_text()


def test_clean_and_adversarial_clips_share_the_random_draw(tiny_victim) -> None:
    """With x_adv == x, a shared noise draw gives equal predictions, so ASR is exactly 0;
    at -10 dB the victim's decision depends on the draw, so separate draws would not."""
    spec = "noise:snr_db=-10"
    ds = FakeDataset(16)
    x = torch.stack(ds.waveforms()[::2])
    t = parse_transform(spec)
    a = tiny_victim(t(x, generator=torch.Generator().manual_seed(1))).argmax(1)
    b = tiny_victim(t(x, generator=torch.Generator().manual_seed(2))).argmax(1)
    assert not torch.equal(a, b)  # the draw matters at this SNR
    result = evaluate_attack(Identity(), tiny_victim, ds, transforms=[spec])
    after = result.summary["transforms"][t.spec]
    assert after["n_right"] > 0 and after["asr"] == 0.0


def test_a_transform_scores_the_same_whatever_else_is_evaluated(tiny_victim) -> None:
    ds = FakeDataset(8)
    alone = evaluate_attack(FGSM(eps=0.05), tiny_victim, ds, transforms=["noise:snr_db=0"])
    both = evaluate_attack(FGSM(eps=0.05), tiny_victim, ds, transforms=["reverb", "noise:snr_db=0"])
    spec = parse_transform("noise:snr_db=0").spec
    assert [r["transforms"][spec] for r in alone.records] == [
        r["transforms"][spec] for r in both.records
    ]
    g1, g2 = transform_generator(0, spec, 0), transform_generator(0, spec, 4)
    assert not torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))


def test_no_transforms_no_keys(tiny_victim) -> None:
    result = evaluate_attack(Identity(), tiny_victim, FakeDataset(2))
    assert "transforms" not in result.summary and "transforms" not in result.records[0]


def test_resolve_rejects_repeats_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="given twice: mp3:kbps=128"):
        resolve_transforms(["mp3", "mp3:kbps=128"])
    with pytest.raises(ValueError, match="unknown transform"):
        resolve_transforms(["wobble"])


def test_kept_is_nan_when_the_clean_asr_is_zero() -> None:
    rec = {"correct": True, "success": False}
    per = summarize_transforms([{**rec, "transforms": {"t": {"correct": True, "success": False}}}])
    assert per["t"]["asr"] == 0.0 and math.isnan(per["t"]["kept"])


def test_cli_rejects_a_bad_transform_before_loading_anything(tmp_path: Path, capsys) -> None:
    from ssgan.cli import main

    argv = ["evaluate", "attack", "--attack", "fgsm", "--victim", str(tmp_path / "none"), "--dataset",
            "esc10", "--root", "bundled", "--out", str(tmp_path / "out"),
            "--transform", "mp3:kbps=63"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--transform" in err and "kbps=63" in err
