"""``ssgan reproduce robustness`` end to end on the bundled clips with the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TINY_GAN_ARGS, TINY_VICTIM_ARGS
from ssgan.cli import main
from ssgan.reproduce_robustness import (
    BGNOISE_PATTERN,
    ROBUSTNESS_TRANSFORMS,
    robustness_transforms,
    write_robustness_table,
)


@pytest.mark.slow
def test_robustness_smoke_runs_every_attack_and_resumes(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rob"
    argv = ["reproduce", "robustness", "--profile", "smoke", "--root", "bundled", "--out",
            str(out), "--transform", "mp3:kbps=64", "--transform", "gain:min_db=0,max_db=0",
            "--eot", "mp3:kbps=64", *TINY_VICTIM_ARGS, "--set", "victim.n_crops=2", *TINY_GAN_ARGS]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    # victim, 2 generators, the UAP fit, 6 evaluations
    assert "10 stages, 0 already done" in err
    data = json.loads((out / "robustness.json").read_text())
    assert data["transforms"] == ["mp3:kbps=64", "gain:min_db=0,max_db=0"]
    assert set(data["rows"]) == {"ssgan", "ssgan-eot", "pgd", "pgd-eot", "cw", "uap"}
    for row in data["rows"].values():
        # The neutral gain scores exactly like no transform.
        assert row["transforms"]["gain:min_db=0,max_db=0"]["asr"] == row["asr"]
        assert row["transforms"]["mp3:kbps=64"]["n"] == 10  # bundled fold 5
    gan = json.loads((out / "ssgan_1.6s_eot" / "config.json").read_text())
    assert gan["eot"] == ["mp3:kbps=64"] and gan["eot_prob"] == 0.8
    plain = json.loads((out / "ssgan_1.6s" / "config.json").read_text())
    assert plain["eot"] == []
    pgd = json.loads((out / "pgd-eot_test" / "summary.json").read_text())
    assert pgd["attack_config"]["eot"] == ["mp3:kbps=64"]
    table = (out / "robustness.md").read_text()
    assert "| SSGAN + EOT |" in table and "| victim ACC (%) |" in table
    html = (out / "robustness.html").read_text()
    assert "data:image/png;base64," in html and (out / "robustness.png").stat().st_size > 1000
    assert main(argv) == 0
    assert "10 stages, 10 already done" in capsys.readouterr().err


def test_methods_and_eot_are_checked(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["reproduce", "robustness", "--methods", "fgsm", "--out", str(tmp_path)])
    assert "ssgan-eot" in capsys.readouterr().err
    argv = ["reproduce", "robustness", "--root", "bundled", "--out", str(tmp_path / "r"),
            "--eot", "wobble"]  # fmt: skip
    assert main(argv) == 2
    assert "unknown transform 'wobble'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_background_noise_joins_when_training_fold_wind_clips_exist(tmp_path: Path) -> None:
    assert robustness_transforms(tmp_path) == list(ROBUSTNESS_TRANSFORMS)
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "5-1-A-16.wav").touch()  # a test-fold clip does not count
    assert robustness_transforms(tmp_path) == list(ROBUSTNESS_TRANSFORMS)
    (tmp_path / "audio" / "2-1-A-16.wav").touch()
    extra = robustness_transforms(tmp_path)[-1]
    assert extra.startswith("bgnoise:") and BGNOISE_PATTERN in extra


def test_table_from_summaries(tmp_path: Path) -> None:
    for tag, asr, after in (("pgd", 0.8, 0.2), ("cw", 1.0, None)):
        (tmp_path / f"{tag}_test").mkdir()
        summary = {"acc": 0.9, "asr": asr, "msnr_db": 31.25, "seconds_per_example": 0.5,
                   "transforms": {"mp3:kbps=64": {"acc": 0.85, "asr": after}}}  # fmt: skip
        if tag == "pgd":  # a summary written before the box SNR has no msnr_box_db
            summary["msnr_box_db"] = 49.5
        (tmp_path / f"{tag}_test" / "summary.json").write_text(json.dumps(summary))
    md = write_robustness_table(tmp_path, ["pgd", "cw", "uap"], ["mp3:kbps=64"], "cap")
    lines = md.read_text().splitlines()
    head = "| Attack | MSNR (true, dB) | MSNR (box, [16], dB) | s / clip | none | mp3:kbps=64 |"
    assert head in lines
    assert "| victim ACC (%) |  |  |  | 90.0 | 85.0 |" in lines
    assert "| PGD | 31.2 | 49.5 | 0.5 | 80.0 | 20.0 |" in lines
    assert "| C&W | 31.2 | – | 0.5 | 100.0 | – |" in lines
    assert "| UAP (iterative) | – | – | – | – | – |" in lines  # not evaluated yet
    rows = json.loads((tmp_path / "robustness.json").read_text())["rows"]
    assert rows["pgd"]["msnr_box_db"] == 49.5 and rows["pgd"]["msnr_db"] == 31.25
