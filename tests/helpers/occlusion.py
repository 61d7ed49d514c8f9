"""Occlusion-detection numbers by their definitions, independent of the binned implementation."""

from __future__ import annotations

import numpy as np


def detection_scores_by_definition(scores: np.ndarray, positive: np.ndarray, threshold: float) -> dict:
    """Precision and recall at `threshold` (positive predicted when score >= threshold), recall at 80%
    precision and average precision, over each distinct score t, highest first (predicted positive:
    score >= t), as scikit-learn's `precision_recall_curve` / `average_precision_score` define them.
    NaN where a number is not defined (no positive; precision: nothing predicted positive)."""
    scores, positive = np.ravel(scores), np.ravel(positive).astype(bool)
    predicted = scores >= threshold
    result = {
        "precision": positive[predicted].mean() if predicted.any() else np.nan,
        "recall": predicted[positive].mean() if positive.any() else np.nan,
        "recall_at_p80": np.nan,
        "ap": np.nan,
    }
    if positive.any():
        precisions, recalls = [], []
        for t in np.unique(scores)[::-1]:
            chosen = scores >= t
            precisions.append(positive[chosen].mean())
            recalls.append(positive[chosen].sum() / positive.sum())
        gains = np.diff(np.concatenate([[0.0], recalls]))
        result["ap"] = float((gains * np.array(precisions)).sum())
        reached = [r for p, r in zip(precisions, recalls, strict=True) if p >= 0.8 - 1e-12]
        result["recall_at_p80"] = max(reached, default=0.0)
    return {name: float(value) for name, value in result.items()}
