"""Tests for hzg.learn.losses: BCE, extreme loss (eq. 4), weighted DisCo and the data-scope loss (eqs.
5-6)."""

from __future__ import annotations

import math
from pathlib import Path

import dcor
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hzg.config_checks import load_config
from hzg.learn.losses import (
    bce,
    class_balanced_weights,
    classifier_mask,
    disco_mask,
    distance_correlation,
    extreme,
    total_loss,
    total_loss_by_weight,
)

DT = torch.float64

#: the data-scope windows of the default configuration
NARROW, WIDE = (
    tuple(load_config(Path(__file__).resolve().parents[1] / "config/config.yaml")["training"][k])
    for k in ("narrow_window", "wide_window")
)


def t(values, dtype=DT, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, requires_grad=grad)


def ones(n: int, dtype=DT) -> torch.Tensor:
    return torch.ones(n, dtype=dtype)


# ---------------------------------------------------------------- extreme loss
# Eq. (4): y = 1: E = 1/p + ln(1-p) - ln p;  y = 0: E = 1/(1-p) - ln(1-p) + ln p.
HAND_POINTS = [
    # (y_hat, y, E)
    (0.5, 1.0, 2.0),  # 2 + ln .5 - ln .5
    (0.5, 0.0, 2.0),
    (0.25, 1.0, 5.09861228866811),  # 4 + ln 3
    (0.25, 0.0, 0.2347210446652237),  # 4/3 - ln .75 + ln .25
    (0.9, 1.0, -1.0861134662251084),  # 1/.9 + ln .1 - ln .9
    (0.9, 0.0, 12.19722457733622),  # 10 - ln .1 + ln .9
    (0.1, 0.0, -1.086113466225108),  # mirror image of (0.9, 1)
]


@pytest.mark.parametrize("p, y, expected", HAND_POINTS)
def test_extreme_matches_closed_form_at_hand_points(p, y, expected):
    assert extreme(t([p]), t([y]), ones(1)).item() == pytest.approx(expected, rel=1e-12)


def test_extreme_is_a_weighted_mean_of_the_hand_points():
    p, y, e = (t(list(col)) for col in zip(*HAND_POINTS))
    w = t([1.0, 2.0, 0.5, 3.0, 1.0, 0.25, 4.0])
    assert extreme(p, y, w).item() == pytest.approx(float((w * e).sum() / w.sum()), rel=1e-12)


@pytest.mark.parametrize("y", [0.0, 1.0])
def test_extreme_is_minimal_at_y_hat_equal_y(y):
    grid = torch.linspace(0, 1, 101, dtype=DT)
    values = torch.stack([extreme(p[None], t([y]), ones(1)) for p in grid])
    assert grid[int(torch.argmin(values))].item() == y


def test_extreme_exceeds_bce_for_background_near_one():
    # Fig. 3: for y = 0 the extreme loss penalises y_hat -> 1 harder than BCE.
    for p in (0.9, 0.95, 0.99, 0.999):
        yp, y0 = t([p]), t([0.0])
        assert extreme(yp, y0, ones(1)).item() > bce(yp, y0, ones(1)).item() + 5.0


@pytest.mark.parametrize("y, sign", [(0.0, 1.0), (1.0, -1.0)])
def test_extreme_gradient_pushes_towards_label(y, sign):
    p = torch.linspace(0.01, 0.99, 50, dtype=DT).requires_grad_()
    extreme(p, torch.full_like(p, y), torch.ones_like(p)).backward()
    # gradient descent moves p by -grad: down for y = 0 (grad > 0), up for y = 1 (grad < 0)
    assert torch.all(torch.sign(p.grad) == sign)


def test_extreme_clamps_beyond_bounds_to_the_bound():
    for y in (0.0, 1.0):
        at_lo = extreme(t([0.001]), t([y]), ones(1)).item()
        at_hi = extreme(t([0.999]), t([y]), ones(1)).item()
        for p in (0.0, 1e-5, -0.3):
            assert extreme(t([p]), t([y]), ones(1)).item() == pytest.approx(at_lo, rel=1e-12)
        for p in (1.0, 0.99999, 1.2):
            assert extreme(t([p]), t([y]), ones(1)).item() == pytest.approx(at_hi, rel=1e-12)
    assert extreme(t([0.0]), t([1.0]), ones(1)).item() == pytest.approx(1006.9067547786485, rel=1e-12)


