"""The Markdown report, and the summary table that the HTML report shares.

The Markdown page links its figures and sounds from a ``report_files/`` folder beside it (written
here), since Markdown cannot embed audio; the HTML page (``ssgan.report.html``) embeds everything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssgan.io import atomic_write, atomic_write_text
from ssgan.paper import PaperRow
from ssgan.report.plots import Example, fig5_png, gain_label, perturbation_gain, wav_bytes

ASSETS_DIR = "report_files"

# (summary key, label, kind, PaperRow attribute or None). kind: "pct" (fraction shown as %),
# "db", "s", "int", "str". Every SNR twice, labelled by convention (``ssgan.metrics``); the
# paper's MSNR sits beside the box one, the convention it is stated in.
METRICS: tuple[tuple[str, str, str, str | None], ...] = (
    ("acc", "ACC (%)", "pct", "acc_pct"),
    ("asr", "ASR (%)", "pct", "asr_pct"),
    ("msnr_db", "MSNR (true, dB)", "db", None),
    ("msnr_box_db", "MSNR (box, [16], dB)", "db", "msnr_db"),
    ("seconds_per_example", "Time per example (s)", "s", "seconds_per_example"),
    ("n", "Clips", "int", None),
    ("n_right", "Clips classified correctly (N_right)", "int", None),
    ("n_success", "Successful attacks (N_success)", "int", None),
    ("mean_snr_db", "Mean SNR (true) over all attacked clips (dB)", "db", None),
    ("mean_snr_box_db", "Mean SNR (box, [16]) over all attacked clips (dB)", "db", None),
    ("asr_pcm16", "ASR after writing 16-bit PCM (%)", "pct", None),
    ("segmental_snr_db", "Segmental SNR, successful (dB)", "db", None),
    ("lsd_db", "Log-spectral distance, successful (dB)", "db", None),
    ("device", "Device", "str", None),
)

# Run description keys shown above the table when present.
RUN_KEYS = (
    "attack", "attack_config", "victim", "dataset", "split", "subset", "generator_seed",
    "batch_size", "timing_warm", "wall_seconds", "created",
)  # fmt: skip


SNR_NOTE = (
    "SNR (true) = 20 log10(rms(x) / rms(x_adv - x)) (eq. 10), what a listener hears; SNR (box, "
    "[16]) = 20 log10(rms(x + 1) / rms(x_adv - x)), eq. 10 on audio held in [0, 1] as the code "
    "of [16] computes it, the convention of the paper's figures; MSNR = mean SNR over the "
    "successful examples."
)


def format_value(value: Any, kind: str) -> str:
    """A summary value as table text; ``None`` / ``nan`` -> "n/a"."""
    if value is None:
        return "n/a"
    if kind == "str":
        return str(value)
    if kind == "int":
        return str(int(value))
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if kind == "pct":
        return f"{100.0 * v:.1f}"
    if kind == "s":
        return f"{v:.3g}"
    return f"{v:.1f}"


def paper_column(row: PaperRow) -> str:
    return f"Paper Table {row.table}: {row.label}, {row.subset} ({row.dataset}, {row.victim})"


def summary_table(
    summary: Mapping[str, Any], paper_rows: Sequence[PaperRow] | None = None
) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the summary table: metric, ours, then one column per paper row.

    Paper cells are printed where the paper has the figure ("N/A" where it says N/A, empty for
    figures the paper does not report at all). A row with a paper figure is shown even when our
    summary lacks the key (one written before the box SNR: "n/a").
    """
    rows_p = list(paper_rows or [])
    header = ["Metric", "Ours", *(paper_column(r) for r in rows_p)]
    rows: list[list[str]] = []
    for key, label, kind, attr in METRICS:
        if key not in summary and (attr is None or not rows_p):
            continue
        line = [label, format_value(summary.get(key), kind)]
        for r in rows_p:
            if attr is None:
                line.append("")
            else:
                pv = getattr(r, attr)
                line.append("N/A" if pv is None else (f"{pv:g}" if kind == "s" else f"{pv:.1f}"))
        rows.append(line)
    return header, rows


def transform_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """``(header, rows)``: ACC and ASR after each channel transform
    (``ssgan.evaluation.robustness``), the untransformed clips first; None when the evaluation
    had no transforms."""
    per = summary.get("transforms")
    if not per:
        return None
    header = ["Channel", "ACC (%)", "ASR (%)", "ASR kept (%)"]
    rows = [
        [
            "none",
            format_value(summary.get("acc"), "pct"),
            format_value(summary.get("asr"), "pct"),
            "100.0",
        ]
    ]
    for spec, v in per.items():
        rows.append(
            [spec, format_value(v.get("acc"), "pct"), format_value(v.get("asr"), "pct"),
             format_value(v.get("kept"), "pct")]
        )  # fmt: skip
    return header, rows


