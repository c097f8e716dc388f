"""The per-epoch draw of training events by |weight|, class by class (binary and multiclass training)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def split_class_draw(
    pos: np.ndarray, inside: np.ndarray, w: np.ndarray, n: int, share: float, label: object
) -> list[ClassDraw]:
    """How an epoch draws `n` events of one class in two groups: `share` of the draws among the class'
    events where `inside` (positions `pos` into the arrays), the rest among the others, each group by
    |weight|.

    A group g of the class drawn `n_g` times picks event i with probability |w_i| / A_g per draw (A_g: the
    group's sum of |w|); the event then carries sign(w_i) (A_g / S) (n / n_g), S the class' sum of w. Its
    expected weight over the epoch is then n w_i / S, what a draw of the class by |w| alone gives it
    (`class_draw`), for every sign of the weights: every weighted sum over the epoch estimates the same
    thing, with more events of the group that the share favours. `n_g` is the share rounded to whole draws
    (at least one per group), and the weights use it, not the share.

    Raises:
        ValueError: the share is not inside (0, 1), a group is empty, or the class' total weight is not
        positive (the message names the class).
    """
    if not 0.0 < share < 1.0:
        raise ValueError(
            f"the share of class {label}'s draws in its inner group must be in (0, 1), not {share}"
        )
    inner, outer = pos[inside[pos]], pos[~inside[pos]]
    if inner.size == 0 or outer.size == 0:
        raise ValueError(
            f"class {label} has no training events {'in' if inner.size == 0 else 'outside'} its group"
        )
    total = float(w[pos].sum())
    if total <= 0:
        raise ValueError(f"class {label} has non-positive total weight {total} in the training scope")
    n_in = min(max(int(round(n * share)), 1), n - 1) if n >= 2 else int(round(n * share))
    drawn = []
    for group, count in ((inner, n_in), (outer, n - n_in)):
        cdf = np.cumsum(np.abs(w[group]))
        if cdf[-1] <= 0:
            raise ValueError(
                f"class {label} has no weight to draw from {'in' if group is inner else 'outside'} its group"
            )
        carried = np.sign(w[group]) * (cdf[-1] / total) * (n / count if count else 0.0)
        drawn.append((group, cdf / cdf[-1], carried, count))
    return drawn


def narrow_share_missing(loss: str, disco_lambda: float, training: Mapping[str, Any]) -> list[str]:
    """What a loss' `narrow_share` needs and the run lacks (empty: it applies), by config key: DisCo, the data
    scope (DisCo draws its background in the wide window) and a drawn epoch (`training.events_per_epoch`)."""
    return [
        what
        for what, ok in (
            (f"losses.{loss}.disco_lambda > 0", float(disco_lambda) > 0),
            ("training.data_scope", bool(training.get("data_scope"))),
            ("training.events_per_epoch (not null)", training.get("events_per_epoch") is not None),
        )
        if not ok
    ]


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