def test_extreme_honours_custom_clamp():
    # clamp=(0.1, 0.9): y_hat = 0.05 is evaluated at 0.1 -> E(0.1, y=1) = 10 + ln .9 - ln .1
    custom = extreme(t([0.05]), t([1.0]), ones(1), clamp=(0.1, 0.9)).item()
    assert custom == pytest.approx(12.197224577336218, rel=1e-12)
    default = extreme(t([0.05]), t([1.0]), ones(1)).item()  # evaluated at 0.05: 20 + ln .95 - ln .05
    assert default == pytest.approx(20 + math.log(0.95) - math.log(0.05), rel=1e-12)
    assert extreme(t([0.95]), t([0.0]), ones(1), clamp=(0.1, 0.9)).item() == pytest.approx(12.19722457733622)
    with pytest.raises(ValueError, match="clamp"):
        extreme(t([0.5]), t([1.0]), ones(1), clamp=(0.9, 0.1))


# ---------------------------------------------------------------- BCE
def test_bce_matches_torch_weighted():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(200, generator=g, dtype=DT) * 0.98 + 0.01
    y = (torch.rand(200, generator=g, dtype=DT) > 0.5).to(DT)
    w = torch.rand(200, generator=g, dtype=DT) * 3
    expected = F.binary_cross_entropy(p, y, weight=w, reduction="sum") / w.sum()
    assert bce(p, y, w).item() == pytest.approx(expected.item(), rel=1e-12)
    # unweighted, float32, (N, 1) network output
    expected = F.binary_cross_entropy(p.float(), y.float())
    assert bce(p.float()[:, None], y.float(), torch.ones(200)).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_bce_is_finite_at_zero_and_one():
    value = bce(t([0.0, 1.0]), t([1.0, 0.0]), ones(2))
    assert torch.isfinite(value) and value.item() == pytest.approx(-math.log(1e-7), rel=1e-6)


# ---------------------------------------------------------------- DisCo
def naive_disco(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, power: int = 1) -> torch.Tensor:
    """Direct O(n^2) transcription of the weighted DisCo definition, with explicit loops (reference)."""
    n = len(x)
    wn = [w[i] * n / w.sum() for i in range(n)]

    def centred(v):
        d = [[(v[i] - v[j]).abs() for j in range(n)] for i in range(n)]
        row = [sum(wn[j] * d[i][j] for j in range(n)) / n for i in range(n)]
        total = sum(wn[i] * row[i] for i in range(n)) / n
        return [[d[i][j] - row[i] - row[j] + total for j in range(n)] for i in range(n)]

    A, B = centred(x), centred(y)

    def dcov2(P, Q):
        return sum(wn[i] * wn[j] * P[i][j] * Q[i][j] for i in range(n) for j in range(n)) / n**2

    r = dcov2(A, B) / torch.sqrt(dcov2(A, A) * dcov2(B, B))
    return r**power


def sample(n: int, seed: int, dtype=DT) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=dtype) * 10 + 125
    y = torch.sigmoid((x - 125) ** 2 / 50 - 1 + torch.randn(n, generator=g, dtype=dtype))
    w = torch.rand(n, generator=g, dtype=dtype) + 0.1
    return x, y, w


@pytest.mark.parametrize("n, seed", [(7, 0), (20, 1), (60, 2)])
def test_disco_equals_dcor_squared_distance_correlation(n, seed):
    # dcor.distance_correlation_sqr is the (biased, V-statistic) dCor^2 = dCov^2(x,y)/sqrt(dVar^2 x dVar^2 y):
    # the quantity Kasieczka & Shih's distance_corr returns for power=1. dcor.distance_correlation is its
    # root.
    x, y, _ = sample(n, seed)
    ours = distance_correlation(x, y, ones(n)).item()
    expected = dcor.distance_correlation_sqr(x.numpy(), y.numpy())
    assert ours == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert abs(ours - dcor.distance_correlation(x.numpy(), y.numpy())) > 1e-3
    assert distance_correlation(x, y, ones(n), power=2).item() == pytest.approx(expected**2, rel=1e-10)


def test_disco_integer_weights_equal_repeated_events():
    x, y, _ = sample(30, 3)
    w = torch.from_numpy(np.random.default_rng(3).integers(1, 5, 30)).to(DT)
    reps = w.long().numpy()
    expected = dcor.distance_correlation_sqr(np.repeat(x.numpy(), reps), np.repeat(y.numpy(), reps))
    assert distance_correlation(x, y, w).item() == pytest.approx(expected, rel=1e-10)
    assert abs(distance_correlation(x, y, ones(30)).item() - expected) > 1e-4  # the weights matter here


