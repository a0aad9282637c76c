"""The contract every registered attack honours (foolbox-style ``Attack.__call__``).

Parametrised over ``ssgan.attacks.ATTACKS`` (plus PGD in L2): shape and dtype kept, output in
[-1, 1] and within the attack's budget (exact norms), the victim's modes and ``requires_grad``
restored with no gradient left on its weights, the same seed giving the same output, and on the
tiny synthetic victim most correctly classified clips flipped (untargeted) / sent to the target
(targeted). Hyperparameters are tuned to the tiny victim, which needs loud perturbations.

The tiny victim is trained at session start, so float rounding that differs between CPUs (AMD
vs Intel kernels, thread counts) gives a slightly different victim on each machine. The settings
below are chosen with a margin over that: each case flips at least 5 of 8 clips (most 6-8) on
victims trained from seeds 0-7, each a far larger change than rounding. (``uap-iterative`` with
2 passes flipped exactly 4 of 8 on some machines; run to its default 10 passes it reaches its
stopping fooling rate of 0.9.)
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from conftest import synth_batch
from ssgan.attacks import ATTACKS, Attack, LearnedAttack, make_attack

LENGTH = 4000

# name -> (registry name, overrides): fast settings that fool the tiny victim.
CASES: dict[str, tuple[str, list[str]]] = {
    "fgsm": ("fgsm", ["eps=0.5"]),
    "pgd": ("pgd", ["eps=0.5", "steps=5"]),
    "pgd-l2": ("pgd", ["norm=l2", "eps=30", "steps=5"]),
    # L2 by SNR (a radius per clip): 5 dB in [16]'s box convention is about eps=40 here.
    "pgd-l2-snr": ("pgd", ["norm=l2", "snr_db=5", "snr_convention=box", "steps=5"]),
    "fgm": ("fgm", ["snr_db=0"]),
    "cw": ("cw", ["c=100", "lr=0.1", "steps=30", "binary_search_steps=1"]),
    "ddn": ("ddn", ["steps=20", "init_snr_db=0", "min_snr_db=-20"]),
    "uap-iterative": (
        "uap-iterative",
        ["xi=0.8", f"length={LENGTH}", "max_passes=10", "ddn_steps=20", "ddn_init_norm=20"],
    ),
    "uap-penalty": ("uap-penalty", ["c=1000", "lr=0.01", "max_epochs=200", f"length={LENGTH}"]),
    # Noise 30 dB louder than the clip drowns it: the victim's decision becomes its answer to
    # noise (one class), which flips the 6 clips of the other classes.
    "noise": ("noise", ["snr_db=-30"]),
    # The default recipe for 200 steps on 0.125 s segments, loud enough for the tiny victim.
    "ssgan": ("ssgan", ["segment_seconds=0.125", "epochs=2", "snr_db=5"]),
}
# Attacks whose quick fit is not meant to fool (their strength is tested elsewhere).
WEAK: set[str] = set()
# One gradient step cannot be relied on to reach a chosen class of a 4-class victim (it hits on
# 2-7 of 8 clips depending on the victim); for these the targeted check is that the step moves
# every clip towards the target (its log-probability rises).
ONE_STEP = {"fgsm", "fgm"}

assert {registry for registry, _ in CASES.values()} == set(ATTACKS), (
    "a registered attack lacks a case"
)


def _has_ssgan() -> bool:
    return importlib.util.find_spec("ssgan.attacks.ssgan") is not None


NAMES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name == "ssgan" and not _has_ssgan(), reason="ssgan.attacks.ssgan not built yet"
        ),
    )
    for name in CASES
]


@pytest.fixture(scope="module")
def clean():
    return synth_batch(8, LENGTH, seed=7)


_BUILT: dict[str, Attack] = {}


@pytest.fixture()
def attack(request, tiny_victim, clean) -> Attack:
    """The case's attack, fitted once per session on the clean clips when it is learned."""
    name = request.param
    if name not in _BUILT:
        registry, overrides = CASES[name]
        built = make_attack(registry, overrides)
        if isinstance(built, LearnedAttack):
            x, y = clean
            built.fit(tiny_victim, x, y, generator=torch.Generator().manual_seed(0))
        _BUILT[name] = built
    return _BUILT[name]


parametrize = pytest.mark.parametrize(
    ("attack", "name"),
    [pytest.param(p.values[0], p.values[0], marks=p.marks) for p in NAMES],
    indirect=["attack"],
)


