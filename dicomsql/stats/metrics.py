"""Evaluation of predictions, with the definitions of scikit-learn's metrics, and a
deterministic train/test split.

- :func:`binary`: ROC AUC, average precision, log loss, and accuracy, precision, recall and
  F1 at a threshold, plus the ROC and precision-recall curves (as ``roc_curve`` and
  ``precision_recall_curve`` give them);
- :func:`multiclass`: accuracy, Cohen's kappa, per-class and macro/weighted precision,
  recall and F1;
- :func:`regression`: MSE, RMSE, MAE, R^2, explained variance;
- :func:`confusion`: counts per (label, predicted) pair;
- :func:`split_fraction`: a number in [0, 1) per key, the same on every run and machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..options import Option, number, parse
from .features import class_name, class_names

__all__ = [
    "BINARY_FIELDS",
    "MULTICLASS_FIELDS",
    "REGRESSION_FIELDS",
    "BINARY_OPTIONS",
    "binary",
    "multiclass",
    "regression",
    "confusion",
    "split_fraction",
]

BINARY_OPTIONS: tuple[Option, ...] = (
    Option("threshold", 0.5, "Scores at or above it predict the positive class.", number()),
)

BINARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("n", "bigint"),
    ("positives", "bigint"),
    ("auc", "double"),
    ("average_precision", "double"),
    ("logloss", "double"),
    ("threshold", "double"),
    ("accuracy", "double"),
    ("precision", "double"),
    ("recall", "double"),
    ("f1", "double"),
    ("roc_fpr", "array<double>"),
    ("roc_tpr", "array<double>"),
    ("roc_thresholds", "array<double>"),
    ("pr_precision", "array<double>"),
    ("pr_recall", "array<double>"),
    ("pr_thresholds", "array<double>"),
    ("n_dropped", "bigint"),
    ("error", "string"),
)

MULTICLASS_FIELDS: tuple[tuple[str, str], ...] = (
    ("n", "bigint"),
    ("accuracy", "double"),
    ("kappa", "double"),
    ("macro_precision", "double"),
    ("macro_recall", "double"),
    ("macro_f1", "double"),
    ("weighted_f1", "double"),
    ("classes", "array<string>"),
    ("precision", "array<double>"),
    ("recall", "array<double>"),
    ("f1", "array<double>"),
    ("support", "array<bigint>"),
    ("n_dropped", "bigint"),
)

REGRESSION_FIELDS: tuple[tuple[str, str], ...] = (
    ("n", "bigint"),
    ("mse", "double"),
    ("rmse", "double"),
    ("mae", "double"),
    ("r2", "double"),
    ("explained_variance", "double"),
    ("n_dropped", "bigint"),
)


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when the denominator is 0 (scikit-learn's zero_division)."""
    return numerator / denominator if denominator else 0.0


def binary(
    labels: np.ndarray, scores: np.ndarray, options: dict[str, str] | None = None
) -> dict[str, Any]:
    """Metrics of ``scores`` (higher: more likely positive) against 0/1 ``labels``; rows
    with a NULL are left out. Labels other than 0/1 raise ``ValueError``; ``logloss`` is
    NULL unless every score is a probability."""
    settings = parse(options, BINARY_OPTIONS)
    keep = np.isfinite(labels) & np.isfinite(scores)
    y, s = labels[keep], scores[keep]
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 or boolean")
    result: dict[str, Any] = {
        "n": len(y),
        "positives": int(y.sum()),
        "threshold": settings["threshold"],
        "n_dropped": int((~keep).sum()),
    }
    if len(y) == 0 or y.sum() in (0, len(y)):
        return {**result, "error": "both classes are needed"}
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last row of each distinct score
    tps = np.cumsum(y)[last]
    fps = 1 + last - tps
    thresholds = s[last]
    keep_points = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
    fpr = np.r_[0.0, fps[keep_points] / fps[-1]]
    tpr = np.r_[0.0, tps[keep_points] / tps[-1]]
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    predicted = scores[keep] >= settings["threshold"]
    actual = labels[keep] == 1
    true_positive = float(np.sum(predicted & actual))
    p, r = _ratio(true_positive, predicted.sum()), _ratio(true_positive, actual.sum())
    probability = s[(s >= 0) & (s <= 1)]
    logloss = None
    if len(probability) == len(s):
        clipped = np.clip(s, np.finfo(float).eps, 1 - np.finfo(float).eps)
        logloss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    return {
        **result,
        "auc": float(np.trapezoid(tpr, fpr)),
        "average_precision": float(np.sum(np.diff(np.r_[0.0, recall]) * precision)),
        "logloss": logloss,
        "accuracy": float(np.mean(predicted == actual)),
        "precision": p,
        "recall": r,
        "f1": _ratio(2 * p * r, p + r),
        "roc_fpr": fpr,
        "roc_tpr": tpr,
        "roc_thresholds": np.r_[np.inf, thresholds[keep_points]],
        "pr_precision": np.r_[precision[::-1], 1.0],
        "pr_recall": np.r_[recall[::-1], 0.0],
        "pr_thresholds": thresholds[::-1],
    }


