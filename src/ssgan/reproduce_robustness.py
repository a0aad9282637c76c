"""``ssgan reproduce robustness``: ASR of each attack after each channel transform (issue 17).

On ESC-10 (train folds 1-4, test fold 5) against EnvNet: SSGAN (t1 = 1.6 s) and SSGAN trained
with EOT, PGD and PGD with EOT, C&W, and Abdoli's iterative universal perturbation, each
evaluated once on the test fold and scored after every transform of ``ROBUSTNESS_TRANSFORMS``
(``ssgan.evaluation.robustness``: ASR counted on the clips the victim still gets right after the
same transform). Stages are resumable as in ``ssgan.reproduce``; the generators and the universal
perturbation are trained / fitted on the training folds only (validation on a tenth of them),
and no setting is chosen on fold 5.

Writes ``robustness.md`` / ``.json`` (the table), ``robustness.png`` (a bar chart of ASR per
transform and attack) and ``robustness.html`` (both, self-contained).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

from ssgan import distributed
from ssgan.attacks import PGD, UAPIterative, make_attack
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.evaluation import resolve_transforms
from ssgan.io import atomic_write, atomic_write_json, atomic_write_text
from ssgan.report.html import data_uri
from ssgan.reproduce_stages import (
    Reporter,
    ReproduceOptions,
    eval_stage,
    gan_stage,
    log,
    prepare_stages,
    reproduce_profile,
    run_stages,
    uap_stage,
)
from ssgan.transforms import EOT

#: The channels of the table. ``bgnoise`` (ESC-50's "wind" clips of folds 1-4, a class outside
#: ESC-10, so no test clip and no label leaks in) is added when those files exist.
ROBUSTNESS_TRANSFORMS = (
    "mp3:kbps=128",
    "mp3:kbps=64",
    "mp3:kbps=32",
    "resample:rate_hz=22050",
    "resample:rate_hz=11025",
    "resample:rate_hz=8000",
    "noise:snr_db=30",
    "noise:snr_db=20",
    "bandpass:low_hz=300,high_hz=3400",
    "gain:min_db=-6,max_db=6",
    "shift:max_ms=50",
    "reverb:rt60_s=0.3",
    "reverb:rt60_s=0.8",
)
BGNOISE_PATTERN = "[1-4]-*-16.wav"  # ESC-50 class 16 (wind), training folds only

#: What SSGAN + EOT and PGD + EOT train through: the codecs and rooms of the table at their
#: milder settings, so that the harsher ones (MP3 32 kbit/s, RT60 0.8 s) test generalisation.
DEFAULT_EOT = (
    "mp3:kbps=128",
    "mp3:kbps=64",
    "resample:rate_hz=8000",
    "resample:rate_hz=11025",
    "noise:snr_db=30",
    "reverb:rt60_s=0.3",
)
DEFAULT_EOT_PROB = 0.8  # a fifth of the crops stay clean, so G keeps working without a channel

METHODS = ("ssgan", "ssgan-eot", "pgd", "pgd-eot", "cw", "uap")
LABELS = {
    "ssgan": "SSGAN",
    "ssgan-eot": "SSGAN + EOT",
    "pgd": "PGD",
    "pgd-eot": "PGD + EOT",
    "cw": "C&W",
    "uap": "UAP (iterative)",
}


def robustness_transforms(dataset_root: Path) -> list[str]:
    """``ROBUSTNESS_TRANSFORMS``, plus real background noise when ESC-50's wind clips exist."""
    specs = list(ROBUSTNESS_TRANSFORMS)
    audio = dataset_root / "audio"
    if audio.is_dir() and any(audio.glob(BGNOISE_PATTERN)):
        specs.append(f"bgnoise:snr_db=20,path={audio},pattern={BGNOISE_PATTERN}")
    return specs