@parametrize
def test_shape_dtype_bounds_and_budget(attack, name, tiny_victim, clean):
    x, y = clean
    x_adv = attack(tiny_victim, x, y, generator=torch.Generator().manual_seed(1))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert not x_adv.requires_grad
    assert torch.isfinite(x_adv).all()
    assert float(x_adv.abs().max()) <= 1.0
    budget = attack.budget()
    delta = x_adv - x
    if budget is not None and budget.norm == "linf":
        assert float(delta.abs().amax()) <= budget.eps + 1e-6
    elif budget is not None:
        radius = torch.as_tensor(budget.radius(x)).reshape(-1)  # eps, or per clip by SNR
        assert bool((delta.norm(dim=1) <= radius * (1 + 1e-6)).all())
    assert float(delta.abs().max()) > 0, f"{name} left the clips unchanged"


@parametrize
def test_victim_modes_and_grads_restored(attack, name, tiny_victim, clean):
    victim = copy.deepcopy(tiny_victim)
    victim.train()
    victim.features[1].eval()  # a mixed-mode model must come back mixed
    for p in victim.parameters():
        p.requires_grad_(True)
    victim.fc.weight.requires_grad_(False)
    bn_mean = victim.features[1].running_mean.clone()
    modes = [m.training for m in victim.modules()]
    flags = [p.requires_grad for p in victim.parameters()]
    x, y = clean
    attack(victim, x, y)
    assert [m.training for m in victim.modules()] == modes
    assert [p.requires_grad for p in victim.parameters()] == flags
    assert all(p.grad is None for p in victim.parameters())
    # The victim ran in eval mode: batch-norm statistics untouched.
    assert torch.equal(victim.features[1].running_mean, bn_mean)


@parametrize
def test_same_seed_same_output(attack, name, tiny_victim, clean):
    x, y = clean
    a = attack(tiny_victim, x, y, generator=torch.Generator().manual_seed(5))
    b = attack(tiny_victim, x, y, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@parametrize
def test_untargeted_flips_most_correct_clips(attack, name, tiny_victim, clean):
    if name in WEAK:
        pytest.skip(f"{name}: a quickly fitted instance is not meant to fool")
    x, y = clean
    with torch.no_grad():
        correct = tiny_victim(x).argmax(1) == y
        assert correct.sum() >= 6
        x_adv = attack(tiny_victim, x, y)
        flipped = (tiny_victim(x_adv).argmax(1) != y) & correct
    assert flipped.sum() / correct.sum() > 0.5, f"{name} flipped {int(flipped.sum())}"


@parametrize
def test_targeted_hits_target_or_is_refused(attack, name, tiny_victim, clean):
    x, y = clean
    target = (y + 1) % 4
    if not attack.targeted_supported:
        with pytest.raises(ValueError, match="targeted"):
            attack(tiny_victim, x, y, target=target)
        return
    with torch.no_grad():
        x_adv = attack(tiny_victim, x, y, target=target)
        logits_adv = tiny_victim(x_adv)
        hit = logits_adv.argmax(1) == target
        if name in ONE_STEP:
            before = tiny_victim(x).log_softmax(1).gather(1, target[:, None])
            after = logits_adv.log_softmax(1).gather(1, target[:, None])
            assert (after > before).all(), f"{name} moved {int((after > before).sum())}/8"
            return
    assert hit.float().mean() > 0.5, f"{name} hit the target on {int(hit.sum())}/8"


@parametrize
def test_bad_inputs_are_refused(attack, name, tiny_victim, clean):
    x, y = clean
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        attack(tiny_victim, x[0], y)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        attack(tiny_victim, x * 2, y)
    with pytest.raises(TypeError, match="float"):
        attack(tiny_victim, (x * 100).long(), y)
    with pytest.raises(ValueError, match="shape"):
        attack(tiny_victim, x, y[:3])
    # Labels are range-checked whenever the class count is known without an extra victim
    # forward (an ``n_classes`` attribute) or the attack queries the victim anyway.
    with pytest.raises(ValueError, match="4 classes"):
        attack(_Counting(tiny_victim, n_classes=4), x, y + 4)
    if attack.queries_victim:
        with pytest.raises(ValueError, match="4 classes"):
            attack(tiny_victim, x, y + 4)
    with pytest.raises(ValueError, match="NaN"):
        attack(tiny_victim, x.clone().fill_(float("nan")), y)


class _Counting(torch.nn.Module):
    """The victim, counting its forward calls; optionally exposing ``n_classes``."""

    def __init__(self, net: torch.nn.Module, n_classes: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.calls = 0
        if n_classes is not None:
            self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


@parametrize
def test_victim_forwards_only_when_the_attack_queries_it(attack, name, tiny_victim, clean):
    # A fitted generator or universal perturbation must cost no victim forward per call (a
    # 10-crop probe of the label range once cost 20x the whole SSGAN attack).
    x, y = clean
    for victim in (_Counting(tiny_victim), _Counting(tiny_victim, n_classes=4)):
        attack(victim, x, y, generator=torch.Generator().manual_seed(0))
        assert (victim.calls > 0) == attack.queries_victim
