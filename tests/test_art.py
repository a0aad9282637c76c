"""ssgan.art against the released adversarial-robustness-toolbox, both ways.

ART -> ssgan: ``victim_from_art`` reproduces ``PyTorchClassifier.predict`` (preprocessing and
input shape included); SSGAN, DDN and a universal perturbation run through ART's ``generate``
give the same adversarial clips, and fool the same ones, as run natively on the same victim.
ssgan -> ART: ART's own attacks run on ``art_classifier(victim)``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("art", reason="needs the art extra: pip install ssgan[art]")

from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
from art.estimators.classification import BlackBoxClassifier, PyTorchClassifier

from ssgan.art import (
    DDNEvasion,
    SSGANEvasion,
    UniversalEvasion,
    art_classifier,
    victim_from_art,
)
from ssgan.attacks import DDN, FGSM, UAPIterative
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.models.generators import build_generator
from ssgan.models.generators.spec import GeneratorSpec

pytestmark = pytest.mark.slow

SR = 16_000
TIME = 4000


class ChannelFirst(nn.Module):
    """The tiny victim behind ART's usual ``(n, 1, T)`` input shape."""

    def __init__(self, victim: nn.Module) -> None:
        super().__init__()
        self.victim = victim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.victim(x[:, 0])


def _classifier(victim: nn.Module, **kwargs) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=ChannelFirst(victim),
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, TIME),
        nb_classes=4,
        clip_values=(-1.0, 1.0),
        device_type="cpu",
        **kwargs,
    )


@pytest.fixture()
def clips(synth):
    x, y = synth(8, TIME, seed=7)
    return x * 0.9, y


def _fooled(classifier: PyTorchClassifier, x_adv: np.ndarray, y: torch.Tensor) -> set[int]:
    pred = classifier.predict(x_adv).argmax(1)
    return set(np.flatnonzero(pred != y.numpy()).tolist())


@pytest.mark.parametrize("preprocessing", [(0.0, 1.0), (0.05, 0.5)])
def test_victim_from_art_reproduces_predict(tiny_victim, clips, preprocessing) -> None:
    x, _ = clips
    classifier = _classifier(tiny_victim, preprocessing=preprocessing)
    victim = victim_from_art(classifier)
    assert victim.n_classes == 4
    expected = classifier.predict(x[:, None].numpy())
    assert np.allclose(victim(x).detach().numpy(), expected, atol=1e-5)
    # differentiable, and the gradient is ART's own
    x_var = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(
        victim(x_var), torch.zeros(8, dtype=torch.long)
    ).backward()  # ART: mean
    art_grad = classifier.loss_gradient(x[:, None].numpy(), np.eye(4)[np.zeros(8, dtype=int)])
    assert x_var.grad is not None
    assert np.allclose(x_var.grad.numpy(), art_grad[:, 0], atol=1e-5)


def test_victim_from_art_refuses_what_it_cannot_reproduce(tiny_victim) -> None:
    with pytest.raises(TypeError, match="PyTorchClassifier"):
        victim_from_art(tiny_victim)
    wide = PyTorchClassifier(model=tiny_victim, loss=nn.CrossEntropyLoss(), input_shape=(2, TIME),
                             nb_classes=4)  # fmt: skip
    with pytest.raises(ValueError, match="one mono waveform"):
        victim_from_art(wide)


def _ssgan() -> SSGANAttack:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g = build_generator(
            GeneratorSpec(channels=4, n_blocks=1, output="snr", snr_db=-10.0)
        ).eval()
    return SSGANAttack.from_generator(g, segment_seconds=1000 / SR)


def _check_same(classifier, x_art: np.ndarray, x_native: torch.Tensor, y: torch.Tensor) -> None:
    assert x_art.dtype == np.float32 and x_art.shape == (8, 1, TIME)
    assert np.allclose(x_art[:, 0], x_native.numpy(), atol=1e-6)
    fooled = _fooled(classifier, x_art, y)
    assert fooled == _fooled(classifier, x_native[:, None].numpy(), y)
    assert fooled, "the attack fooled nothing: the comparison proves little"


def test_ssgan_through_art_equals_native(tiny_victim, clips) -> None:
    x, y = clips
    classifier = _classifier(tiny_victim)
    attack = _ssgan()
    x_art = SSGANEvasion(classifier, attack, batch_size=3).generate(x[:, None].numpy(), y.numpy())
    _check_same(classifier, x_art, attack(victim_from_art(classifier), x, y), y)


def test_a_generator_transfers_to_any_art_classifier(tiny_victim, clips) -> None:
    """A black box (ART's ``BlackBoxClassifier``, predictions only): the generator needs no
    victim query, so it runs; an attack that queries the victim is refused up front."""
    x, y = clips
    box = BlackBoxClassifier(lambda a: tiny_victim(torch.from_numpy(a)).numpy(), (TIME,), 4,
                             clip_values=(-1.0, 1.0))  # fmt: skip
    attack = _ssgan()
    x_art = SSGANEvasion(box, attack).generate(x.numpy(), y.numpy())
    assert np.allclose(x_art, attack(tiny_victim, x, y).numpy(), atol=1e-6)
    quiet = SSGANAttack.from_generator(attack.generator, segment_seconds=1000 / SR, quietest=True)
    with pytest.raises(ValueError, match="PyTorchClassifier"):
        SSGANEvasion(box, quiet)