def test_disco_agrees_with_naive_reference_value_and_gradient():
    x, y, w = sample(12, 4)
    for power in (1, 2):
        xa, ya = x.clone().requires_grad_(), y.clone().requires_grad_()
        xb, yb = x.clone().requires_grad_(), y.clone().requires_grad_()
        ours, ref = distance_correlation(xa, ya, w, power), naive_disco(xb, yb, w, power)
        assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
        ours.backward()
        ref.backward()
        torch.testing.assert_close(ya.grad, yb.grad, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 17, 32])
def test_disco_gradcheck(n):
    # 17: the merge levels of the pair sums end in partial blocks; 32: all blocks full
    x, y, w = sample(n, 5)
    for power in (1, 2):
        assert torch.autograd.gradcheck(
            lambda a, b: distance_correlation(a, b, w, power),
            (x.clone().requires_grad_(), y.clone().requires_grad_()),
        )


def test_disco_at_ties_matches_autograd_of_the_naive_reference():
    # rounded values tie in both inputs; autograd of |.| takes sgn(0) = 0 there, and so must DisCo's backward
    x, y, w = sample(40, 11)
    x, y = torch.round(x / 5) * 5, torch.round(y * 4) / 4
    assert len(torch.unique(x)) < 20 and len(torch.unique(y)) < 6
    xa, ya = x.clone().requires_grad_(), y.clone().requires_grad_()
    xb, yb = x.clone().requires_grad_(), y.clone().requires_grad_()
    ours, ref = distance_correlation(xa, ya, w), naive_disco(xb, yb, w)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ya.grad, yb.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-8, atol=1e-12)


def test_disco_on_a_training_size_float32_batch_equals_dcor():
    # a batch's background at the paper's batch size, in float32 as in training: computed in float64 inside
    g = np.random.default_rng(12)
    mass = g.uniform(100, 180, 4000)
    score = 1 / (1 + np.exp(-(mass - 140) / 30 + g.normal(0, 1, 4000)))
    ours = distance_correlation(
        torch.tensor(mass, dtype=torch.float32), torch.tensor(score, dtype=torch.float32), torch.ones(4000)
    )
    expected = dcor.distance_correlation_sqr(
        mass.astype(np.float32).astype(float), score.astype(np.float32).astype(float), method="mergesort"
    )
    assert ours.dtype == torch.float32 and ours.item() == pytest.approx(expected, rel=1e-6)


def test_disco_is_small_for_independent_inputs():
    g = torch.Generator().manual_seed(7)
    n = 4000
    mass = torch.rand(n, generator=g) * 80 + 100
    score = torch.rand(n, generator=g)
    w = torch.rand(n, generator=g) + 0.5
    value = distance_correlation(mass, score, w).item()
    assert abs(value) < 0.01
    dependent = distance_correlation(mass, torch.sigmoid((mass - 140) / 10) + 0.1 * score, w).item()
    assert dependent > 0.5


@pytest.mark.parametrize("a, b", [(2.0, 1.0), (-0.5, 3.0), (1e-3, -7.0)])
def test_disco_is_one_for_a_linear_relation(a, b):
    x, _, w = sample(200, 8)
    for power in (1, 2):
        assert distance_correlation(x, a * x + b, w, power).item() == pytest.approx(1.0, rel=1e-10)


def test_disco_gradient_is_finite_in_float32():
    x, y, w = sample(500, 9, dtype=torch.float32)
    y = y.requires_grad_()
    value = distance_correlation(x, y, w)
    value.backward()
    assert torch.isfinite(value) and torch.all(torch.isfinite(y.grad)) and y.grad.abs().sum() > 0


def test_disco_degenerate_inputs_give_zero_not_nan():
    x, _, w = sample(20, 10)
    constant = torch.full((20,), 0.3, dtype=DT, requires_grad=True)
    value = distance_correlation(x, constant, w)
    value.backward()
    assert value.item() == 0.0 and torch.all(constant.grad == 0)
    assert distance_correlation(torch.full((20,), 125.0, dtype=DT), x, w).item() == 0.0
    one = t([0.4], grad=True)
    value = distance_correlation(t([125.0]), one, ones(1))
    value.backward()
    assert value.item() == 0.0 and one.grad.item() == 0.0
    assert distance_correlation(t([]), t([]), t([])).item() == 0.0
    assert distance_correlation(x, x**2, torch.zeros(20, dtype=DT)).item() == 0.0


