"""evaluate_attack over a tiny fake dataset with the tiny victim (ssgan.evaluation)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from helpers import FGSM, FakeDataset, Identity
from ssgan.evaluation import evaluate_attack, read_records, summarize
from ssgan.metrics import attack_success_rate


class NoiseAttack:
    """Random noise drawn from the passed generator: tests seeding."""

    def __call__(self, model, x, y, *, target=None, generator=None):
        return (x + 0.01 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def test_records_and_summary_are_consistent(tiny_victim, tmp_path: Path) -> None:
    ds = FakeDataset(10)
    attack = FGSM(eps=0.5)
    result = evaluate_attack(
        attack,
        tiny_victim,
        ds,
        batch_size=3,
        out_dir=tmp_path,
        n_examples=2,
        meta={"attack": "fgsm"},
    )
    # 5 clips of each length in batches of <= 3 -> 2 + 2 batches.
    assert attack.calls == 4
    records = read_records(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["index"] for r in records] == list(range(10))
    assert [r["file"] for r in records] == [c.name for c in ds.clips]
    assert [r["label"] for r in records] == ds.labels()
    assert {r["n_samples"] for r in records} == {4000, 3000}
    assert summary["n"] == len(records) == 10
    assert summary["attack"] == "fgsm"
    n_right = sum(r["correct"] for r in records)
    n_success = sum(r["success"] for r in records)
    assert summary["n_right"] == n_right and summary["n_success"] == n_success
    asr = attack_success_rate(
        [r["label"] for r in records],
        [r["clean_pred"] for r in records],
        [r["adv_pred"] for r in records],
    )
    assert summary["asr"] == pytest.approx(asr)
    assert n_right >= 9  # the tiny victim is ~100 % accurate on synthetic clips
    assert n_success >= 1  # FGSM with eps 0.5 really flips decisions
    ok_snr = [r["snr_db"] for r in records if r["success"]]
    assert summary["msnr_db"] == pytest.approx(sum(ok_snr) / len(ok_snr))
    assert summarize(records)["asr"] == pytest.approx(summary["asr"])
    assert summary["device"] == "cpu"
    assert summary["seconds_per_example"] > 0 and summary["timing_warm"] is True
    for r in records:
        # FGSM's Linf distance is eps (up to clipping at +-1).
        assert r["linf"] <= 0.5 + 1e-6
        assert r["success"] == (r["correct"] and r["adv_pred"] != r["label"])
    # The report was written and the result points at it.
    assert result.report_html == tmp_path / "report.html" and result.report_html.is_file()
    assert result.report_md is not None and result.report_md.is_file()
    assert 1 <= len(result.examples) <= 2


def test_identity_attack_gives_zero_asr_and_null_snr(tiny_victim, tmp_path: Path) -> None:
    result = evaluate_attack(
        Identity(), tiny_victim, FakeDataset(4), out_dir=tmp_path, n_examples=1
    )
    assert result.summary["asr"] == 0.0
    assert result.summary["n_unperturbed"] == 4
    assert math.isnan(result.summary["msnr_db"])
    assert all(r["snr_db"] == math.inf for r in result.records)
    # JSON stays strict: non-finite values become null.
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["msnr_db"] is None
    assert all(r["snr_db"] is None for r in read_records(tmp_path))
    # No success: the examples are failures only.
    assert result.examples and not any(ex.success for ex in result.examples)


def test_same_seed_same_records(tiny_victim) -> None:
    ds = FakeDataset(4)
    a = evaluate_attack(NoiseAttack(), tiny_victim, ds, generator_seed=3).records
    b = evaluate_attack(NoiseAttack(), tiny_victim, ds, generator_seed=3).records
    c = evaluate_attack(NoiseAttack(), tiny_victim, ds, generator_seed=4).records
    assert [r["snr_db"] for r in a] == [r["snr_db"] for r in b]
    assert [r["snr_db"] for r in a] != [r["snr_db"] for r in c]


def test_victim_mode_restored_and_bad_arguments(tiny_victim) -> None:
    tiny_victim.train()
    try:
        evaluate_attack(Identity(), tiny_victim, FakeDataset(2), n_examples=0)
        assert tiny_victim.training
    finally:
        tiny_victim.eval()
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluate_attack(Identity(), tiny_victim, FakeDataset(2), batch_size=0)

    class Truncating:
        def __call__(self, model, x, y, *, target=None, generator=None):
            return x[:, :-1]

    with pytest.raises(ValueError, match="expected x's shape"):
        evaluate_attack(Truncating(), tiny_victim, FakeDataset(2))

    class OneNaNSample:
        def __call__(self, model, x, y, *, target=None, generator=None):
            out = x.clone()
            out[:, 5] = math.nan
            return out

    # NaN audio changes the victim's decision: it must not be scored as a success
    with pytest.raises(ValueError, match=r"non-finite samples \(NaN or inf\) for 1 clip"):
        evaluate_attack(OneNaNSample(), tiny_victim, FakeDataset(2))


def test_cli_evaluate_attack_end_to_end(tmp_path: Path, capsys) -> None:
    from ssgan.cli import main
    from ssgan.data import load_dataset
    from ssgan.data.splits import make_split
    from ssgan.models.envnet import ENVNET_MIN_WINDOW
    from ssgan.training.victim import VictimTrainConfig, train_victim

    train, test = make_split(load_dataset("esc10", "bundled"), "fold:5")
    cfg = VictimTrainConfig(
        window=ENVNET_MIN_WINDOW, fc_width=32, epochs=1, batch_size=8, n_crops=2, seed=0
    )
    info = {"dataset": "esc10", "split": "fold:5", "split_seed": 0}  # as `ssgan train victim`
    train_victim(cfg, train, test, tmp_path / "victim", progress=False, dataset_info=info)
    out = tmp_path / "eval"
    # --split defaults to the victim's own (fold:5), --victim-checkpoint to last.
    argv = ["evaluate", "attack", "--attack", "fgsm", "--set", "attack.eps=0.01", "--victim",
            str(tmp_path / "victim"), "--dataset", "esc10", "--root", "bundled",
            "--limit", "2", "--examples", "1", "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 2 and summary["attack"] == "fgsm"
    assert summary["attack_config"]["eps"] == 0.01
    assert summary["subset"] == "test" and summary["split"] == "fold:5"
    assert summary["split_seed"] == 0 and summary["victim_checkpoint"] == "last"
    assert len(read_records(out)) == 2 and (out / "report.html").is_file()
    # A second run refuses to overwrite, as one line, exit 1; --overwrite replaces.
    assert main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--victim-checkpoint", "best"]) == 0
    assert json.loads(capsys.readouterr().out)["victim_checkpoint"] == "best"
    # A bad attack setting is a one-line error naming it.
    bad = [*argv[:4], "--set", "attack.epz=1", *argv[6:], "--overwrite"]
    assert main(bad) == 1
    assert "'epz'" in capsys.readouterr().err
