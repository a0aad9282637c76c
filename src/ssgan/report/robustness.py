"""The robustness table: ASR of each attack after each channel transform (MP3, resampling,
noise, ...), as Markdown, JSON, a bar chart and a self-contained HTML page (``ssgan reproduce
robustness`` measures it)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ssgan.io import atomic_write, atomic_write_json, atomic_write_text
from ssgan.report.html import data_uri

__all__ = ["robustness_chart_png", "write_robustness_table"]


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def write_robustness_table(
    out: Path,
    summaries: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, str],
    specs: Sequence[str],
    caption: str,
    seconds: Mapping[str, float] | None = None,
) -> Path:
    """``robustness.{md,json,png,html}`` in ``out``: one row per attack from its test summary
    (``summaries``: attack -> summary, ``{}`` for one not measured; ``labels``: attack -> row
    name), one column per channel transform in ``specs``; returns the ``.md``."""
    methods = list(summaries)
    head = ["Attack", "MSNR (true, dB)", "MSNR (box, [16], dB)", "s / clip", "none", *specs]
    first = next((s for s in summaries.values() if s), {})
    acc_row = ["victim ACC (%)", "", "", "", _pct(first.get("acc"))]
    acc_row += [_pct(first.get("transforms", {}).get(t, {}).get("acc")) for t in specs]
    rows = [acc_row]
    for m, s in summaries.items():
        after = s.get("transforms", {})
        msnr = ["–" if s.get(k) is None else f"{s[k]:.1f}" for k in ("msnr_db", "msnr_box_db")]
        per_clip = s.get("seconds_per_example")
        rows.append(
            [labels[m], *msnr, "–" if per_clip is None else f"{per_clip:.3g}", _pct(s.get("asr"))]
            + [_pct(after.get(t, {}).get("asr")) for t in specs]
        )  # fmt: skip
    note = (
        "ACC: the victim's clip accuracy on the transformed clean clips. ASR = N_success / "
        "N_right, both after the transform (same random draw for x and x_adv), so a channel "
        "that breaks the victim by itself does not count as an attack success. MSNR over the "
        "untransformed successes, true and in [16]'s box convention (docs/snr.md). Command: "
        "ssgan reproduce robustness (docs/robustness.md)."
    )
    lines = [f"**{caption}**", "", "| " + " | ".join(head) + " |"]
    lines.append("|---|" + "---:|" * (len(head) - 1))
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", note]
    md = out / "robustness.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    data = {
        "caption": caption,
        "transforms": list(specs),
        "rows": {m: {"asr": s.get("asr"), "msnr_db": s.get("msnr_db"),
                     "msnr_box_db": s.get("msnr_box_db"), "transforms": s.get("transforms", {})}
                 for m, s in summaries.items()},
        "stage_seconds": dict(seconds or {}),
    }  # fmt: skip
    atomic_write_json(out / "robustness.json", data)
    asr = [[_num(s.get("asr"))] + [_num(s.get("transforms", {}).get(t, {}).get("asr"))
            for t in specs] for s in summaries.values()]  # fmt: skip
    png = robustness_chart_png([labels[m] for m in methods], ["none", *specs], asr)
    atomic_write(out / "robustness.png", lambda tmp: tmp.write_bytes(png))
    atomic_write_text(out / "robustness.html", _html(caption, head, rows, note, png))
    return md


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def robustness_chart_png(
    attacks: Sequence[str], channels: Sequence[str], asr: Sequence[Sequence[float]]
) -> bytes:
    """Grouped horizontal bars: ASR (%) per channel (rows), one bar per attack."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_a, n_c = len(attacks), len(channels)
    fig = Figure(figsize=(9, 1.2 + 0.45 * n_c * max(1, n_a) / 3), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    height = 0.8 / max(n_a, 1)
    for i, (name, values) in enumerate(zip(attacks, asr, strict=True)):
        pos = [c + (i - (n_a - 1) / 2) * height for c in range(n_c)]
        ax.barh(pos, [0 if math.isnan(v) else 100 * v for v in values], height, label=name)
    ax.set_yticks(range(n_c), channels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("ASR after the channel (%)")
    ax.legend(fontsize=8, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _html(caption: str, head: list[str], rows: list[list[str]], note: str, png: bytes) -> str:

    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Robustness</title>'
        "<style>body{font-family:sans-serif;max-width:80em;margin:2em auto}td,th{padding:"
        "0.2em 0.6em;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        f"<h1>Adversarial audio through the channel</h1><p>{escape(caption)}</p>"
        f'<img src="{data_uri("image/png", png)}" alt="ASR after each channel transform">'
        f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"
        f"<p>{escape(note)}</p></body></html>"
    )
