"""IBM's Adversarial Robustness Toolbox (ART), both ways (``pip install ssgan[art]``).

ART -> ssgan: ``victim_from_art(classifier)`` turns an ART ``PyTorchClassifier`` into an ssgan
victim, an ``nn.Module`` from ``(batch, time)`` waveforms to the logits ART's ``predict`` gives
(its ``preprocessing`` (mean, std) and other PyTorch preprocessors applied, the input reshaped
to its ``input_shape``), differentiable; ``SSGANEvasion``, ``UniversalEvasion`` and
``DDNEvasion`` are ART ``EvasionAttack`` s that run ssgan's attacks on an ART estimator::

    from ssgan.art import SSGANEvasion
    from ssgan.attacks.ssgan import SSGANAttack

    evasion = SSGANEvasion(classifier, SSGANAttack.from_run("runs/gan"))
    x_adv = evasion.generate(x)            # numpy (n, *input_shape) float32, y from predict

ssgan -> ART: ``art_classifier(victim, time_samples=...)`` wraps an ssgan victim in an ART
``PyTorchClassifier`` (clip values ``(-1, 1)``, cross-entropy loss), so ART's own attacks run on
ssgan's models::

    from art.attacks.evasion import FastGradientMethod

    x_adv = FastGradientMethod(art_classifier(victim, time_samples=80_000), eps=0.01).generate(x)

ART's conventions hold: ``generate(x, y=None)`` takes and returns numpy float32; ``y`` is one-hot
or class indices, the estimator's own predictions when ``None``; with ``targeted=True`` ``y``
holds the targets (required), and the true labels are the estimator's predictions; the result is
clipped to the estimator's ``clip_values``. ssgan's attacks need waveforms in ``[-1, 1]``.

Nothing in ``ssgan`` imports this package, so ``import ssgan`` never imports ART. The victim
side is ``ssgan.art.victim``, the attacks ``ssgan.art.evasion``.
"""

from __future__ import annotations

from ssgan.art.evasion import DDNEvasion, SSGANEvasion, UniversalEvasion
from ssgan.art.victim import ArtVictim, art_classifier, victim_from_art

__all__ = [
    "ArtVictim",
    "DDNEvasion",
    "SSGANEvasion",
    "UniversalEvasion",
    "art_classifier",
    "victim_from_art",
]
