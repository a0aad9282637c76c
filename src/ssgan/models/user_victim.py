"""A victim from a string: the one way every command gets the model it attacks (``open_victim``).

``source`` is one of

- a directory: a run of ``ssgan train victim`` (``load_victim``: safetensors + JSON);
- a ``torch.export`` program (``torch.export.save``, usually ``model.pt2``), checked first to hold
  no pickled objects, then ``torch.export.load(...).module()``;
- a TorchScript file (``torch.jit.save``), recognised by the ``code/`` folder inside it whatever
  its extension;
- ``package.module:function``: an importable factory returning an ``nn.Module``, its weights from
  ``spec.weights`` (``.safetensors``, or a state dict read with ``torch.load(weights_only=True)``);
- ``pretrained:NAME``: a victim run shipped inside the package (``ssgan.pretrained``).

A pickled whole module (``torch.save(model)``) is refused: unpickling it runs arbitrary code.

A model file's sample rate, input window, crops and class names come from ``spec`` (the CLI's
flags), else from a JSON file beside it (``model.pt2.json`` or ``model.json``; for a factory,
beside its weights file), else the defaults: 16 kHz, any input length, no class names. With a
``window`` (samples at the model's rate) the model is wrapped in ``ClipClassifier``'s 10-crop
protocol; at a rate other than 16 kHz it is fed through a differentiable resampler
(``ssgan.models.resample``), so it still takes the package's 16 kHz waveforms.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from ssgan import SAMPLE_RATE
from ssgan.errors import CheckpointError
from ssgan.models.resample import Resampled
from ssgan.models.victim import load_victim, wrap_victim
from ssgan.pretrained import resolve_run

__all__ = ["SETTINGS_KEYS", "VictimSpec", "open_victim"]

#: The keys of the JSON file beside a model file.
SETTINGS_KEYS = ("sample_rate", "window", "n_crops", "class_names")
_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_EXPORT_HINT = (
    "export the model instead: torch.export.save(torch.export.export(model, (example,)), "
    "'model.pt2'), or torch.jit.script(model).save('model.pt')"
)


@dataclasses.dataclass(frozen=True)
class VictimSpec:
    """What the command line says about a model file or factory; ``None``: not given.

    ``window``: samples (at ``sample_rate``) of the fixed input the model takes; ``n_crops``:
    crops per clip when ``window`` is set (default 10).
    """

    weights: str | None = None
    sample_rate: int | None = None
    window: int | None = None
    n_crops: int | None = None
    class_names: tuple[str, ...] | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in dataclasses.astuple(self))


class ExportedModule(nn.Module):
    """Holds a ``torch.export`` module, whose graph is fixed in the mode it was exported in
    (``train()``/``eval()`` raise on it), so that ``victim.eval()`` works around it."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def open_victim(
    source: str | Path,
    device: str | torch.device = "cpu",
    *,
    checkpoint: str = "last",
    spec: VictimSpec | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The victim ``source`` names (module docstring), frozen: eval mode, weights without grad.

    Returns:
        ``(model from (batch, time) 16 kHz waveforms to logits, meta)``; ``meta`` has at least
        ``source``, ``format`` (``run``, ``export``, ``torchscript``, ``factory``),
        ``class_names`` (or None), ``sample_rate`` and ``window`` (the model's own, ``window``
        None when it takes any length); a run's also its ``dataset``, ``split``...

    Raises:
        CheckpointError: naming the file or string at fault.
    """
    spec = spec or VictimSpec()
    text = str(source)
    path = resolve_run(text)  # ``pretrained:NAME``: a run directory shipped in the package
    if path.is_dir():
        if not spec.is_empty():
            raise CheckpointError(
                f"{path}: a victim run records its own weights, sample rate, window and classes; "
                "those settings are for a model file or a factory"
            )
        clf, run_meta = load_victim(path, device, checkpoint=checkpoint)
        return clf, {**run_meta, "source": text, "format": "run"}
    if path.is_file():
        if spec.weights is not None:
            raise CheckpointError(f"{path}: a model file holds its weights; weights are for a "
                                  "factory (package.module:function)")  # fmt: skip
        fmt = _file_format(path)
        net = _load_export(path) if fmt == "export" else _load_torchscript(path)
        settings_file = _beside(path)
    elif _FACTORY.match(text):
        fmt = "factory"
        net = _load_factory(text, spec.weights)
        settings_file = _beside(Path(spec.weights)) if spec.weights else None
    else:
        raise CheckpointError(
            f"{text}: no such file or directory (a victim is a run directory, a torch.export "
            ".pt2 file, a TorchScript file or package.module:function)"
        )
    settings = _settings(spec, settings_file)
    model = _finish(net, settings, device, text)
    meta = {
        "kind": "user-victim",
        "source": text,
        "format": fmt,
        "weights": spec.weights,
        "settings_file": None if settings_file is None else str(settings_file),
        **settings,
    }
    meta["n_classes"] = _probe(model, meta, device)
    meta["model"] = {"name": fmt, "n_classes": meta["n_classes"], "window": meta["window"]}
    return model, meta


def _file_format(path: Path) -> str:
    """``export`` or ``torchscript`` by content; ``CheckpointError`` for anything else."""
    names: list[str] = []
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"{path}: unreadable archive ({exc})") from None
    parts = [n.split("/") for n in names]
    if any(len(p) > 2 and p[1] == "code" for p in parts):
        return "torchscript"
    if any(p[-1] == "archive_format" or p[1:2] == ["models"] for p in parts):
        return "export"
    if path.suffix == ".pt2":
        raise CheckpointError(f"{path}: not a torch.export archive (torch.export.save)")
    _refuse_pickle(path)


def _refuse_pickle(path: Path) -> NoReturn:
    """Say what a ``torch.save`` file holds (read ``weights_only``) and why it is refused."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: a pickled Python object (torch.save(model)?): unpickling it would run "
            f"arbitrary code from the file, so ssgan refuses it; {_EXPORT_HINT}"
        ) from None
    except Exception as exc:  # any failure means "not a model file"
        raise CheckpointError(
            f"{path}: not a model file ssgan reads ({_first_line(exc)}); expected a victim run "
            "directory, a torch.export .pt2 file or a TorchScript file"
        ) from None
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: a state dict (weights without the model's code); give the code as a "
            f"factory: --victim package.module:function --victim-weights {path}, or {_EXPORT_HINT}"
        )
    raise CheckpointError(f"{path}: a {type(obj).__name__} saved with torch.save, not a model; "
                          f"{_EXPORT_HINT}")  # fmt: skip


