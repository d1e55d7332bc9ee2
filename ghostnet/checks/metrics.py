"""Alignment metrics between the network's updates and a reference (docs/model.md §11, E2)."""
from __future__ import annotations

import numpy as np


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two arrays (flattened), in degrees.

    Computed as ``2 atan2(|a^ - b^|, |a^ + b^|)`` with unit vectors ``a^``, ``b^``: accurate for
    tiny angles, where ``arccos`` of the cosine loses all precision. NaN if either is zero.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    a, b = a / na, b / nb
    return float(np.degrees(2.0 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))))


def norm_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """``|a| / |b|`` (flattened); NaN if ``b`` is zero."""
    nb = np.linalg.norm(np.asarray(b, dtype=np.float64))
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64)) / nb) if nb > 0 else float("nan")


def layer_alignment(update, ref_dW, ref_db) -> list[dict]:
    """Per layer (1-based), angle and norm ratio between ``update`` (downhill) and ``-ref`` (a
    gradient); weights and biases of a layer taken together as one vector."""
    rows = []
    for i in range(len(ref_dW)):
        ref = -np.concatenate([np.ravel(ref_dW[i]), np.ravel(ref_db[i])])
        net = update.flat(i)
        rows.append({"layer": i + 1, "angle_deg": angle_deg(net, ref), "norm_ratio": norm_ratio(net, ref)})
    return rows