def reproduce_robustness(
    opts: ReproduceOptions,
    report: Reporter = log.info,
    *,
    methods: Sequence[str] = METHODS,
    transforms: Sequence[str] | None = None,
    eot: Sequence[str] = DEFAULT_EOT,
    eot_prob: float = DEFAULT_EOT_PROB,
) -> Path:
    """Train / fit what is missing, evaluate every attack on the test split after every
    transform, write the table and chart; returns ``robustness.md``."""

    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods={list(methods)}: expected a subset of {', '.join(METHODS)}")
    EOT(list(eot), prob=eot_prob)  # a bad --eot fails before hours of training
    train, test, gan_train, gan_val, info, stages, victim_dir = prepare_stages(opts, "envnet")
    root = Path(info["root"])
    specs = [t.spec for t in resolve_transforms(transforms or robustness_transforms(root))]
    profile = reproduce_profile(opts.profile)
    settings = {"pgd": dict(profile.pgd), "cw": dict(profile.cw)}
    eot_gan = [*opts.gan_overrides, f"eot={','.join(eot)}", f"eot_prob={eot_prob}"]
    makers: dict[str, Callable[[], Any]] = {}
    for method in methods:
        if method in ("ssgan", "ssgan-eot"):
            tag = "ssgan_1.6s" + ("_eot" if method == "ssgan-eot" else "")
            stages.append(
                gan_stage(
                    opts.out, tag, victim_dir=victim_dir, victim_spec=opts.victim_spec,
                    victim_checkpoint=opts.victim_checkpoint, profile=opts.profile,
                    segment_seconds=1.6, train=gan_train, val=gan_val, device=opts.device,
                    overrides=eot_gan if method == "ssgan-eot" else opts.gan_overrides,
                    info=info,
                )
            )  # fmt: skip
            makers[method] = partial(
                SSGANAttack.from_run, opts.out / tag, checkpoint="last", device=opts.device
            )
        elif method == "uap":
            stages.append(
                uap_stage(
                    opts.out, "uap-iterative", victim_dir=victim_dir, victim_spec=opts.victim_spec,
                    victim_checkpoint=opts.victim_checkpoint, profile=opts.profile,
                    train=train, device=opts.device, seed=opts.seed,
                    overrides=opts.uap_overrides,
                )
            )  # fmt: skip
            makers[method] = partial(UAPIterative.load, opts.out / "uap-iterative")
        elif method == "cw":
            makers[method] = partial(
                make_attack, "cw", {k: str(v) for k, v in settings["cw"].items()}
            )
        else:
            kwargs = dict(settings["pgd"])
            if method == "pgd-eot":
                kwargs.update(eot=tuple(eot), eot_samples=profile.eot_samples)
            makers[method] = partial(PGD, **kwargs)
    for method in methods:
        stages.append(
            eval_stage(
                opts.out, f"{_tag(method)}_test", make=makers[method], victim_dir=victim_dir,
                victim_checkpoint=opts.victim_checkpoint, victim_spec=opts.victim_spec,
                dataset=test, device=opts.device,
                title=f"{LABELS[method]} on {info['dataset']} test ({opts.split}), robustness",
                paper_rows=[], meta={"attack": method, "subset": "test", **info,
                                     **_config_of(method, makers[method])},
                seed=opts.seed, transforms=specs,
            )
        )  # fmt: skip
    seconds = run_stages(stages, report)
    caption = (
        f"ASR (%) of each attack against EnvNet on {info['dataset']} {opts.split} "
        f"({info['n_test']} test clips; profile {opts.profile}) after each channel transform. "
        f"EOT trains through {', '.join(eot)} (probability {eot_prob:g})."
    )

    return distributed.on_main(
        lambda: write_robustness_table(opts.out, list(methods), specs, caption, seconds)
    )


def _config_of(method: str, make: Callable[[], Any]) -> dict[str, Any]:
    """The settings of a per-sample attack (cheap to build) for its summary."""
    return {"attack_config": make().config()} if method in ("pgd", "pgd-eot", "cw") else {}


def _tag(method: str) -> str:
    return {"ssgan": "ssgan_1.6s", "ssgan-eot": "ssgan_1.6s_eot"}.get(method, method)


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def write_robustness_table(
    out: Path,
    methods: Sequence[str],
    specs: Sequence[str],
    caption: str,
    seconds: Mapping[str, float] | None = None,
) -> Path:
    """``robustness.{md,json,png,html}`` from the ``<method>_test/summary.json`` files."""
    summaries = {m: _summary(out / f"{_tag(m)}_test") for m in methods}
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
            [LABELS[m], *msnr, "–" if per_clip is None else f"{per_clip:.3g}", _pct(s.get("asr"))]
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
    png = robustness_chart_png([LABELS[m] for m in methods], ["none", *specs], asr)
    atomic_write(out / "robustness.png", lambda tmp: tmp.write_bytes(png))
    atomic_write_text(out / "robustness.html", _html(caption, head, rows, note, png))
    return md


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


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


__all__ = [
    "DEFAULT_EOT",
    "METHODS",
    "ROBUSTNESS_TRANSFORMS",
    "reproduce_robustness",
    "robustness_chart_png",
    "robustness_transforms",
    "write_robustness_table",
]
