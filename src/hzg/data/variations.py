"""Systematic variations applied to the events before the selection (propagated through everything)."""

from __future__ import annotations

import awkward as ak

from hzg.registry import NOMINAL, VARIATIONS


def apply(events: ak.Array, variation: str, sizes: dict[str, float]) -> ak.Array:
    """Events with the named variation applied: e.g. every photon pT scaled by (1 +- size)."""
    if variation == NOMINAL:
        return events
    if variation not in VARIATIONS:
        raise ValueError(f"unknown variation {variation!r}; known: nominal, {sorted(VARIATIONS)}")
    collection, sign = VARIATIONS[variation]
    size = sizes[variation.rsplit("_", 1)[0]]
    objects = events[collection]
    return ak.with_field(events, ak.with_field(objects, objects.pt * (1.0 + sign * size), "pt"), collection)
