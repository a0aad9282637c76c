"""A user's own model as the victim (``ssgan.models.user_victim.open_victim``, ``--victim``):
torch.export, TorchScript and factory + weights, the JSON file beside a model, the refusals,
the differentiable resampler, and the commands end to end on the bundled data."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ssgan.errors import CheckpointError
from ssgan.models.resample import Resampled, resample
from ssgan.models.user_victim import VictimSpec, open_victim
from ssgan.models.victim import ClipClassifier

ESC10 = ["dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing",
         "clock_tick", "helicopter", "chainsaw"]  # fmt: skip


class Tiny(nn.Module):
    """Conv1d + global average pooling + Linear: (batch, time) -> 10 logits, any length."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 9, stride=4)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x.unsqueeze(1))).mean(-1))


# A user's module, as the factory tests write it to disk: the same Tiny, and a non-model.
FACTORY_SOURCE = (
    "import torch\nfrom torch import nn\n\n\n"
    + inspect.getsource(Tiny)
    + "\n\ndef build() -> nn.Module:\n    return Tiny()\n\n\ndef not_a_model() -> int:\n    return 3\n"
)


def _tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny().eval()


def _export(model: nn.Module, path: Path, *, time: int | None = None) -> Path:
    """``torch.export`` ``model`` to ``path``: any batch, and any length unless ``time``."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    dims: dict[int, object] = {0: batch}
    if time is None:
        dims[1] = torch.export.Dim("time", min=64, max=10**7)
    example = torch.randn(2, time or 4000)
    program = torch.export.export(model, (example,), dynamic_shapes={"x": dims})
    torch.export.save(program, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tiny, Path]:
    model = _tiny()
    return model, _export(model, tmp_path_factory.mktemp("export") / "tiny.pt2")


def _check_frozen_and_differentiable(victim: nn.Module) -> None:
    assert not victim.training
    assert all(not p.requires_grad for p in victim.parameters())
    x = torch.randn(2, 6000, requires_grad=True)
    victim(x).logsumexp(-1).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in victim.parameters())


def test_an_exported_program_of_any_length(exported: tuple[Tiny, Path]) -> None:
    model, path = exported
    victim, meta = open_victim(path)
    x = torch.randn(3, 7000)
    torch.testing.assert_close(victim(x), model(x))
    _check_frozen_and_differentiable(victim)
    assert meta["format"] == "export" and meta["source"] == str(path)
    assert meta["sample_rate"] == 16000 and meta["window"] is None
    assert meta["class_names"] is None and meta["n_classes"] == 10
    assert "split" not in meta  # commands fall back to the paper split (resolve_split)


def test_a_fixed_window_from_the_json_beside_it_and_flags_win(tmp_path: Path) -> None:
    model = _tiny(1)
    path = _export(model, tmp_path / "fixed.pt2", time=4000)
    settings = {"window": 4000, "n_crops": 3, "class_names": ESC10}
    (tmp_path / "fixed.pt2.json").write_text(json.dumps(settings))
    victim, meta = open_victim(path)
    x = torch.randn(2, 9000)
    torch.testing.assert_close(victim(x), ClipClassifier(model, window=4000, n_crops=3)(x))
    assert meta["window"] == 4000 and meta["class_names"] == ESC10
    assert meta["settings_file"] == str(tmp_path / "fixed.pt2.json")
    victim, meta = open_victim(path, spec=VictimSpec(n_crops=2))
    torch.testing.assert_close(victim(x), ClipClassifier(model, window=4000, n_crops=2)(x))
    assert meta["n_crops"] == 2
    _check_frozen_and_differentiable(victim)


def test_torchscript_is_recognised_by_its_content(tmp_path: Path) -> None:
    model = _tiny(2)
    path = tmp_path / "scripted.bin"  # no telling extension
    torch.jit.script(model).save(str(path))
    (tmp_path / "scripted.json").write_text(json.dumps({"class_names": ESC10}))
    victim, meta = open_victim(path)
    x = torch.randn(2, 5000)
    torch.testing.assert_close(victim(x), model(x))
    assert meta["format"] == "torchscript" and meta["class_names"] == ESC10
    _check_frozen_and_differentiable(victim)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_factory_with_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix) -> None:
    (tmp_path / "usermodels.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = _tiny(3)
    weights = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(model.state_dict(), weights)
    else:
        torch.save(model.state_dict(), weights)
    (tmp_path / "w.json").write_text(json.dumps({"class_names": ESC10}))
    victim, meta = open_victim("usermodels:build", spec=VictimSpec(weights=str(weights)))
    x = torch.randn(2, 5000)
    torch.testing.assert_close(victim(x), model(x))
    assert meta["format"] == "factory" and meta["class_names"] == ESC10
    _check_frozen_and_differentiable(victim)


def test_a_pickled_module_is_refused_with_the_way_to_export(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(_tiny(), path)
    with pytest.raises(CheckpointError, match="arbitrary code") as info:
        open_victim(path)
    assert "torch.export.export" in str(info.value) and "torch.jit.script" in str(info.value)
    assert str(path) in str(info.value)


def test_a_state_dict_file_points_to_the_factory_form(tmp_path: Path) -> None:
    path = tmp_path / "sd.pth"
    torch.save(_tiny().state_dict(), path)
    with pytest.raises(CheckpointError, match="--victim-weights"):
        open_victim(path)


def test_an_export_archive_with_pickled_payloads_is_refused(
    tmp_path: Path, exported: tuple[Tiny, Path]
) -> None:
    import zipfile

    _, path = exported
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                data = data.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
            dst.writestr(item, data)
    with pytest.raises(CheckpointError, match="pickled"):
        open_victim(bad)


class _Exploit:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickles_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exported: tuple[Tiny, Path]
) -> None:
    import zipfile

    (tmp_path / "usermodels.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))

    marker = tmp_path / "PWNED"
    torch.save({"model": _Exploit(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="arbitrary code"):
        open_victim(tmp_path / "evil.pt")
    weights = tmp_path / "evil_weights.pt"
    torch.save({"w": _Exploit(marker)}, weights)
    with pytest.raises(CheckpointError, match="unreadable weights"):
        open_victim("usermodels:build", spec=VictimSpec(weights=str(weights)))
    # torch.export.load falls back to an unsafe unpickling of a .pt2's sample inputs
    _, path = exported
    bad = tmp_path / "evil.pt2"
    buffer = tmp_path / "inputs.pt"
    torch.save(((_Exploit(marker),), {}), buffer)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("sample_inputs/model.pt"):
                data = buffer.read_bytes()
            dst.writestr(item, data)
    with pytest.raises(CheckpointError, match=r"sample_inputs/model\.pt"):
        open_victim(bad)
    assert not marker.exists()


def _error(source: str | Path, **spec: object) -> str:
    with pytest.raises(CheckpointError) as info:
        open_victim(source, spec=VictimSpec(**spec))  # type: ignore[arg-type]
    return str(info.value)


def test_errors_name_the_file_or_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exported: tuple[Tiny, Path]
) -> None:
    missing = tmp_path / "absent.pt2"
    assert str(missing) in _error(missing) and "no such file" in _error(missing)
    assert "cannot import" in _error("no_such_package_xyz.models:build")
    (tmp_path / "usermodels.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "no attribute 'nope'" in _error("usermodels:nope")
    assert "not a torch nn.Module" in _error("usermodels:not_a_model")
    assert "no such weights file" in _error("usermodels:build", weights=str(tmp_path / "w.st"))
    garbage = tmp_path / "garbage.pt2"
    garbage.write_bytes(b"not a zip")
    assert str(garbage) in _error(garbage)
    _, path = exported
    copy = tmp_path / "m.pt2"
    copy.write_bytes(path.read_bytes())
    settings = tmp_path / "m.pt2.json"
    for text, expected in [
        ("{not json", "not readable JSON"),
        ('{"samplerate": 8000}', "unknown key(s) samplerate"),
        ('{"window": "big"}', "window='big'"),
        ('{"class_names": ["a", "b"]}', "2 class names for 10 outputs"),
    ]:
        settings.write_text(text)
        message = _error(copy)
        assert expected in message and str(copy) in message, message
    settings.unlink()
    assert "settings are for a model file" in _error(tmp_path, sample_rate=8000)
    assert "no such pretrained run" in _error("pretrained:envnet-esc10")


def test_a_fixed_length_model_without_a_window_fails_clearly(tmp_path: Path) -> None:
    path = _export(_tiny(), tmp_path / "fixed.pt2", time=4000)
    message = _error(path)
    assert str(path) in message and "window" in message
    victim, _ = open_victim(path, spec=VictimSpec(window=4000))
    assert isinstance(victim, ClipClassifier)


# ------------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_resampling_keeps_a_tone_and_its_frequency(rate: int) -> None:
    t = torch.arange(16000) / 16000
    x = torch.sin(2 * math.pi * 440 * t)
    y = resample(x, 16000, rate)
    assert y.shape == (rate,)
    peak_hz = float(torch.fft.rfft(y).abs().argmax()) * rate / y.shape[-1]
    assert peak_hz == pytest.approx(440, abs=1)
    middle = y[rate // 4 : 3 * rate // 4]
    assert float(middle.abs().max()) == pytest.approx(1.0, abs=0.01)
    back = resample(y, rate, 16000)
    assert float((back - x)[2000:-2000].abs().max()) < 2e-3


def test_resampling_is_differentiable() -> None:
    x = torch.randn(2, 40, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: resample(v, 16000, 8000), (x,))
    assert torch.autograd.gradcheck(lambda v: resample(v, 16000, 24000), (x,))


def test_a_model_at_another_rate_is_fed_resampled_clips(exported: tuple[Tiny, Path]) -> None:
    model, path = exported
    victim, meta = open_victim(path, spec=VictimSpec(sample_rate=8000))
    assert isinstance(victim, Resampled) and meta["sample_rate"] == 8000
    x = torch.randn(2, 6000)
    torch.testing.assert_close(victim(x), model(resample(x, 16000, 8000)))
    _check_frozen_and_differentiable(victim)


# ------------------------------------------------------------------------------- the commands

COMMANDS = [
    ["evaluate", "victim"],
    ["evaluate", "attack"],
    ["attack"],
    ["train", "gan"],
    ["reproduce", "table2"],
    ["reproduce", "table3"],
    ["reproduce", "robustness"],
    ["reproduce", "transfer"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_takes_the_same_victim_flags(command: list[str], capsys) -> None:
    from ssgan.cli import main

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--victim-weights", "--victim-rate", "--victim-window", "--victim-classes"):
        assert flag in text, flag


def test_evaluate_victim_and_attack_on_an_exported_model(
    tmp_path: Path, exported: tuple[Tiny, Path], capsys
) -> None:
    from ssgan.cli import main

    _, path = exported
    common = ["--victim", str(path), "--dataset", "esc10", "--root", "bundled"]
    assert main(["evaluate", "victim", *common, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_clips"] == 10 and summary["split"] == "paper"  # no recorded split
    assert summary["checkpoint"] is None and summary["per_class_accuracy"].keys() == set(ESC10)
    out = tmp_path / "eval"
    argv = ["evaluate", "attack", "--attack", "fgsm", "--set", "attack.eps=0.01", *common,
            "--victim-classes", ",".join(ESC10), "--limit", "2", "--examples", "1",
            "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 2 and summary["victim"] == str(path)
    assert (out / "report.html").is_file()
    # Wrong class names are refused before any clip is attacked.
    bad = [*argv[:-5], "--victim-classes", "a,b", "--out", str(tmp_path / "x")]
    assert main(bad) == 1
    assert "2 class names for 10 outputs" in capsys.readouterr().err
