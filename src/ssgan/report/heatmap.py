"""Rate matrices as heat-map PNGs and Markdown tables: targeted success (true x target class)
and transfer (source x target victim).

matplotlib is imported inside the function and drawn on an Agg canvas, as in
``ssgan.report.plots``: importing this module loads nothing heavy and touches no global state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

__all__ = ["heatmap_png", "matrix_markdown"]


def _cell(value: float | None, count: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{100 * value:.1f} %"
    return f"{text} ({count})" if count else text


def matrix_markdown(
    rates: Sequence[Sequence[float | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    corner: str = "",
    counts: Sequence[Sequence[str]] | None = None,
) -> str:
    """A Markdown table of ``rates`` (fractions in [0, 1], ``None``/nan shown as "–"), rows by
    ``row_labels``, columns by ``col_labels``; ``counts`` (e.g. ``"3/4"``) follow each rate."""
    lines = [
        "| " + " | ".join([corner, *col_labels]) + " |",
        "|" + "---|" * (len(col_labels) + 1),
    ]
    for i, label in enumerate(row_labels):
        cells = [
            _cell(rates[i][j], counts[i][j] if counts else None) for j in range(len(col_labels))
        ]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def heatmap_png(
    rates: Sequence[Sequence[float | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    dpi: int = 80,
) -> bytes:
    """PNG bytes of a heat map of ``rates`` (fractions; 0 = white, 1 = dark), each cell annotated
    with its percentage; undefined cells (``None``/nan) are grey and read "–"."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in rates], dtype=float
    ).reshape(len(row_labels), len(col_labels))
    size = max(3.0, 0.55 * max(len(row_labels), len(col_labels)) + 2.0)
    fig = Figure(figsize=(size + 1.0, size), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("0.85")  # nan cells
    image = ax.imshow(np.ma.masked_invalid(data), cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(col_labels)), labels=list(col_labels), rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), labels=list(row_labels))
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            text = "–" if math.isnan(v) else f"{100 * v:.0f}"
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if not math.isnan(v) and v > 0.6 else "black")  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, label="rate", shrink=0.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
