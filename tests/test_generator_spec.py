"""``GeneratorSpec``: a generator's shape written once, read back the same everywhere.

Layers: models (the spec, G), training (its config), attacks (SSGANAttack).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ssgan.attacks.ssgan import SSGANAttack
from ssgan.models.generators import build_generator
from ssgan.models.generators.convolutional import ConvolutionalGenerator
from ssgan.models.generators.front_end import FrontEndGenerator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.generators.spectral import SpectralGenerator
from ssgan.training.gan_config import PROFILES, GANTrainConfig

SPECS = [
    GeneratorSpec(),
    GeneratorSpec(
        channels=4,
        n_blocks=2,
        output="snr",
        snr_db=25.0,
        context=True,
        loudness_range_db=3.0,
        snr_convention="box",
    ),
    GeneratorSpec(output="snr", num_classes=10, lowpass_hz=3800.0),
    GeneratorSpec(output="snr", spectral=True, n_blocks=2),
    GeneratorSpec(output="snr", front=(1, 40, 40, 160), n_blocks=3),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.architecture)
def test_a_spec_survives_json_and_builds_the_generator_it_describes(spec) -> None:
    again = GeneratorSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    if spec.front:
        return  # a front-end G also needs a victim's front end (test_front_end.py)
    g = build_generator(spec)
    assert g.spec == spec
    attack = SSGANAttack.from_generator(g, segment_seconds=0.05)
    assert attack.spec == spec and attack.snr_db == spec.snr_db


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.architecture)
def test_the_training_config_maps_every_field_both_ways(spec) -> None:
    config = PROFILES["cpu"].with_generator(spec)
    assert config.generator_spec() == spec


def test_every_shape_field_has_one_setting_or_comes_from_the_victim() -> None:
    """The shape is one table: each spec field is a setting of SHAPE_SETTINGS, once, or one of
    the three the training fills in from the victim and t1."""

    from ssgan.training.gan_config import SHAPE_SETTINGS

    spec_names = [spec_name for _, spec_name in SHAPE_SETTINGS]
    assert len(set(spec_names)) == len(spec_names)
    derived = {"num_classes", "pattern_samples", "front"}
    assert set(spec_names) | derived == {f.name for f in dataclasses.fields(GeneratorSpec)}


def test_the_pattern_spans_the_training_segment() -> None:
    config = dataclasses.replace(PROFILES["cpu"], segment_seconds=0.5, g_pattern=True)
    assert config.generator_spec().pattern_samples == 8000
    assert config.with_generator(config.generator_spec()) == config


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output": "box"}, "output must be one of"),
        ({"block_kernel": 4}, "odd"),
        ({"grad_input": True}, "needs output='snr'"),
        ({"output": "snr", "spectral": True, "context": True}, "spectral=True needs"),
        ({"output": "snr", "front": (1, 2), "pattern_samples": 8}, "front= needs"),
        ({"num_classes": 1}, "num_classes"),
        ({"snr_convention": "peak"}, "peak"),
    ],
)
def test_a_spec_that_makes_no_sense_is_refused_when_made(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorSpec(**fields)


@pytest.mark.parametrize(
    ("spec", "architecture"),
    [
        (GeneratorSpec(channels=2, n_blocks=1), ConvolutionalGenerator),
        (GeneratorSpec(output="snr", front=(4, 8, 1, 4, 8, 1, 16), n_blocks=2), FrontEndGenerator),
        (GeneratorSpec(output="snr", spectral=True, channels=1, n_blocks=1), SpectralGenerator),
    ],
    ids=lambda v: getattr(v, "architecture", ""),
)
def test_the_factory_builds_the_architecture_the_spec_names(spec, architecture) -> None:
    g = build_generator(spec)
    assert type(g) is architecture and g.spec == spec
    with torch.no_grad():
        assert g(0.1 * torch.randn(2, 1000)).shape == (2, 1000)


def test_a_disallowed_combination_is_refused_by_the_spec_alone() -> None:
    """The config and the attack add nothing of their own: the spec's message, once."""
    with pytest.raises(ValueError, match="spectral=True needs") as by_spec:
        GeneratorSpec(output="snr", spectral=True, context=True)
    message = str(by_spec.value)
    assert "output='snr'" in message and "context=True" in message  # what to change, named
    with pytest.raises(ValueError) as by_config:
        GANTrainConfig(g_output="snr", g_spectral=True, g_context=True)
    assert str(by_config.value).startswith(message)
    assert str(by_config.value).count("spectral=True needs") == 1
    with pytest.raises(ValueError) as by_attack:
        SSGANAttack(spectral=True, context=True)
    assert str(by_attack.value) == message


def test_unknown_fields_are_named() -> None:
    with pytest.raises(ValueError, match="unknown generator field"):
        GeneratorSpec.from_dict({"channels": 8, "wings": 2})
    with pytest.raises(TypeError, match="wings"):
        SSGANAttack(wings=2)


def test_the_attack_takes_a_spec_or_its_fields_and_they_agree() -> None:
    by_fields = SSGANAttack(channels=4, n_blocks=1, snr_db=20.0)
    by_spec = SSGANAttack(spec=GeneratorSpec(channels=4, n_blocks=1, snr_db=20.0, output="snr"))
    assert by_fields.spec == by_spec.spec and by_fields.output == "snr"
    torch.manual_seed(0)
    a = by_fields.generator.state_dict()
    torch.manual_seed(0)
    b = by_spec.generator.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert by_fields.config()["channels"] == 4 and "spec" not in by_fields.config()
