"""Tests for hzg.learn.pairsums: the O(n log n) pair sums against their direct O(n^2) definitions."""

from __future__ import annotations

import pytest
import torch

from hzg.learn import pairsums
from hzg.learn.models import small_attention

DT = torch.float64


def values(n: int, seed: int, ties: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=g, dtype=DT)
    o = torch.randn(n, generator=g, dtype=DT)
    if ties:
        v, o = torch.round(v * 2), torch.round(o * 2)
    weights = torch.rand(n, 3, generator=g, dtype=DT) + 0.1
    return v, o, weights


CASES = [
    (1, 0, False),
    (2, 1, False),
    (5, 2, True),
    (16, 3, False),
    (33, 4, True),
    (100, 5, False),
    (257, 6, True),
]


@pytest.mark.parametrize("n, seed, ties", CASES)
def test_abs_sums(n, seed, ties):
    v, _, g = values(n, seed, ties)
    expected = ((v[:, None] - v[None, :]).abs()[:, :, None] * g[None]).sum(1)
    torch.testing.assert_close(pairsums.abs_sums(pairsums.Sorted.of(v), g), expected)


@pytest.mark.parametrize("n, seed, ties", CASES)
def test_signed_sums_take_sign_zero_at_ties(n, seed, ties):
    _, o, g = values(n, seed, ties)
    expected = (torch.sign(o[:, None] - o[None, :])[:, :, None] * g[None]).sum(1)
    torch.testing.assert_close(pairsums.signed_sums(pairsums.Sorted.of(o), g), expected)


@pytest.mark.parametrize("n, seed, ties", CASES)
def test_signed_abs_sums(n, seed, ties):
    v, o, g = values(n, seed, ties)
    pair = torch.sign(o[:, None] - o[None, :]) * (v[:, None] - v[None, :]).abs()
    expected = (pair[:, :, None] * g[None]).sum(1)
    o_sorted, v_sorted = pairsums.Sorted.of(o), pairsums.Sorted.of(v)
    torch.testing.assert_close(pairsums.signed_abs_sums(o_sorted, v_sorted, g), expected)
    given = pairsums.signed_abs_sums(o_sorted, v_sorted, g, pairsums.abs_sums(v_sorted, g))
    torch.testing.assert_close(given, expected)


@pytest.mark.parametrize("n, seed, ties", CASES)
def test_ordered_abs_sums_sum_over_the_events_before(n, seed, ties):
    v, o, g = values(n, seed, ties)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    place = torch.empty(n, dtype=torch.long)
    place[order] = torch.arange(n)
    before = (place[None, :] < place[:, None]).to(DT)  # [i, j]: j comes before i
    expected = ((before * (v[:, None] - v[None, :]).abs())[:, :, None] * g[None]).sum(1)
    torch.testing.assert_close(pairsums.ordered_abs_sums(order, pairsums.Sorted.of(v), g), expected)


@pytest.mark.parametrize("dtype", [DT, torch.float32])
@pytest.mark.parametrize("n", [1, 2, 7, 64, 65, 300])
def test_dominance_sums_count_earlier_smaller_events(n, dtype):
    """Both implementations: the kernel's Fenwick tree (where it is built) and the merge sort of tensor
    operations (the fallback off the CPU)."""
    rank = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    g = torch.rand(n, 2, dtype=dtype)
    pos = torch.arange(n)
    mask = ((pos[None, :] < pos[:, None]) & (rank[None, :] < rank[:, None])).to(dtype)
    by_rank = torch.argsort(rank)
    torch.testing.assert_close(pairsums.dominance_sums(by_rank, g), mask @ g)
    torch.testing.assert_close(pairsums.merge_sort_dominance_sums(by_rank, g), mask @ g)


@pytest.mark.skipif(small_attention.extension() is None, reason="the project's kernel library is not built")
def test_dominance_sums_take_the_kernel_and_check_the_permutation(kernel_calls):
    kernel = small_attention.extension()
    calls = kernel_calls("dominance_sums")
    g = torch.rand(10, 3, dtype=DT)
    pairsums.dominance_sums(torch.arange(10).flip(0), g)
    assert calls == [(10,)]
    with pytest.raises(RuntimeError, match="not a permutation"):
        kernel.dominance_sums(torch.tensor([0, 0, 2]), torch.rand(3, 1, dtype=DT))


@pytest.mark.parametrize(
    "values, expected",
    [
        ([3.0, 1.0, 2.0], None),
        # ascending, ties by index: [0, 2 | 3 | 1, 4, 5]; each run of ties reversed
        ([1.0, 3.0, 1.0, 2.0, 3.0, 3.0], [2, 0, 3, 5, 4, 1]),
        ([5.0, 5.0, 5.0, 5.0], [3, 2, 1, 0]),
        ([0.0, 1.0, 1.0, 2.0], [0, 2, 1, 3]),
    ],
)
def test_ties_reversed_reverses_every_run_of_equal_values(values, expected):
    reversed_order = pairsums.ties_reversed(pairsums.Sorted.of(torch.tensor(values, dtype=DT)))
    assert (reversed_order is None) if expected is None else reversed_order.tolist() == expected


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"values \(n,\) and weights \(n, c\)"):
        pairsums.abs_sums(pairsums.Sorted.of(torch.zeros(3)), torch.zeros(3))
    with pytest.raises(ValueError, match="got"):
        pairsums.signed_sums(pairsums.Sorted.of(torch.zeros(3)), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="1-D values"):
        pairsums.Sorted.of(torch.zeros(3, 1))
