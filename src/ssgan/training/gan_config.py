"""The SSGAN training run's hyperparameters: ``GANTrainConfig`` and its named ``PROFILES``.

``GANTrainConfig`` defaults to the paper's recipe (section V-A); ``PROFILES`` names the configs
the CLI and ``SSGANAttack.fit`` train with, from a seconds-long smoke run to the paper's GPU job.
The training itself is in ``ssgan.training.gan`` (the loop) and ``ssgan.training.gan_steps``.
"""

from __future__ import annotations

import dataclasses

from ssgan import SAMPLE_RATE
from ssgan.models.generators.spec import DEFAULT_MAX_DELTA, GeneratorSpec
from ssgan.transforms import eot_for

__all__ = ["PROFILES", "GANTrainConfig"]


@dataclasses.dataclass
class GANTrainConfig:
    """Hyperparameters of one SSGAN training run (defaults = the paper's, section V-A)."""

    segment_seconds: float = 1.6  # t1; the paper's best of {0.8, 1.6, 3.2, 4.0}
    epochs: int = 150
    batch_size: int = 16
    # Batches per epoch; None = one pass over the training clips (ceil(n / batch_size)).
    steps_per_epoch: int | None = None
    lr: float = 1e-4  # Adam, both G and D
    lr_halve_every: int = 10  # epochs; lr *= 0.5 each time
    alpha: float = 10.0  # weight of L_adv
    beta: float = 1.0  # weight of L_pert
    margin: float = 10.0  # m of L_adv, on the victim's logits
    # None: the paper's L_pert = E||delta||_2. A number: penalise ||delta|| only where the
    # example's SNR falls below it (hinge; see ssgan.losses.perturbation_loss for why).
    pert_target_snr_db: float | None = None
    real_label_min: float = 0.9  # soft labels: real ~ U[min, max], fake ~ U[min, max]
    real_label_max: float = 1.0
    fake_label_min: float = 0.0
    fake_label_max: float = 0.1
    flip_prob: float = 0.05  # probability of swapping an example's real / fake label for D
    target_class: int | None = None  # None: untargeted; else every clip is pushed to this class
    # One class-conditional G for every target: each G step aims each crop at a class drawn
    # uniformly among the other classes (ssgan.targets); n_classes 0 = the victim's count.
    targeted: bool = False
    n_classes: int = 0
    g_channels: int = 8
    g_down: int = 2
    g_blocks: int = 4
    g_block_kernel: int = 3
    max_delta: float = DEFAULT_MAX_DELTA
    g_norm: bool = False  # instance norm in G
    g_context: bool = False  # FiLM G's bottleneck from its mean over the segment
    # G also reads the victim's input gradient (the clip-level victim with grad_crops crops in
    # training, the victim as given at attack time) and starts as the L2 fast gradient method.
    g_grad: bool = False
    g_pattern: bool = False  # a learned universal waveform of one segment inside G
    # G acts through a copy of the victim's front end: delta = J_p(x)^T u(p(x)) with a learned
    # u (ssgan.models.generators.front_end); g_front_spec is filled from the victim when
    # training starts.
    g_front: bool = False
    g_front_spec: tuple[int, ...] = ()
    # G as a complex mask on the segment's own STFT (ssgan.models.generators.spectral),
    # 16 * g_channels wide.
    g_spectral: bool = False
    # > 0: G's output low-passed at this frequency before the exact-SNR scaling (needs
    # g_output="snr"), so all of its loudness lies in the band a channel keeps.
    g_lowpass_hz: float = 0.0
    grad_crops: int | None = 2
    # "tanh": the paper's bounded output; "snr": G's direction at exactly snr_db per segment.
    g_output: str = "tanh"
    snr_db: float = 30.0
    # What snr_db (and select_snr_db) is measured against: "true" (the audio itself) or "box"
    # ([16]'s box convention, x + 1, in which the paper states its SNR; ssgan.metrics).
    snr_convention: str = "true"
    # A curriculum on the SNR (g_output="snr"): training starts at snr_start_db and rises
    # linearly to snr_db over snr_ramp_epochs epochs; validation and checkpoints use snr_db.
    snr_start_db: float | None = None
    snr_ramp_epochs: int = 0
    # g_output="snr": G picks each segment's SNR in snr_db +- loudness_range_db, and the loss
    # adds loudness_weight * mean(snr_db + loudness_range_db - SNR) / 10 dB (quieter is better).
    loudness_range_db: float = 0.0
    loudness_weight: float = 0.0
    gamma: float = 1.0  # weight of L_fool (D's term); 0 drops D: no D step at all
    # Mean of L_adv over the examples the victim still gets right, not the whole batch.
    adv_unfooled_only: bool = False
    # What the G step scores: "clip" = the clip-level victim on the crop (victim_crops crops);
    # "windows" = the victim's window network on victim_crops (default 1) windows at random
    # offsets inside the crop, so G learns perturbations that work wherever a window falls.
    victim_view: str = "clip"
    # Training crop length; None = t1. A longer crop is cut into t1 segments, each perturbed
    # by G and stitched back exactly as the attack does, so the victim sees segment seams.
    crop_seconds: float | None = None
    # Epochs whose validation MSNR is below this rank after every epoch that reaches it (the
    # `best` checkpoint is never chosen on ASR alone). None: snr_db for g_output="snr", else
    # pert_target_snr_db.
    select_snr_db: float | None = None
    d_mfe_channels: int = 16
    d_del_channels: int = 16
    # Crops the clip-level victim scores in the G step (None: the victim's own, 10 officially).
    # The t1 segment is only a proxy of the clip the attack meets later (whose 10 crops fall
    # elsewhere), so scoring fewer evenly spaced crops is an equally good proxy at a fraction of
    # the cost: the victim's forward+backward is ~90 % of a CPU training step.
    victim_crops: int | None = None
    # bfloat16 autocast for G only. D and the victim stay float32: bf16 keeps 8 mantissa bits, so
    # x + delta rounded to bf16 loses a 30 dB perturbation (relative size 0.03) almost entirely.
    bf16: bool = False
    # Expectation over transformation (docs/robustness.md): the G step's victim scores x_adv
    # after one of these ssgan.transforms specs, drawn per crop with probability eot_prob, so G
    # learns perturbations that survive the channel (MP3, resampling: straight-through gradient).
    eot: tuple[str, ...] = ()
    eot_prob: float = 1.0
    seed: int = 0
    val_clips: int | None = 64  # held-out clips attacked each epoch; None = all of them
    val_batch_size: int = 8
    chunk_segments: int = 64  # segments through G at once during validation

    def __post_init__(self) -> None:
        positive = {
            "segment_seconds": self.segment_seconds,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "lr_halve_every": self.lr_halve_every,
            "val_batch_size": self.val_batch_size,
            "chunk_segments": self.chunk_segments,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name}={value!r}: must be > 0")
        for name in ("alpha", "beta", "margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be >= 0")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={self.steps_per_epoch!r}: must be >= 1 or None")
        if self.victim_crops is not None and self.victim_crops < 1:
            raise ValueError(f"victim_crops={self.victim_crops!r}: must be >= 1 or None")
        if self.val_clips is not None and self.val_clips < 0:
            raise ValueError(f"val_clips={self.val_clips!r}: must be >= 0 or None")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob={self.flip_prob!r}: must be in [0, 1]")
        for lo, hi in (("real_label_min", "real_label_max"), ("fake_label_min", "fake_label_max")):
            a, b = getattr(self, lo), getattr(self, hi)
            if not 0.0 <= a <= b <= 1.0:
                raise ValueError(f"{lo}={a!r}, {hi}={b!r}: need 0 <= {lo} <= {hi} <= 1")
        if self.victim_view not in ("clip", "windows"):
            raise ValueError(
                f"victim_view={self.victim_view!r}: expected one of ('clip', 'windows')"
            )
        for name in ("gamma", "loudness_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be >= 0")
        if self.snr_convention != "true" and self.g_output != "snr":
            # the tanh output's loudness comes from the SNR hinge of ssgan.losses, a true SNR
            raise ValueError(
                f"snr_convention={self.snr_convention!r} needs g_output='snr' (got "
                f"{self.g_output!r})"
            )
        self._check_generator()
        if self.snr_start_db is not None and (self.g_output != "snr" or self.snr_ramp_epochs < 1):
            raise ValueError(
                f"snr_start_db={self.snr_start_db!r} needs g_output='snr' and snr_ramp_epochs "
                f">= 1 (got {self.g_output!r}, {self.snr_ramp_epochs})"
            )
        if self.g_front_spec and not self.g_front:
            raise ValueError("g_front_spec is set from the victim; it needs g_front=true")
        if self.grad_crops is not None and self.grad_crops < 1:
            raise ValueError(f"grad_crops={self.grad_crops!r}: must be >= 1 or None")
        if self.eot:
            eot_for(tuple(self.eot), self.eot_prob)  # ValueError naming a bad spec or prob
        if self.targeted and self.target_class is not None:
            raise ValueError(
                "targeted=True (every target) and target_class (one) exclude each other"
            )
        if self.crop_seconds is not None and self.crop_seconds < self.segment_seconds:
            raise ValueError(
                f"crop_seconds={self.crop_seconds!r}: must be >= segment_seconds "
                f"({self.segment_seconds}) or None"
            )

    def training_snr_db(self, epoch: int) -> float:
        """The SNR G trains at in 0-based ``epoch`` (the curriculum; ``snr_db`` without one)."""
        if self.snr_start_db is None:
            return self.snr_db
        done = min(1.0, epoch / self.snr_ramp_epochs)
        return self.snr_start_db + done * (self.snr_db - self.snr_start_db)

    @property
    def segment_samples(self) -> int:
        return max(1, round(self.segment_seconds * SAMPLE_RATE))

    @property
    def crop_samples(self) -> int:
        if self.crop_seconds is None:
            return self.segment_samples
        return max(1, round(self.crop_seconds * SAMPLE_RATE))

    @property
    def selection_snr_db(self) -> float | None:
        if self.select_snr_db is not None:
            return self.select_snr_db
        return self.snr_db if self.g_output == "snr" else self.pert_target_snr_db

    def _check_generator(self) -> None:
        """Refuse ``g_*`` settings that make no generator, by ``GeneratorSpec``'s own rules.

        Training reads two of the spec's fields from the victim when it starts (its class count
        for ``targeted``, its front end for ``g_front``); until then stand-ins of the right kind
        take their place, so a combination the spec refuses is refused here, when it is set."""
        num_classes = (self.n_classes or 2) if self.targeted else 0
        front = self.g_front_spec or ((1,) * 7 if self.g_front else ())
        try:
            self._generator_spec(num_classes, front)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (GeneratorSpec's names: GANTrainConfig.generator_spec maps the g_* "
                "settings onto them)"
            ) from None

    def generator_spec(self) -> GeneratorSpec:
        """The generator this config trains (the ``g_*`` settings by their spec names)."""
        return self._generator_spec(self.n_classes if self.targeted else 0, self.g_front_spec)

    def _generator_spec(self, num_classes: int, front: tuple[int, ...]) -> GeneratorSpec:
        shape = {spec_name: getattr(self, name) for name, spec_name in SHAPE_SETTINGS}
        return GeneratorSpec(
            **shape,
            num_classes=num_classes,
            pattern_samples=self.segment_samples if self.g_pattern else 0,
            front=front,
        )

    def with_generator(self, spec: GeneratorSpec) -> GANTrainConfig:
        """This config set to train ``spec`` (the inverse of ``generator_spec``; a ``front``
        spec also sets ``g_front``, so training copies the victim's front end into G)."""
        return dataclasses.replace(
            self,
            **{name: getattr(spec, spec_name) for name, spec_name in SHAPE_SETTINGS},
            targeted=spec.num_classes > 0,
            n_classes=spec.num_classes,
            g_pattern=spec.pattern_samples > 0,
            g_front=bool(spec.front),
            g_front_spec=spec.front,
        )