def multiclass(labels: Sequence[Any], predicted: Sequence[Any]) -> dict[str, Any]:
    """Classification metrics of ``predicted`` against ``labels`` (any type, compared as
    text: see :func:`class_name`); pairs with a NULL are left out."""
    classes, matrix = confusion(labels, predicted)
    total = int(matrix.sum())
    support = matrix.sum(axis=1)
    chosen = matrix.sum(axis=0)
    hits = np.diag(matrix).astype(float)
    precision = np.array([_ratio(h, c) for h, c in zip(hits, chosen)])
    recall = np.array([_ratio(h, t) for h, t in zip(hits, support)])
    f1 = np.array([_ratio(2 * p * r, p + r) for p, r in zip(precision, recall)])
    accuracy = _ratio(hits.sum(), total)
    expected = _ratio(float(support @ chosen), float(total) ** 2)
    present = support > 0  # macro averages are over the classes of the labels and the predictions
    return {
        "n": total,
        "n_dropped": len(labels) - total,
        "classes": classes,
        "accuracy": accuracy,
        "kappa": _ratio(accuracy - expected, 1 - expected) if total else None,
        "macro_precision": float(precision.mean()) if len(classes) else None,
        "macro_recall": float(recall.mean()) if len(classes) else None,
        "macro_f1": float(f1.mean()) if len(classes) else None,
        "weighted_f1": _ratio(float(f1[present] @ support[present]), float(support.sum())),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.tolist(),
    }


def regression(labels: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Regression metrics of ``predicted`` against ``labels``; rows with a NULL are left out."""
    keep = np.isfinite(labels) & np.isfinite(predicted)
    y, f = labels[keep], predicted[keep]
    result: dict[str, Any] = {"n": len(y), "n_dropped": int((~keep).sum())}
    if len(y) == 0:
        return result
    residual = y - f
    mse = float(np.mean(residual**2))
    variance = float(np.var(y))
    return {
        **result,
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(residual))),
        "r2": 1 - mse / variance if variance else None,
        "explained_variance": 1 - float(np.var(residual)) / variance if variance else None,
    }


def confusion(labels: Sequence[Any], predicted: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """The classes (of labels and predictions, sorted as :func:`class_names`) and the
    counts matrix: rows are labels, columns predictions; pairs with a NULL are left out."""
    pairs = [(class_name(a), class_name(b)) for a, b in zip(labels, predicted)]
    kept = [(a, b) for a, b in pairs if a is not None and b is not None]
    classes, _ = class_names([name for pair in kept for name in pair])
    position = {name: index for index, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for a, b in kept:
        matrix[position[a], position[b]] += 1
    return classes, matrix


def split_fraction(keys: Sequence[Any], seed: int) -> np.ndarray:
    """A number in [0, 1) per key from a cryptographic hash of the key's text and the seed:
    ``split_fraction(key, 7) < 0.8`` keeps the same 80% of keys on every run, machine and
    Spark partitioning. NULL keys give NaN."""
    out = np.full(len(keys), np.nan)
    prefix = f"{int(seed)}\x00".encode()
    for index, key in enumerate(keys):
        name = class_name(key)
        if name is not None:
            digest = hashlib.blake2b(prefix + name.encode(), digest_size=8).digest()
            out[index] = (int.from_bytes(digest, "big") >> 11) / float(1 << 53)
    return out