def test_ddn_through_art_equals_native(tiny_victim, clips) -> None:
    x, y = clips
    classifier = _classifier(tiny_victim)
    one_hot = np.eye(4, dtype=np.float32)[y.numpy()]  # ART's other label format
    settings = {"steps": 10, "init_snr_db": 0.0, "min_snr_db": -20.0}
    x_art = DDNEvasion(classifier, **settings).generate(x[:, None].numpy(), one_hot)
    _check_same(classifier, x_art, DDN(**settings)(victim_from_art(classifier), x, y), y)


def test_universal_through_art_equals_native(tiny_victim, clips) -> None:
    x, y = clips
    classifier = _classifier(tiny_victim)

    def uap() -> UAPIterative:
        return UAPIterative(xi=0.8, length=TIME, max_passes=2, ddn_steps=10, ddn_init_norm=20.0)

    evasion = UniversalEvasion(classifier, uap())
    x_art = evasion.generate(x[:, None].numpy(), y.numpy())
    native = uap().fit(victim_from_art(classifier), x, y)
    assert evasion.noise is not None and native.v is not None
    assert np.allclose(evasion.noise, native.v.numpy())
    _check_same(classifier, x_art, native(victim_from_art(classifier), x, y), y)


def test_targeted_ddn_uses_y_as_targets(tiny_victim, clips) -> None:
    x, y = clips
    classifier = _classifier(tiny_victim)
    target = (y + 1) % 4
    target[0] = int(classifier.predict(x[:1, None].numpy()).argmax())  # already there: unchanged
    evasion = DDNEvasion(classifier, steps=20, init_snr_db=0.0, min_snr_db=-20.0, targeted=True)
    x_art = evasion.generate(x[:, None].numpy(), target.numpy())
    assert np.array_equal(x_art[0, 0], x[0].numpy())
    hit = classifier.predict(x_art).argmax(1) == target.numpy()
    assert hit.all()
    with pytest.raises(ValueError, match="target labels"):
        evasion.generate(x[:, None].numpy())


def test_y_defaults_to_the_estimators_predictions(tiny_victim, clips) -> None:
    x, _ = clips
    classifier = _classifier(tiny_victim)
    pred = torch.as_tensor(classifier.predict(x[:, None].numpy()).argmax(1))
    evasion = DDNEvasion(classifier, steps=5)
    assert np.array_equal(evasion.generate(x[:, None].numpy()),
                          evasion.generate(x[:, None].numpy(), pred.numpy()))  # fmt: skip


def test_results_are_clipped_to_the_estimators_clip_values(tiny_victim, clips) -> None:
    x, y = clips
    classifier = _classifier(tiny_victim)
    classifier.set_params(clip_values=(-0.5, 0.5))
    x_art = SSGANEvasion(classifier, _ssgan()).generate(x[:, None].numpy() * 0.5, y.numpy())
    assert float(np.abs(x_art).max()) <= 0.5


def test_evasion_parameters_are_checked(tiny_victim) -> None:
    classifier = _classifier(tiny_victim)
    with pytest.raises(ValueError, match="batch_size"):
        DDNEvasion(classifier, batch_size=0)
    with pytest.raises(ValueError, match="gamma"):
        DDNEvasion(classifier, gamma=2.0)
    evasion = DDNEvasion(classifier)
    evasion.set_params(steps=3)
    assert evasion.steps == 3
    with pytest.raises(ValueError, match="steps"):
        evasion.set_params(steps=0)
    with pytest.raises(ValueError, match="not fitted"):
        UniversalEvasion(classifier, UAPIterative(length=TIME), fit=False)
    with pytest.raises(ValueError, match="no generator"):
        SSGANEvasion(classifier, SSGANAttack(segment_seconds=0.1))


def test_art_attacks_run_on_an_ssgan_victim(tiny_victim, clips) -> None:
    x, y = clips
    classifier = art_classifier(tiny_victim, time_samples=TIME, n_classes=4)
    assert classifier.clip_values is not None and tuple(classifier.clip_values) == (-1.0, 1.0)
    assert np.allclose(classifier.predict(x.numpy()), tiny_victim(x).numpy(), atol=1e-5)
    # ART's FGSM is ssgan's FGSM on the same victim
    x_fgm = FastGradientMethod(classifier, eps=0.5).generate(x.numpy(), y.numpy())
    assert x_fgm.dtype == np.float32 and x_fgm.shape == x.shape
    native = FGSM(eps=0.5)(tiny_victim, x, y)
    assert np.allclose(x_fgm, native.numpy(), atol=1e-6)
    assert _fooled(classifier, x_fgm, y) == _fooled(classifier, native.numpy(), y) != set()
    pgd = ProjectedGradientDescent(classifier, eps=0.5, eps_step=0.1, max_iter=5, verbose=False)
    x_pgd = pgd.generate(x.numpy(), y.numpy())
    assert float(np.abs(x_pgd).max()) <= 1.0 and np.abs(x_pgd - x.numpy()).max() <= 0.5 + 1e-6
    assert _fooled(classifier, x_pgd, y)
    # and back: the ART classifier of an ssgan victim is again that victim
    assert torch.allclose(victim_from_art(classifier)(x), tiny_victim(x), atol=1e-6)


def test_art_classifier_needs_a_class_count(tiny_victim) -> None:
    with pytest.raises(ValueError, match="n_classes"):
        art_classifier(tiny_victim, time_samples=TIME)


def test_import_ssgan_never_imports_art_and_a_missing_art_says_how_to_install() -> None:
    code = (
        "import sys; import ssgan, ssgan.attacks, ssgan.attacks.ssgan, ssgan.cli\n"
        "assert 'art' not in sys.modules, 'import ssgan imported art'\n"
        "sys.modules['art'] = None\n"
        "try:\n    import ssgan.art\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install ssgan[art]" in out.stdout