TRANSFORM_NOTE = (
    "After a channel transform T, ACC counts clips with T(x) classified right and ASR the share of "
    "those with T(x_adv) misclassified (same random draw of T for both); kept = ASR after T / "
    "ASR without it."
)


def run_items(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's description (attack, victim, dataset, ...) as ``(key, text)`` pairs."""
    out = []
    for key in RUN_KEYS:
        if key in summary and summary[key] is not None:
            v = summary[key]
            if isinstance(v, Mapping):
                v = ", ".join(f"{k}={val}" for k, val in v.items()) or "(defaults)"
            elif isinstance(v, float):
                v = f"{v:.3g}"
            out.append((key, str(v)))
    return out


def example_caption(ex: Example) -> str:
    verdict = "attack succeeded" if ex.success else "attack failed"
    box = "" if ex.snr_box_db is None else f", box [16] {format_value(ex.snr_box_db, 'db')} dB"
    return (
        f"{ex.name}: label {ex.label_name or ex.label}, clean prediction "
        f"{ex.clean_pred_name or ex.clean_pred}, adversarial prediction "
        f"{ex.adv_pred_name or ex.adv_pred} ({verdict}; SNR true "
        f"{format_value(ex.snr_db, 'db')} dB{box})"
    )


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "clip"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return lines


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_markdown(
    path: str | Path,
    summary: Mapping[str, Any],
    examples: Sequence[Example],
    *,
    title: str,
    paper_rows: Sequence[PaperRow] | None = None,
    figures: Sequence[bytes] | None = None,
) -> Path:
    """Write the Markdown report to ``path`` and its PNG/WAV files to ``report_files/`` beside it.

    ``figures`` (optional) are the examples' Fig. 5 PNGs, when already drawn for the HTML page.
    """
    path = Path(path)
    assets = path.parent / ASSETS_DIR
    lines = [f"# {title}", ""]
    items = run_items(summary)
    if items:
        lines += [f"- **{k}**: {_md_escape(v)}" for k, v in items]
        lines.append("")
    lines += ["## Summary", ""]
    lines += _md_table(*summary_table(summary, paper_rows))
    lines += [
        "",
        f"ACC = N_right / N; ASR = N_success / N_right (paper eq. 9); {SNR_NOTE} Definitions: "
        "`ssgan.metrics`, docs/snr.md.",
        "",
    ]
    channel = transform_table(summary)
    if channel is not None:
        lines += ["## After channel transforms", "", *_md_table(*channel), "", TRANSFORM_NOTE, ""]
    if examples:
        lines += ["## Examples", ""]
    for i, ex in enumerate(examples, start=1):
        stem = f"example_{i:02d}_{slug(ex.name)}"
        png = (
            figures[i - 1]
            if figures is not None
            else fig5_png(ex.x, ex.x_adv, sample_rate=ex.sample_rate, title=ex.name)
        )
        gain, gain_db = perturbation_gain(ex.delta)
        files = {
            f"{stem}.png": png,
            f"{stem}_clean.wav": wav_bytes(ex.x, sample_rate=ex.sample_rate),
            f"{stem}_adv.wav": wav_bytes(ex.x_adv, sample_rate=ex.sample_rate),
            f"{stem}_delta_x{gain:g}.wav": wav_bytes(ex.delta * gain, sample_rate=ex.sample_rate),
        }
        for name, data in files.items():
            _write_bytes(assets / name, data)
        names = list(files)
        lines += [
            f"### {i}. {_md_escape(example_caption(ex))}",
            "",
            f"![Fig. 5 panels for {ex.name}]({ASSETS_DIR}/{names[0]})",
            "",
            f"Listen: [clean]({ASSETS_DIR}/{names[1]}) · [adversarial]({ASSETS_DIR}/{names[2]})"
            f" · [{gain_label(gain, gain_db)}]({ASSETS_DIR}/{names[3]})",
            "",
        ]
    atomic_write_text(path, "\n".join(lines))
    return path


__all__ = [
    "ASSETS_DIR",
    "METRICS",
    "SNR_NOTE",
    "example_caption",
    "format_value",
    "run_items",
    "summary_table",
    "transform_table",
    "write_markdown",
]