# ---------------------------------------------------------------- data scope
MASS = [99.0, 100.0, 100.01, 119.99, 120.0, 120.01, 125.0, 129.99, 130.0, 130.01, 179.99, 180.0, 180.5]
LABEL = [0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1]


def test_classifier_mask_is_the_open_narrow_window():
    mask = classifier_mask(t(MASS), NARROW)
    expected = [False, False, False, False, False, True, True, True, False, False, False, False, False]
    assert mask.tolist() == expected
    assert classifier_mask(t(MASS), window=(99.5, 100.005)).tolist() == [False, True] + [False] * 11


def test_disco_mask_is_background_in_the_open_wide_window():
    mask = disco_mask(t(MASS), t(LABEL), WIDE)
    # background with 100 < m < 180: 100.01, 120, 125, 130.01, 179.99 (100 and 180 themselves are out)
    expected = [False, False, True, False, True, False, True, False, False, True, True, False, False]
    assert mask.tolist() == expected
    assert disco_mask(t(MASS), t(LABEL), window=(124.0, 126.0)).tolist() == [m == 125.0 for m in MASS]


# ---------------------------------------------------------------- total loss
def loss_sample(n: int = 400, seed: int = 11):
    g = torch.Generator().manual_seed(seed)
    mass = torch.rand(n, generator=g, dtype=DT) * 90 + 95
    y = (torch.rand(n, generator=g, dtype=DT) < 0.4).to(DT)
    y_hat = torch.rand(n, generator=g, dtype=DT) * 0.98 + 0.01
    w = torch.rand(n, generator=g, dtype=DT) + 0.1
    return y_hat, y, w, mass


@pytest.mark.parametrize("kind, fn", [("bce", bce), ("extreme", extreme)])
def test_total_loss_without_disco_is_the_classifier_loss(kind, fn):
    y_hat, y, w, mass = loss_sample()
    loss, parts = total_loss(
        y_hat, y, w, mass, kind=kind, disco_lambda=0.0, data_scope=False, narrow=NARROW, wide=WIDE
    )
    assert loss.item() == pytest.approx(fn(y_hat, y, w).item(), rel=1e-12)
    assert parts == {
        "classifier": pytest.approx(loss.item()),
        "disco": 0.0,
        "total": pytest.approx(loss.item()),
    }
    loss, _ = total_loss(
        y_hat, y, w, mass, kind=kind, disco_lambda=0.0, data_scope=True, narrow=NARROW, wide=WIDE
    )
    m = (mass > 120) & (mass < 130)
    assert loss.item() == pytest.approx(fn(y_hat[m], y[m], w[m]).item(), rel=1e-12)


def test_data_scope_classifier_term_ignores_events_outside_narrow_window():
    y_hat, y, w, mass = loss_sample()
    outside = ~((mass > 120) & (mass < 130))
    changed = torch.where(outside, 1.0 - y_hat, y_hat).requires_grad_()
    base, _ = total_loss(
        y_hat, y, w, mass, kind="extreme", disco_lambda=0.0, data_scope=True, narrow=NARROW, wide=WIDE
    )
    loss, _ = total_loss(
        changed, y, w, mass, kind="extreme", disco_lambda=0.0, data_scope=True, narrow=NARROW, wide=WIDE
    )
    assert loss.item() == pytest.approx(base.item(), rel=1e-12)
    loss.backward()
    assert torch.all(changed.grad[outside] == 0) and torch.all(changed.grad[~outside] != 0)
    unscoped, _ = total_loss(
        changed, y, w, mass, kind="extreme", disco_lambda=0.0, data_scope=False, narrow=NARROW, wide=WIDE
    )
    assert abs(unscoped.item() - base.item()) > 1e-3


