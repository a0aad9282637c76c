"""The parts of IBM's ART that ``ssgan.art`` uses, imported once, with the message to give when
the extra is missing; and ART's label convention turned into class indices."""

from __future__ import annotations

import numpy as np

try:
    from art.attacks.attack import EvasionAttack
    from art.estimators.classification import PyTorchClassifier
    from art.estimators.classification.classifier import ClassifierMixin
    from art.estimators.estimator import BaseEstimator
    from art.preprocessing.preprocessing import PreprocessorPyTorch
    from art.utils import check_and_transform_label_format
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "ssgan.art needs IBM's adversarial-robustness-toolbox: pip install ssgan[art] "
        f"(or pip install adversarial-robustness-toolbox); import failed: {exc}"
    ) from exc

__all__ = [
    "BaseEstimator",
    "ClassifierMixin",
    "EvasionAttack",
    "PreprocessorPyTorch",
    "PyTorchClassifier",
    "label_indices",
]


def label_indices(y: np.ndarray, n_classes: int, n: int) -> np.ndarray:
    """``(n,)`` class indices from ART labels: one-hot ``(n, n_classes)`` or indices."""
    labels = check_and_transform_label_format(np.asarray(y), n_classes, return_one_hot=False)
    labels = np.asarray(labels).reshape(-1)
    if labels.shape != (n,):
        raise ValueError(f"y must hold {n} labels (one-hot or indices), got shape {np.shape(y)}")
    return labels.astype(np.int64)
