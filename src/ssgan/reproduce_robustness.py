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
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ssgan import distributed
from ssgan.attacks import PGD, UAPIterative, make_attack
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.evaluation import resolve_transforms
from ssgan.report.robustness import write_robustness_table as report_table
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


def write_robustness_table(
    out: Path,
    methods: Sequence[str],
    specs: Sequence[str],
    caption: str,
    seconds: Mapping[str, float] | None = None,
) -> Path:
    """The table of ``methods`` from their ``<method>_test/summary.json`` files under ``out``
    (``ssgan.report.robustness``)."""
    summaries = {m: _summary(out / f"{_tag(m)}_test") for m in methods}
    return report_table(out, summaries, LABELS, specs, caption, seconds)


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


__all__ = [
    "DEFAULT_EOT",
    "METHODS",
    "ROBUSTNESS_TRANSFORMS",
    "reproduce_robustness",
    "robustness_transforms",
    "write_robustness_table",
]