def _load_export(path: Path) -> nn.Module:
    _check_export_archive(path)
    try:
        program = torch.export.load(path)
    except Exception as exc:  # torch raises many kinds here
        raise CheckpointError(f"{path}: cannot load the torch.export program "
                              f"({_first_line(exc)})") from None  # fmt: skip
    return ExportedModule(program.module())


def _check_export_archive(path: Path) -> None:
    """Refuse a ``.pt2`` whose loading would unpickle more than tensors: ``torch.export.load``
    falls back to ``torch.load(weights_only=False)`` for pickled payloads."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            base = name.rsplit("/", 1)[-1]
            if base.endswith("_config.json"):
                config = json.loads(archive.read(name)).get("config", {})
                for key, payload in config.items():
                    file = str(payload.get("path_name", ""))
                    if payload.get("use_pickle") or file.startswith(("custom_obj_", "opaque_obj_")):
                        raise CheckpointError(f"{path}: {key} is a pickled object, which could "
                                              f"run code when loaded; {_EXPORT_HINT} with plain "
                                              "tensors")  # fmt: skip
            elif base.endswith((".pt", ".pkl")):
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception:
                    raise CheckpointError(
                        f"{path}: {name} holds pickled objects beyond tensors, which could run "
                        "code when loaded; ssgan refuses the file"
                    ) from None


def _load_torchscript(path: Path) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot load TorchScript ({_first_line(exc)})") from None


def _load_factory(text: str, weights: str | None) -> nn.Module:
    module_name, _, attr = text.partition(":")
    try:
        factory: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import runs the user's code
        raise CheckpointError(f"{text}: cannot import {module_name} ({_first_line(exc)})") from exc
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise CheckpointError(f"{text}: {module_name} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise CheckpointError(f"{text}: {attr} is not callable")
    state = None if weights is None else _read_weights(Path(weights))
    try:
        net = factory()
    except Exception as exc:
        raise CheckpointError(f"{text}: the factory failed ({_first_line(exc)})") from exc
    if not isinstance(net, nn.Module):
        raise CheckpointError(f"{text}: returned a {type(net).__name__}, not a torch nn.Module")
    if state is not None:
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{weights}: weights do not fit {text} ({' '.join(str(exc).split())[:300]})"
            ) from None
    return net


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: unreadable weights ({_first_line(exc)}); expected safetensors or a state "
            "dict saved with torch.save"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict (name -> tensor)")
    return obj


def _beside(path: Path) -> Path | None:
    """``model.pt2.json``, else ``model.json``, if either exists."""
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate != path and candidate.is_file():
            return candidate
    return None


def _settings(spec: VictimSpec, settings_file: Path | None) -> dict[str, Any]:
    """Sample rate, window, crops and class names: ``spec`` over the JSON file over defaults."""
    found: dict[str, Any] = {}
    if settings_file is not None:
        try:
            found = json.loads(settings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{settings_file}: not readable JSON ({exc})") from None
        if not isinstance(found, dict):
            raise CheckpointError(f"{settings_file}: expected a JSON object")
        unknown = sorted(set(found) - set(SETTINGS_KEYS))
        if unknown:
            raise CheckpointError(
                f"{settings_file}: unknown key(s) {', '.join(unknown)}; known: "
                f"{', '.join(SETTINGS_KEYS)}"
            )
    source = dict.fromkeys(found, str(settings_file))
    for key in SETTINGS_KEYS:
        value = getattr(spec, key)
        if value is not None:
            found[key] = list(value) if key == "class_names" else value
            source[key] = "the victim settings"
    out = {"sample_rate": SAMPLE_RATE, "window": None, "n_crops": 10, "class_names": None}
    out.update(found)
    for key in ("sample_rate", "window", "n_crops"):
        value = out[key]
        if value is not None and (type(value) is not int or value < 1):
            raise CheckpointError(
                f"{source.get(key)}: {key}={value!r}: expected a positive whole number"
            )
    names = out["class_names"]
    if names is not None and (
        not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
    ):
        raise CheckpointError(
            f"{source.get('class_names')}: class_names={names!r}: expected a list of names"
        )
    return out


def _finish(net: nn.Module, settings: dict[str, Any], device: str | torch.device,
            text: str) -> nn.Module:  # fmt: skip
    model = wrap_victim(net, settings["window"], n_crops=settings["n_crops"])
    if settings["window"] is None and model is not net:
        settings["window"] = model.window
    if settings["sample_rate"] != SAMPLE_RATE:
        model = Resampled(model, rate_in=SAMPLE_RATE, rate_out=settings["sample_rate"])
    model.to(device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _probe(model: nn.Module, meta: dict[str, Any], device: str | torch.device) -> int:
    """The number of classes, from one forward pass over a second of quiet noise."""
    x = 0.01 * torch.randn(1, SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            logits = model(x.to(device))
    except Exception as exc:  # the user's model may raise anything
        raise CheckpointError(
            f"{meta['source']}: the model fails on a (1, {SAMPLE_RATE}) waveform at 16 kHz "
            f"({_first_line(exc)}); if it takes a fixed input length, give its window (samples)"
        ) from None
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CheckpointError(
            f"{meta['source']}: must return logits (batch, n_classes), returned {shape}"
        )
    n = int(logits.shape[1])
    names = meta["class_names"]
    if names is not None and len(names) != n:
        raise CheckpointError(f"{meta['source']}: {len(names)} class names for {n} outputs")
    return n


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
