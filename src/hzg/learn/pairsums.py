"""Sums over all pairs of events of 1-D distance terms in O(n log n), without N x N matrices.

The weighted distance correlation (`hzg.learn.losses.distance_correlation`) and its gradient need, for every
event i,
sums over all events j such as sum_j g_j |v_i - v_j| and sum_j g_j sgn(o_i - o_j) |v_i - v_j|. Built as N x N
matrices they cost O(n^2) time and memory; here they come from sorted orders and prefix sums:

* `abs_sums`: one sort of v and prefix sums (|v_i - v_j| is v_i - v_j below i in v-order, v_j - v_i above);
* `signed_sums`: one sort of o and prefix sums, exact at ties (sgn(0) = 0);
* `ordered_abs_sums`: for events taken in a given order, the sum over the events *before* each one. This is a
  2-D dominance sum (earlier in the order and smaller in v), computed as a bottom-up merge sort: log2(n)
  levels,
  each a few vectorised tensor operations over all n events (no Python loop over events), O(n log n) in all;
* `signed_abs_sums`: sgn(o_i - o_j)|v_i - v_j| summed, from `ordered_abs_sums` in o-order, exact at ties in o.

Values come as `Sorted` (sorted once, stably, and reused), weights g as (n, c) (c weight columns at once);
every
function returns (n, c) in the events' own order. Ties in v need no care anywhere: they contribute |v_i -
v_j| = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hzg.learn.models import small_attention


@dataclass(frozen=True)
class Sorted:
    """1-D values with their stable ascending order (ties keep the events' order), sorted once, used many
    times."""

    values: torch.Tensor
    order: torch.Tensor

    @classmethod
    def of(cls, values: torch.Tensor) -> Sorted:
        if values.dim() != 1:
            raise ValueError(f"pair sums need 1-D values, got shape {tuple(values.shape)}")
        return cls(values, torch.sort(values, stable=True).indices)

    @property
    def sorted_values(self) -> torch.Tensor:
        return self.values[self.order]


def _scatter_back(order: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Rows given in the order `order` (a permutation of the events) back in the events' own order."""
    out = torch.empty_like(values)
    out[order] = values
    return out


def _inverse(order: torch.Tensor) -> torch.Tensor:
    """The inverse permutation: the place of every event in `order`."""
    return _scatter_back(order, torch.arange(order.shape[0], device=order.device))


def _exclusive_cumsum(g: torch.Tensor) -> torch.Tensor:
    """Sum of the rows strictly before each row, (n, c) -> (n, c)."""
    return torch.cumsum(g, dim=0) - g


def _check(values: torch.Tensor, g: torch.Tensor) -> None:
    if values.dim() != 1 or g.dim() != 2 or g.shape[0] != values.shape[0]:
        raise ValueError(
            f"pair sums need values (n,) and weights (n, c), got {tuple(values.shape)} and {tuple(g.shape)}"
        )


def _abs_from_prefix(v: torch.Tensor, below: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """sum_j g_j |v - v_j| from the sums of (g, g v) over the j below v (`below`) and over all j (`total`).

    below, total: (n, 2c), the first c columns sums of g, the last c of g * v. An event not in `below` is
    taken
    as above v; an event tied with v may sit on either side, as its term is 0.
    """
    c = below.shape[1] // 2
    return v[:, None] * (2 * below[:, :c] - total[:, :c]) - (2 * below[:, c:] - total[:, c:])


def _with_moments(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(g, g v) side by side: (n, 2c)."""
    return torch.cat((g, g * v[:, None]), dim=1)


def abs_sums(v: Sorted, g: torch.Tensor) -> torch.Tensor:
    """sum_j g_jc |v_i - v_j| for every event i and weight column c: (n,), (n, c) -> (n, c)."""
    _check(v.values, g)
    vs = v.sorted_values
    moments = _with_moments(vs, g[v.order])
    sums = _abs_from_prefix(vs, _exclusive_cumsum(moments), moments.sum(dim=0, keepdim=True))
    return _scatter_back(v.order, sums)


def signed_sums(o: Sorted, g: torch.Tensor) -> torch.Tensor:
    """sum_j g_jc sgn(o_i - o_j) for every event i, with sgn(0) = 0: (n,), (n, c) -> (n, c)."""
    _check(o.values, g)
    sorted_o = o.sorted_values
    prefix = torch.cat((torch.zeros_like(g[:1]), torch.cumsum(g[o.order], dim=0)))
    below = torch.searchsorted(
        sorted_o, o.values, side="left"
    )  # events with o_j < o_i: sorted places [0, below)
    not_above = torch.searchsorted(sorted_o, o.values, side="right")  # o_j <= o_i: [0, not_above)
    return prefix[below] - (prefix[-1] - prefix[not_above])


def dominance_sums(by_rank: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """For events in a sequence, sum of g over the earlier events with a smaller rank: (n,), (n, c) -> (n, c).

    out[p] = sum_{q < p, rank[q] < rank[p]} g[q] for the events at sequence places p, q, with `by_rank` the
    places listed by increasing rank (a permutation of 0..n-1; distinct ranks). Merge sort run top-down: at
    level
    L the sequence is cut into blocks of 2^(L+1) places, and `pos` lists the places sorted by (block, rank);
    within each block the events of its left half are summed, in rank order, into the events of its right
    half.
    Every pair q < p meets in exactly one block, at the level where they first fall into different halves. A
    stable partition of each block into its halves gives the order of the next level down, so nothing is
    sorted.
    The pairs within blocks of 2^DENSE_LEVELS places are summed directly.

    On a CPU, where the project's kernel library is built (`hzg.learn.models.small_attention`), a Fenwick tree
    over the ranks does it instead, in C++ (`dominance_sums` of csrc/small_attention.cpp): the merge sort's
    Python loop over levels, about 15 tensor operations each, took two thirds of the distance correlation's
    time at 4096 events. Same sums, in another order (float rounding; tested).
    """
    _check(by_rank, g)
    if small_attention.usable(g) and by_rank.device.type == "cpu":
        return small_attention.extension().dominance_sums(by_rank, g)
    return merge_sort_dominance_sums(by_rank, g)


def merge_sort_dominance_sums(by_rank: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """`dominance_sums` as a merge sort of tensor operations (its docstring), on every device."""
    n = by_rank.shape[0]
    out = torch.zeros_like(g)
    pos = by_rank  # the top level: one block holding everything, in rank order
    level = max(n - 1, 1).bit_length() - 1  # half = 2^level < n <= 2^(level + 1)
    places = torch.arange(n, device=by_rank.device)
    while level >= DENSE_LEVELS:
        half = 1 << level
        in_right = torch.bitwise_and(torch.bitwise_right_shift(pos, level), 1).bool()
        from_left = torch.where(in_right[:, None], torch.zeros_like(g[:1]), g[pos])
        before = _exclusive_cumsum(from_left)
        # block b fills sorted places [b * 2 half, ...): subtract what the earlier blocks had summed
        start = torch.bitwise_left_shift(torch.bitwise_right_shift(pos, level + 1), level + 1)
        out += _scatter_back(pos, (before - before[start]) * in_right[:, None])  # pos: a permutation
        # stable partition of every block into its left half (places start..start+half-1), then its right half
        in_left = (~in_right).long()
        lefts = torch.cumsum(in_left, dim=0) - in_left  # left-half events before, over all blocks
        lefts_before = lefts - lefts[start]  # ... in this block
        dest = torch.where(in_right, start + half + (places - start) - lefts_before, start + lefts_before)
        pos = _scatter_back(dest, pos)
        level -= 1
    return out + _dense_block_sums(_inverse(by_rank), g, 1 << DENSE_LEVELS)


#: The lowest merge levels (blocks of up to 2^DENSE_LEVELS places) are summed pair by pair in one batched
#: product instead: fewer, larger tensor operations.
DENSE_LEVELS = 5


def _dense_block_sums(rank: torch.Tensor, g: torch.Tensor, size: int) -> torch.Tensor:
    """out[p] = sum of g[q] over q < p in p's block of `size` places with rank[q] < rank[p]: (n,), (n, c) ->
    (n, c)."""
    n, c = g.shape
    pad = -n % size
    rank = torch.cat((rank, rank.new_full((pad,), n))).view(-1, size)  # padding: never smaller
    g = torch.cat((g, g.new_zeros(pad, c))).view(-1, size, c)
    places = torch.arange(size, device=rank.device)
    earlier_smaller = (places[None, :, None] > places[None, None, :]) & (rank[:, :, None] > rank[:, None, :])
    return torch.bmm(earlier_smaller.to(g.dtype), g).view(-1, c)[:n]


def ordered_abs_sums(order: torch.Tensor, v: Sorted, g: torch.Tensor) -> torch.Tensor:
    """sum over the events j before i in `order` of g_jc |v_i - v_j|, for every event i: (n,), (n,), (n, c)
    -> (n, c).

    `order` lists the events (a permutation of 0..n-1) in sequence.
    """
    _check(v.values, g)
    vs = v.values[order]
    moments = _with_moments(vs, g[order])
    below = dominance_sums(_inverse(order)[v.order], moments)  # earlier and smaller in v
    sums = _abs_from_prefix(vs, below, _exclusive_cumsum(moments))  # earlier and not smaller: "above"
    return _scatter_back(order, sums)


def ties_reversed(o: Sorted) -> torch.Tensor | None:
    """o's ascending order with every run of tied values reversed (ties by descending index); None without
    ties."""
    sorted_o = o.sorted_values
    tied = sorted_o[1:] == sorted_o[:-1]
    if not bool(tied.any()):
        return None
    n = sorted_o.shape[0]
    places = torch.arange(n, device=sorted_o.device)
    new_run = torch.cat((torch.ones_like(tied[:1]), ~tied))  # a run of equal values starts here
    first = torch.cummax(torch.where(new_run, places, 0), dim=0).values
    run_ends = torch.cat((~tied, torch.ones_like(tied[:1])))  # ... ends here
    last = torch.cummin(torch.where(run_ends, places, n).flip(0), dim=0).values.flip(0)
    return o.order[first + last - places]


def signed_abs_sums(
    o: Sorted, v: Sorted, g: torch.Tensor, v_abs_sums: torch.Tensor | None = None
) -> torch.Tensor:
    """sum_j g_jc sgn(o_i - o_j) |v_i - v_j| for every event i, sgn(0) = 0: (n,), (n,), (n, c) -> (n, c).

    With E_i the sum over the events before i in o-order, ties in o broken by index upwards (E_up) or
    downwards
    (E_down), an event below i in o counts in both, one above in neither and one tied in exactly one, so the
    sum
    is E_up + E_down - sum_j g_j |v_i - v_j|. Without ties E_up = E_down and one merge sort does.
    `v_abs_sums`: abs_sums(v, g), where the caller has it already.
    """
    _check(o.values, g)
    earlier_up = ordered_abs_sums(o.order, v, g)
    down = ties_reversed(o)
    earlier_down = earlier_up if down is None else ordered_abs_sums(down, v, g)
    return earlier_up + earlier_down - (abs_sums(v, g) if v_abs_sums is None else v_abs_sums)
