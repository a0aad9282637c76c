"""The report's figures and sounds: the paper's Fig. 5 panels as PNG, clips as WAV bytes.

Fig. 5 of the SSGAN paper shows, for one clip: (a) the waveform of ``x``, (b) that of ``x_adv``,
(c) and (d) their spectrograms, (e) the perturbation ``delta`` (orange) over ``x`` (blue). We draw
the same five panels. matplotlib is imported inside the functions and drawn on an Agg canvas
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), so importing this module neither loads
matplotlib nor touches pyplot's global backend or figure registry.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch

from ssgan import SAMPLE_RATE

# "Nice" gains for the amplified perturbation, so that the label reads x10, x20, x50, ...
_NICE_GAINS = tuple(m * 10**e for e in range(0, 6) for m in (1, 2, 5))


@dataclass
class Example:
    """One attacked clip kept for the report: its audio and the victim's decisions.

    ``x``, ``x_adv``: float32 ``(time,)`` arrays at ``sample_rate``. Class fields are indices;
    the ``*_name`` fields their class names (or the index as text when names are unknown).
    """

    name: str
    label: int
    clean_pred: int
    adv_pred: int
    success: bool
    snr_db: float
    x: np.ndarray
    x_adv: np.ndarray
    label_name: str = ""
    clean_pred_name: str = ""
    adv_pred_name: str = ""
    adv_pred_pcm16: int | None = None
    sample_rate: int = SAMPLE_RATE
    snr_box_db: float | None = None  # [16]'s box convention (ssgan.metrics); None: not known

    @property
    def delta(self) -> np.ndarray:
        return (np.asarray(self.x_adv, np.float64) - np.asarray(self.x, np.float64)).astype(
            np.float32
        )


def perturbation_gain(delta: np.ndarray, *, peak: float = 0.9) -> tuple[float, float]:
    """``(gain, gain_db)``: the largest of 1, 2, 5, 10, 20, 50, ... with ``max|delta| * gain <=
    peak``, so the amplified perturbation is audible and does not clip. ``(1, 0)`` for silence.
    """
    if not 0 < peak <= 1:
        raise ValueError(f"peak={peak!r}: must be in (0, 1]")
    top = float(np.max(np.abs(delta))) if np.size(delta) else 0.0
    gain = 1.0
    if top == 0:  # no perturbation: nothing to amplify
        return gain, 0.0
    for g in _NICE_GAINS:
        if top * g <= peak:
            gain = float(g)
    return gain, 20.0 * math.log10(gain)


def gain_label(gain: float, gain_db: float) -> str:
    """E.g. ``"perturbation x20 (+26 dB)"``."""
    return f"perturbation x{gain:g} (+{gain_db:.0f} dB)"


def wav_bytes(x: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit PCM WAV file of ``x`` ((time,) float in [-1, 1], clipped) as bytes."""
    buf = io.BytesIO()
    data = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    sf.write(buf, data, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def spectrogram_db(x: np.ndarray, *, n_fft: int = 512, hop_length: int = 128) -> np.ndarray:
    """Magnitude STFT in dB re 1 (Hann window), ``(time,) -> (n_fft // 2 + 1, frames)``."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.numel() < n_fft:
        t = torch.nn.functional.pad(t, (0, n_fft - t.numel()))
    spec = torch.stft(
        t, n_fft, hop_length, window=torch.hann_window(n_fft), center=True, return_complex=True
    )
    return (20.0 * torch.log10(spec.abs().clamp_min(1e-8))).numpy()


def fig5_png(
    x: np.ndarray,
    x_adv: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    title: str = "",
    dpi: int = 80,
    dynamic_range_db: float = 80.0,
) -> bytes:
    """The paper's Fig. 5 panels for one clip as PNG bytes.

    (a) waveform of ``x``; (b) waveform of ``x_adv``; (c), (d) their spectrograms on one shared
    colour scale (the top ``dynamic_range_db`` dB below the louder one's maximum), so a
    difference in colour is a difference in level; (e) ``delta = x_adv - x`` (orange) over ``x``
    (blue) on the same axis. ``x``, ``x_adv``: ``(time,)``. ``dpi`` ~80 keeps a figure ~100 KB.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(x, dtype=np.float32).reshape(-1)
    x_adv = np.asarray(x_adv, dtype=np.float32).reshape(-1)
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv differ in shape: {x.shape} vs {x_adv.shape}")
    delta = x_adv - x
    t = np.arange(x.size) / sample_rate
    duration = x.size / sample_rate

    fig = Figure(figsize=(12, 5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 3)
    ax_a = fig.add_subplot(grid[0, 0])
    ax_b = fig.add_subplot(grid[0, 1], sharex=ax_a, sharey=ax_a)
    ax_c = fig.add_subplot(grid[1, 0], sharex=ax_a)
    ax_d = fig.add_subplot(grid[1, 1], sharex=ax_a, sharey=ax_c)
    ax_e = fig.add_subplot(grid[:, 2], sharex=ax_a)

    ax_a.plot(t, x, lw=0.5, color="C0")
    ax_a.set_title("(a) x")
    ax_b.plot(t, x_adv, lw=0.5, color="C0")
    ax_b.set_title("(b) x_adv")
    ax_a.set_ylim(-1.05, 1.05)

    spec_x, spec_adv = spectrogram_db(x), spectrogram_db(x_adv)
    vmax = float(max(spec_x.max(), spec_adv.max()))
    extent = (0.0, duration, 0.0, sample_rate / 2000.0)
    for ax, spec, name in ((ax_c, spec_x, "(c) x"), (ax_d, spec_adv, "(d) x_adv")):
        image = ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap="magma",
            vmin=vmax - dynamic_range_db,
            vmax=vmax,
            interpolation="nearest",
        )
        ax.set_title(f"{name} spectrogram")
        ax.set_ylabel("kHz")
        ax.set_xlabel("time (s)")
    fig.colorbar(image, ax=[ax_c, ax_d], label="dB", shrink=0.9)

    ax_e.plot(t, x, lw=0.5, color="C0", label="x")
    ax_e.plot(t, delta, lw=0.5, color="C1", label="delta = x_adv - x")
    ax_e.set_title("(e) perturbation over x")
    ax_e.set_xlabel("time (s)")
    ax_e.legend(loc="upper right", fontsize="small")
    if title:
        fig.suptitle(title)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


__all__ = [
    "Example",
    "fig5_png",
    "gain_label",
    "perturbation_gain",
    "spectrogram_db",
    "wav_bytes",
]
