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
    events where `inside` (positions `pos` into the arrays), the rest among the others, each group by |weight|
    (`class_draw`). A drawn event's weight is scaled by (its group's share of the class' |w|) / (its share of
    the draws), so every weighted sum over the epoch estimates what drawing the class by |w| alone does, with
    more events of the group that the share favours.

    Raises:
        ValueError: the share is not inside (0, 1), or a group is empty (the message names the class).
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
    frac = float(np.abs(w[inner]).sum() / np.abs(w[pos]).sum())
    n_in = int(round(n * share))
    drawn = []
    for group, count, scale, name in (
        (inner, n_in, frac / share, "inside"),
        (outer, n - n_in, (1 - frac) / (1 - share), "outside"),
    ):
        g_pos, cdf, w_draw, _ = class_draw(group, w, count, f"{label} ({name})")
        drawn.append((g_pos, cdf, w_draw * scale, count))
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
