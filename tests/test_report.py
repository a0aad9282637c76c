"""The Markdown + self-contained HTML report (ssgan.report) and the paper's numbers."""

from __future__ import annotations

import base64
import io
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ssgan.paper import TABLE_II, TABLE_III, paper_rows_for, table_ii, table_iii
from ssgan.report import Example, write_report
from ssgan.report.markdown import summary_table
from ssgan.report.plots import fig5_png, gain_label, perturbation_gain

SR = 16_000


class _Media(HTMLParser):
    """Collects every src/href and the img/audio tags of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _example(name: str, success: bool, seed: int, n: int = 4000) -> Example:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = (0.8 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    delta = (0.004 * rng.standard_normal(n)).astype(np.float32)
    return Example(
        name=name,
        label=1,
        clean_pred=1,
        adv_pred=2 if success else 1,
        success=success,
        snr_db=37.0,
        snr_box_db=55.0,
        x=x,
        x_adv=np.clip(x + delta, -1, 1),
        label_name="dog",
        clean_pred_name="dog",
        adv_pred_name="rain" if success else "dog",
    )


SUMMARY = {
    "attack": "fgsm",
    "attack_config": {"eps": 0.01},
    "n": 2,
    "n_right": 2,
    "n_success": 1,
    "acc": 1.0,
    "asr": 0.5,
    "msnr_db": 37.0,
    "msnr_box_db": 55.0,
    "mean_snr_db": 37.0,
    "mean_snr_box_db": 55.0,
    "asr_pcm16": math.nan,
    "seconds_per_example": 0.0123,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Example]]:
    out = tmp_path_factory.mktemp("report")
    examples = [_example("a<b>.wav", True, 0), _example("quiet.wav", False, 1)]
    md, html = write_report(
        out,
        SUMMARY,
        [{}, {}],
        examples,
        title="FGSM vs tiny <victim>",
        paper_rows=[table_ii(1.6, "test")],
    )
    return md, html, examples


def test_files_exist_and_html_is_self_contained(report) -> None:
    md, html, examples = report
    assert md.name == "report.md" and html.name == "report.html"
    text = html.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text), "the page must not reference the network"
    assert "<script" not in text
    parser = _Media()
    parser.feed(text)
    imgs = [a for tag, a in parser.tags if tag == "img"]
    audios = [a for tag, a in parser.tags if tag == "audio"]
    assert len(imgs) == len(examples)
    assert len(audios) == 3 * len(examples)
    for tag, attrs in parser.tags:
        for key in ("src", "href"):
            if attrs.get(key) is not None:
                assert attrs[key].startswith("data:"), f"<{tag} {key}> is not a data URI"
    for a in imgs:
        png = base64.b64decode(a["src"].split(",", 1)[1])
        assert a["src"].startswith("data:image/png;base64,") and png[:8] == b"\x89PNG\r\n\x1a\n"
    for a in audios:
        assert a["src"].startswith("data:audio/wav;base64,")
        data, rate = sf.read(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        assert rate == SR and len(data) == examples[0].x.size
    # Escaped, not injected.
    assert "tiny &lt;victim&gt;" in text and "a&lt;b&gt;.wav" in text
    # A few MB at most (here tiny clips: well under 1 MB).
    assert html.stat().st_size < 1_000_000


def test_players_are_labelled_with_the_gain(report) -> None:
    _, html, examples = report
    gain, gain_db = perturbation_gain(examples[0].delta)
    text = html.read_text(encoding="utf-8")
    assert gain_label(gain, gain_db) in text
    assert "clean x" in text and "adversarial x_adv" in text


def test_summary_table_puts_paper_beside_ours(report) -> None:
    md, _, _ = report
    text = md.read_text(encoding="utf-8")
    assert "| ASR (%) | 50.0 | 97.8 |" in text
    assert "| ACC (%) | 100.0 | 82.5 |" in text
    # The paper's MSNR is in [16]'s box convention: beside our box MSNR, never the true one.
    assert "| MSNR (true, dB) | 37.0 |  |" in text
    assert "| MSNR (box, [16], dB) | 55.0 | 35.7 |" in text
    assert "| Mean SNR (box, [16]) over all attacked clips (dB) | 55.0 |  |" in text
    assert "SNR true 37.0 dB, box [16] 55.0 dB" in text  # the examples' captions
    assert "| ASR after writing 16-bit PCM (%) | n/a |  |" in text
    assert "Paper Table II: SSGAN t1=1.6 s, test" in text
    # The Markdown links its figures and sounds, which exist.
    links = re.findall(r"\]\((report_files/[^)]+)\)", text)
    assert len(links) == 2 * 4
    for link in links:
        assert (md.parent / link).is_file()


def test_summary_table_marks_paper_na() -> None:
    header, rows = summary_table(SUMMARY, [table_iii("iterative", "test")])
    assert header[2].startswith("Paper Table III: Iterative")
    by_metric = {r[0]: r for r in rows}
    assert by_metric["ACC (%)"][2] == "N/A"
    assert by_metric["ASR (%)"][2] == "66.9"


def test_perturbation_gain_is_the_largest_nice_gain() -> None:
    assert perturbation_gain(np.array([0.004, -0.01])) == (50.0, pytest.approx(33.979, abs=1e-3))
    assert perturbation_gain(np.zeros(5))[0] == 1.0
    assert perturbation_gain(np.array([0.5]))[0] == 1.0
    assert gain_label(20.0, 20 * math.log10(20)) == "perturbation x20 (+26 dB)"
    with pytest.raises(ValueError, match="peak=0"):
        perturbation_gain(np.ones(2), peak=0)


def test_fig5_png_is_small_and_checks_shapes() -> None:
    ex = _example("x", True, 0, n=2000)
    png = fig5_png(ex.x, ex.x_adv)
    assert png[:4] == b"\x89PNG" and len(png) < 300_000
    with pytest.raises(ValueError, match="differ in shape"):
        fig5_png(ex.x, ex.x_adv[:-1])


def test_paper_tables() -> None:
    assert len(TABLE_II) == 8 and len(TABLE_III) == 6
    row = table_ii(1.6, "train")
    assert (row.acc_pct, row.asr_pct, row.msnr_db) == (97.6, 98.7, 35.7)
    assert table_iii("ssgan", "test").seconds_per_example == 0.03
    assert paper_rows_for("ssgan", dataset="esc10", subset="test")[0].label == "SSGAN t1=1.6 s"
    assert paper_rows_for("penalty", dataset="urbansound8k")[0].asr_pct == 83.1
    assert paper_rows_for("pgd") == []
    with pytest.raises(ValueError, match=r"t1_seconds=2\.0"):
        table_ii(2.0, "test")
