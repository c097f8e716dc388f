"""The per-epoch draw of training events by |weight|, class by class (binary and multiclass training)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: (positions of a class' events, their cumulative |w| normalised to end at 1, the weight a drawn event
#: carries, events drawn per epoch)
ClassDraw = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def class_draw(pos: np.ndarray, w: np.ndarray, n: int, label: object) -> ClassDraw:
    """How an epoch draws `n` events of one class by |weight|: (positions of the class' events, their
    cumulative |w| normalised to end at 1, the weight each drawn event carries, n). A drawn event carries
    sign(w) x (sum |w|) / (sum w), so the draw's expected weights are the class' true ones.

    Raises:
        ValueError: the class' total weight is not positive (the message names the class `label`).
    """
    total, total_abs = w[pos].sum(), np.abs(w[pos]).sum()
    if total <= 0:
        raise ValueError(f"class {label} has non-positive total weight {total} in the training scope")
    cdf = np.cumsum(np.abs(w[pos]))
    return pos, cdf / cdf[-1], np.sign(w[pos]) * (total_abs / total), n


def draw_classes(
    classes: Sequence[ClassDraw], rng: np.random.Generator, n_draw: int
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's draw of every class (`class_draw`), shuffled: (positions, weights)."""
    picks, weights = [], []
    for pos, cdf, w_draw, n in classes:
        # u in [0, 1) falls in event i's interval [cdf[i-1], cdf[i]): zero-weight events are never drawn
        at = np.searchsorted(cdf, rng.random(n), side="right")
        picks.append(pos[at])
        weights.append(w_draw[at])
    shuffle = rng.permutation(n_draw)
    return np.concatenate(picks)[shuffle], np.concatenate(weights)[shuffle]