@pytest.mark.parametrize("data_scope", [True, False])
def test_total_loss_adds_lambda_disco_on_the_right_events(data_scope):
    y_hat, y, w, mass = loss_sample()
    lam = 10.0
    loss, parts = total_loss(
        y_hat, y, w, mass, kind="bce", disco_lambda=lam, data_scope=data_scope, narrow=NARROW, wide=WIDE
    )
    d = ((y == 0) & (mass > 100) & (mass < 180)) if data_scope else (y == 0)
    c = ((mass > 120) & (mass < 130)) if data_scope else torch.ones_like(d)
    expected_disco = distance_correlation(mass[d], y_hat[d], w[d]).item()
    expected_cls = bce(y_hat[c], y[c], w[c]).item()
    assert parts["disco"] == pytest.approx(expected_disco, rel=1e-12)
    assert parts["classifier"] == pytest.approx(expected_cls, rel=1e-12)
    assert loss.item() == pytest.approx(expected_cls + lam * expected_disco, rel=1e-12)
    assert parts["total"] == pytest.approx(loss.item())


@pytest.mark.parametrize("kind, fn", [("bce", bce), ("extreme", extreme)])
def test_balanced_classifier_term_is_the_mean_of_the_two_classes_means(kind, fn):
    """balance_classifier: the classifier term is the mean of the signal's and the background's weighted mean
    losses in the narrow window, however unequal their weights; DisCo keeps the weights as drawn; the
    GPU path (weights zeroed outside the scope) gives the same value; a class missing from the scope leaves
    the weights as they are."""
    y_hat, y, w, mass = loss_sample(600)
    w = torch.where(y == 1, 5.0 * w, w)  # the signal outweighs the background, as in a DisCo run's scope
    args = dict(kind=kind, disco_lambda=5.0, data_scope=True, narrow=NARROW, wide=WIDE)
    loss, parts = total_loss(y_hat, y, w, mass, balance_classifier=True, **args)
    c = (mass > 120) & (mass < 130)
    sig, bkg = c & (y == 1), c & (y == 0)
    expected = 0.5 * (fn(y_hat[sig], y[sig], w[sig]) + fn(y_hat[bkg], y[bkg], w[bkg])).item()
    assert parts["classifier"] == pytest.approx(expected, rel=1e-12)
    assert parts["classifier"] != pytest.approx(fn(y_hat[c], y[c], w[c]).item(), rel=1e-3)
    _, plain = total_loss(y_hat, y, w, mass, **args)
    assert parts["disco"] == plain["disco"]
    gpu = total_loss_by_weight(y_hat, y, w, mass, balance_classifier=True, **args)
    assert gpu.item() == pytest.approx(loss.item(), rel=1e-10)
    balanced = class_balanced_weights(w[c], y[c])
    assert balanced[y[c] == 1].sum().item() == pytest.approx(balanced[y[c] == 0].sum().item(), rel=1e-12)
    assert balanced.sum().item() == pytest.approx(w[c].sum().item(), rel=1e-12)
    only_signal = class_balanced_weights(w[sig], y[sig])
    assert torch.equal(only_signal, w[sig])


def test_total_loss_unknown_kind_is_named():
    y_hat, y, w, mass = loss_sample(20)
    with pytest.raises(ValueError, match="'focal'"):
        total_loss(
            y_hat, y, w, mass, kind="focal", disco_lambda=0.0, data_scope=True, narrow=NARROW, wide=WIDE
        )


def test_total_loss_with_empty_scopes_is_zero_and_differentiable():
    y_hat = t([0.3, 0.8], grad=True)
    loss, parts = total_loss(
        y_hat,
        t([1.0, 1.0]),
        ones(2),
        t([110.0, 150.0]),
        kind="extreme",
        disco_lambda=50.0,
        data_scope=True,
        narrow=NARROW,
        wide=WIDE,
    )
    assert loss.item() == 0.0 and parts == {"classifier": 0.0, "disco": 0.0, "total": 0.0}
    loss.backward()
    assert torch.all(y_hat.grad == 0)


def test_disco_of_a_nan_input_is_nan_with_a_finite_loss_nowhere():
    """A NaN output (a diverged model) or weight shows in DisCo, and so in the loss that the training checks,
    instead of a 0 whose gradient is NaN; a constant input keeps its 0 and its zero gradient."""
    x, y, w = sample(64, 11)
    for bad_y, bad_w in ((True, False), (False, True)):
        yy = y.clone().detach()
        ww = w.clone()
        if bad_y:
            yy[5] = float("nan")
        if bad_w:
            ww[7] = float("nan")
        yy.requires_grad_()
        value = distance_correlation(x, yy, ww)
        assert math.isnan(value.item())
    constant = torch.full((64,), 0.7, dtype=DT, requires_grad=True)
    value = distance_correlation(x, constant, w)
    value.backward()
    assert value.item() == 0.0 and torch.equal(constant.grad, torch.zeros_like(constant))