#: The settings that are the generator's shape, by their name here and in ``GeneratorSpec`` (the
#: settings keep the ``g_`` names users write in ``--set gan.KEY=V``; the spec has one name each).
#: The class count, the pattern's length and the front end are set from the victim and t1.
SHAPE_SETTINGS: tuple[tuple[str, str], ...] = (
    ("g_channels", "channels"),
    ("g_down", "n_down"),
    ("g_blocks", "n_blocks"),
    ("g_block_kernel", "block_kernel"),
    ("max_delta", "max_delta"),
    ("g_norm", "norm"),
    ("g_output", "output"),
    ("snr_db", "snr_db"),
    ("loudness_range_db", "loudness_range_db"),
    ("g_context", "context"),
    ("g_grad", "grad_input"),
    ("g_spectral", "spectral"),
    ("g_lowpass_hz", "lowpass_hz"),
    ("snr_convention", "snr_convention"),
)


_RECIPE = GANTrainConfig(
    epochs=30,
    batch_size=16,
    steps_per_epoch=100,
    lr=1e-3,
    lr_halve_every=10,
    val_clips=None,
    g_output="snr",
    snr_db=30.0,
    gamma=0.0,
    beta=0.0,
    margin=5.0,
    victim_view="windows",
)

PROFILES: dict[str, GANTrainConfig] = {
    # Seconds: the tests and a CLI check.
    "smoke": GANTrainConfig(
        epochs=2, batch_size=8, steps_per_epoch=4, lr=1e-3, val_clips=8, lr_halve_every=10
    ),
    # Minutes on the bundled clips: the cpu recipe with fewer steps (see docs/notebook/recipe.md).
    "demo": dataclasses.replace(
        _RECIPE, epochs=3, steps_per_epoch=50, lr_halve_every=2, snr_db=25.0, val_clips=32
    ),
    # Our recipe, the default (docs/notebook/recipe.md has the sweep behind each choice): G's
    # output at an exact SNR (no norm loss, so no collapse to nothing and no noise at a bound), no
    # D, the margin on the victim's window network at a random offset inside the crop.
    "cpu": _RECIPE,
    # The recipe with the gradient-informed G (it queries the victim's gradient at attack time:
    # its own row), scored on the clip victim with 2 crops so training keeps its FGM start
    # (docs/notebook/recipe.md, "Whole clips and the gradient-informed generator").
    "cpu-grad": dataclasses.replace(_RECIPE, g_grad=True, victim_view="clip", victim_crops=2),
    # The recipe with G acting through a copy of the victim's front end (EnvNet, EnvNet-v2
    # victims only; docs/notebook/recipe.md, "G through the victim's front end"). u is 64 wide.
    "cpu-front": dataclasses.replace(_RECIPE, g_front=True),
    # The recipe with G as a complex mask on the input's STFT (docs/notebook/recipe.md,
    # eighth sweep).
    "cpu-spectral": dataclasses.replace(_RECIPE, g_spectral=True),
    # The paper's budget read as the paper reads it: the recipe at an exact SNR of 36.0 dB in
    # [16]'s box convention (ssgan.metrics), 0.3 dB above the paper's MSNR of 35.7 dB so that the
    # clip-level MSNR_box (segments stitched, clipped to [-1, 1]) stays at or above it
    # (docs/reproduction.md). Query-free, like the recipe.
    "cpu-box": dataclasses.replace(_RECIPE, snr_convention="box", snr_db=36.0),
    # The old CPU recipe (tanh bounded at 0.01, SNR hinge, D on, 4 clip crops), for comparison.
    "cpu-tanh": GANTrainConfig(
        epochs=30,
        batch_size=16,
        lr=1e-3,
        lr_halve_every=10,
        val_clips=None,
        victim_crops=4,
        pert_target_snr_db=30.0,
        margin=5.0,
        max_delta=0.01,
    ),
    # The paper's values (section V-A): a GPU job. Measured on an H200 against a 85.0 % EnvNet on
    # ESC-10 (docs/notebook/history.md, "On a GPU"): test ASR 58.8-60.3 % at 5.7-6.2 dB for every
    # t1, flat from epoch ~11 on; ESC-10 gives 18 steps an epoch where the paper's ESC-50 gave 112.
    "paper": GANTrainConfig(),
}


def fit_config(
    profile: str,
    spec: GeneratorSpec,
    segment_seconds: float,
    seed: int,
    epochs: int | None = None,
) -> GANTrainConfig:
    """The training config of ``SSGANAttack.fit``: the ``profile``'s settings with the attack's
    generator shape, crop length t1, seed and (if given) epochs."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: expected one of {', '.join(PROFILES)}")
    config = dataclasses.replace(
        PROFILES[profile].with_generator(spec), segment_seconds=segment_seconds, seed=seed
    )
    return config if epochs is None else dataclasses.replace(config, epochs=epochs)
