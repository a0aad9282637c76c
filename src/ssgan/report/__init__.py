"""Evaluation reports: a Markdown page and one self-contained HTML page with plots and players.

``write_report(out_dir, summary, records, examples, title=...)`` writes ``report.md`` (figures
and WAVs in ``report_files/``) and ``report.html`` (everything embedded as data URIs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssgan.paper import PaperRow
from ssgan.report.html import render_html, write_html
from ssgan.report.markdown import summary_table, write_markdown
from ssgan.report.plots import Example, fig5_png

MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"


def write_report(
    out_dir: str | Path,
    summary: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    examples: Sequence[Example],
    *,
    title: str,
    paper_rows: Sequence[PaperRow] | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/report.md`` and ``out_dir/report.html``; return ``(md_path, html_path)``.

    ``summary``: the keys of ``ssgan.evaluation`` (``acc``, ``asr``, ``msnr_db``, ...);
    ``records``: per-clip records (their count is stated in the page; the full list stays in
    ``records.jsonl``); ``examples``: the clips to plot (paper's Fig. 5) and play;
    ``paper_rows``: the paper's figures to print beside ours (``ssgan.paper``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(summary)
    summary.setdefault("n", len(records))
    # Each figure is drawn once and shared by both pages.
    figures = [
        fig5_png(ex.x, ex.x_adv, sample_rate=ex.sample_rate, title=ex.name) for ex in examples
    ]
    md_path = write_markdown(
        out / MARKDOWN_NAME, summary, examples, title=title, paper_rows=paper_rows, figures=figures
    )
    html_path = write_html(
        out / HTML_NAME, summary, examples, title=title, paper_rows=paper_rows, figures=figures
    )
    return md_path, html_path


__all__ = [
    "HTML_NAME",
    "MARKDOWN_NAME",
    "Example",
    "fig5_png",
    "render_html",
    "summary_table",
    "write_report",
]
