"""The self-contained HTML report: one file, everything inline.

Figures are PNG ``data:image/png;base64`` URIs, sounds are 16-bit WAV ``data:audio/wav;base64``
URIs, the style sheet is inline and there is no script and no external URL, so the page can be
mailed, archived or opened offline and shows the same thing everywhere. Players use
``preload="metadata"`` so a page of many clips opens fast.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ssgan.io import atomic_write_text
from ssgan.paper import PaperRow
from ssgan.report.markdown import (
    SNR_NOTE,
    TRANSFORM_NOTE,
    example_caption,
    run_items,
    summary_table,
    transform_table,
)
from ssgan.report.plots import Example, fig5_png, gain_label, perturbation_gain, wav_bytes

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.players { display: flex; flex-wrap: wrap; gap: 1.5em; }
.players label { display: block; font-size: 0.9em; margin-bottom: 0.2em; }
.ok { color: #a40000; } .fail { color: #1a6d1a; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; }
"""


def data_uri(mime: str, data: bytes) -> str:
    """``data:<mime>;base64,...`` for ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _player(label: str, wav: bytes) -> str:
    return (
        f'<div><label>{escape(label)}</label><audio controls preload="metadata" '
        f'src="{data_uri("audio/wav", wav)}"></audio></div>'
    )


def render_html(
    summary: Mapping[str, Any],
    examples: Sequence[Example],
    *,
    title: str,
    paper_rows: Sequence[PaperRow] | None = None,
    figures: Sequence[bytes] | None = None,
) -> str:
    """The report page as a string. ``figures``: the examples' Fig. 5 PNGs if already drawn."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    items = run_items(summary)
    if items:
        parts.append(
            "<dl>"
            + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
            + "</dl>"
        )
    parts += ["<h2>Summary</h2>", _table(*summary_table(summary, paper_rows))]
    parts.append(
        f"<p>ACC = N_right / N; ASR = N_success / N_right (paper eq. 9); {escape(SNR_NOTE)} "
        "Definitions: <code>ssgan.metrics</code>, docs/snr.md.</p>"
    )
    channel = transform_table(summary)
    if channel is not None:
        parts += ["<h2>After channel transforms</h2>", _table(*channel)]
        parts.append(f"<p>{escape(TRANSFORM_NOTE)}</p>")
    if examples:
        parts.append("<h2>Examples</h2>")
    for i, ex in enumerate(examples, start=1):
        png = (
            figures[i - 1]
            if figures is not None
            else fig5_png(ex.x, ex.x_adv, sample_rate=ex.sample_rate, title=ex.name)
        )
        gain, gain_db = perturbation_gain(ex.delta)
        verdict = "ok" if ex.success else "fail"
        parts += [
            f'<section><h3 class="{verdict}">{i}. {escape(example_caption(ex))}</h3>',
            f'<figure><img src="{data_uri("image/png", png)}" '
            f'alt="Fig. 5 panels for {escape(ex.name)}"><figcaption>(a) x, (b) x_adv, '
            "(c), (d) their spectrograms, (e) the perturbation (orange) over x (blue)"
            "</figcaption></figure>",
            '<div class="players">',
            _player("clean x", wav_bytes(ex.x, sample_rate=ex.sample_rate)),
            _player("adversarial x_adv", wav_bytes(ex.x_adv, sample_rate=ex.sample_rate)),
            _player(
                gain_label(gain, gain_db), wav_bytes(ex.delta * gain, sample_rate=ex.sample_rate)
            ),
            "</div></section>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(
    path: str | Path,
    summary: Mapping[str, Any],
    examples: Sequence[Example],
    *,
    title: str,
    paper_rows: Sequence[PaperRow] | None = None,
    figures: Sequence[bytes] | None = None,
) -> Path:
    """Write ``render_html(...)`` to ``path`` atomically and return the path."""
    path = Path(path)
    atomic_write_text(
        path, render_html(summary, examples, title=title, paper_rows=paper_rows, figures=figures)
    )
    return path


__all__ = ["data_uri", "render_html", "write_html"]
