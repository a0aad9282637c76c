"""ART -> ssgan victims and ssgan victims -> ART classifiers (``ssgan.art``)."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

from ssgan.art.toolkit import PreprocessorPyTorch, PyTorchClassifier
from ssgan.attacks.checks import check_int

__all__ = ["ArtVictim", "art_classifier", "victim_from_art"]


def _time_axis(input_shape: tuple[int, ...]) -> int:
    """The axis of ``input_shape`` (one example's shape) that holds time: the one axis longer
    than 1 (``(T,)``, ``(1, T)``, ``(T, 1)``...). ``ValueError`` for a shape with several."""
    long = [i for i, n in enumerate(input_shape) if n != 1]
    if not input_shape or len(long) > 1:
        raise ValueError(
            f"input_shape={tuple(input_shape)!r}: expected one mono waveform per example, "
            "(T,) or with singleton axes such as (1, T)"
        )
    return long[0] if long else len(input_shape) - 1


class ArtVictim(nn.Module):
    """An ART ``PyTorchClassifier`` as an ssgan victim: ``(batch, time)`` -> logits.

    Reproduces ``classifier.predict``: the waveforms are reshaped to the classifier's
    ``input_shape`` (its time axis taking each batch's length), its PyTorch preprocessing
    (``preprocessing=(mean, std)``, PyTorch preprocessing defences with ``apply_predict``) is
    applied, then its model; every step is differentiable. ART's ``clip_values`` are not applied
    (``predict`` does not either). The model is a submodule (shared, not copied), so
    ``victim_frozen`` and ``.to`` reach it.

    Attributes:
        n_classes: the classifier's ``nb_classes``.
        input_shape: the classifier's ``input_shape``.
    """

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        if not isinstance(classifier, PyTorchClassifier):
            raise TypeError(
                f"expected an art PyTorchClassifier, got {type(classifier).__name__}; "
                "other ART estimators cannot be run as a torch module"
            )
        if classifier.postprocessing_defences:
            raise ValueError(
                "the classifier has postprocessing defences "
                f"{classifier.postprocessing_defences!r}: they change predict's outputs "
                "outside the model and are not differentiable; remove them to use it as a victim"
            )
        ops = list(classifier.preprocessing_operations or [])
        bad = [op for op in ops if not isinstance(op, PreprocessorPyTorch)]
        if bad:
            raise ValueError(
                f"preprocessing {bad!r} is not a PyTorch preprocessor: only those can be "
                "applied differentiably inside the victim"
            )
        self.model = classifier.model
        self.n_classes = int(classifier.nb_classes)
        self.input_shape = tuple(int(n) for n in classifier.input_shape)
        self._axis = _time_axis(self.input_shape)
        self._preprocessing = [op for op in ops if op.apply_predict]

    def forward(self, x: Tensor) -> Tensor:
        """``x (batch, time)`` -> logits ``(batch, n_classes)``."""
        shape = list(self.input_shape)
        shape[self._axis] = x.shape[-1]
        x = x.reshape(x.shape[0], *shape)
        for op in self._preprocessing:
            x, _ = op.forward(x)
        logits = self.model(x)
        return logits[:, None] if logits.dim() == 1 else logits


def victim_from_art(classifier: Any) -> ArtVictim:
    """An ART ``PyTorchClassifier`` as an ssgan victim (``ArtVictim``: see there)."""
    return ArtVictim(classifier)


def art_classifier(
    victim: nn.Module,
    *,
    time_samples: int,
    n_classes: int | None = None,
    clip_values: tuple[float, float] = (-1.0, 1.0),
    device_type: Literal["cpu", "gpu"] = "cpu",
    **kwargs: Any,
) -> Any:
    """An ssgan victim wrapped in an ART ``PyTorchClassifier``, to run ART's attacks on it.

    Args:
        victim: ``(batch, time) -> logits``; used, not copied (ART moves it to its device and
            sets its train / eval mode on each call).
        time_samples: the clip length ART is told (``input_shape=(time_samples,)``); attacks
            that draw noise or initialise from it need it.
        n_classes: the number of classes; default: the victim's ``n_classes`` attribute.
        clip_values: the valid sample range, default ``(-1, 1)`` (ssgan's waveforms).
        device_type: ART's ``"cpu"`` (default) or ``"gpu"`` (CUDA when available).
        kwargs: passed on to ``PyTorchClassifier`` (``preprocessing_defences``...).

    Returns:
        A ``PyTorchClassifier`` with cross-entropy loss on the victim's logits.
    """
    if not isinstance(victim, nn.Module):
        raise TypeError(f"victim must be a torch.nn.Module, got {type(victim).__name__}")
    check_int("time_samples", time_samples, minimum=1)
    if n_classes is None:
        n_classes = getattr(victim, "n_classes", None)
        if not isinstance(n_classes, int) or isinstance(n_classes, bool):
            raise ValueError(
                f"{type(victim).__name__} has no integer n_classes attribute: pass n_classes="
            )
    check_int("n_classes", n_classes, minimum=2)
    return PyTorchClassifier(
        model=victim,
        loss=nn.CrossEntropyLoss(),
        input_shape=(time_samples,),
        nb_classes=n_classes,
        clip_values=clip_values,
        device_type=device_type,
        **kwargs,
    )
