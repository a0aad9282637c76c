"""``ssgan reproduce`` end to end with the smoke profile, its resumability, and ``ssgan demo``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TINY_GAN_ARGS, TINY_VICTIM_ARGS, make_fake_us8k
from ssgan.cli import main


def test_table2_smoke_runs_and_resumes(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "t2"
    argv = [
        "reproduce",
        "table2",
        "--profile",
        "smoke",
        "--root",
        "bundled",
        "--out",
        str(out),
        "--segments",
        "0.8",
        *TINY_VICTIM_ARGS,
        *TINY_GAN_ARGS,
    ]
    assert main(argv) == 0
    first = capsys.readouterr()
    # victim, generator, 3 rows of it (query-free, + quietest, + refine + quietest), DDN and
    # noise controls, each row on train and test: the smoke profile runs every row of Table II.
    assert "12 stages, 0 already done" in first.err
    table = (out / "table2.md").read_text()
    # The paper's MSNR is in [16]'s box convention: under the box column, none under the true.
    assert "| 0.8 s (ours) |" in table and "| 0.8 s (paper) | 94.8 | 98.3 | – | 31.2 |" in table
    assert "Train MSNR (true, dB) | Train MSNR (box, [16], dB)" in table
    assert "esc10" in table.splitlines()[0]
    data = json.loads((out / "table2.json").read_text())
    assert [r["label"] for r in data["rows"]] == [
        "0.8 s",
        "0.8 s + quietest",
        "0.8 s + refine 2 + quietest",
        "DDN 2 + quietest, no generator",
        "Gaussian noise 30 dB (true SNR)",
    ]
    for row in data["rows"]:
        # bundled: fold 5 = 10 clips; the smoke profile's train columns on 10 of the 40 others
        assert row["test"]["n"] == 10 and row["train"]["n"] == 10
    # a rerun finds every stage done and only rewrites the table
    assert main(argv) == 0
    assert "12 stages, 12 already done, 0 to run" in capsys.readouterr().err
    # an interrupted stage (summary missing) is redone, the others are skipped
    (out / "ssgan_0.8s_test" / "summary.json").unlink()
    assert main(argv) == 0
    assert "11 already done, 1 to run: evaluate ssgan_0.8s_test" in capsys.readouterr().err


@pytest.mark.slow
def test_table3_smoke_on_fake_urbansound8k(tmp_path: Path, capsys, monkeypatch) -> None:

    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    make_fake_us8k(tmp_path / "US")
    out = tmp_path / "t3"
    tiny_v2 = [a.replace("window=5294", "window=23642") for a in TINY_VICTIM_ARGS]  # its minimum
    argv = [
        "reproduce",
        "table3",
        "--profile",
        "smoke",
        "--root",
        str(tmp_path / "US"),
        "--out",
        str(out),
        "--split",
        "fold:3",
        *tiny_v2,
        *TINY_GAN_ARGS,
    ]
    assert main(argv) == 0
    table = (out / "table3.md").read_text()
    for method in ("SSGAN", "Iterative", "Penalty"):
        assert f"| {method} (ours) |" in table and f"| {method} (paper) |" in table
    assert (out / "uap-iterative" / "attack.json").is_file()
    assert (out / "uap-penalty" / "attack.json").is_file()
    summary = json.loads((out / "uap-penalty_test" / "summary.json").read_text())
    assert summary["n"] == 6


def test_reproduce_rejects_bad_options(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["reproduce", "table2", "--segments", "0,x", "--out", str(tmp_path)])
    assert "segment" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "table3", "--methods", "pgd", "--out", str(tmp_path)])
    assert "uap-iterative" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_from_scratch_completes_on_bundled_clips(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--from-scratch", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = out / "ssgan_1.6s_test" / "report.html"
    assert report.is_file() and f"report: {report.resolve()}" in printed
    assert "| 1.6 s (ours) |" in printed and "| 1.6 s + quietest (ours) |" in printed
    assert "| 1.6 s + refine 5 + quietest (ours) |" in printed
    assert "| DDN 5 + quietest, no generator (ours) |" in printed
    assert "| Gaussian noise 25 dB (true SNR) (ours) |" in printed
