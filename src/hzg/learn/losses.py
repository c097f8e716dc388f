"""Training losses of the paper (000, Sec. III A-B): BCE, extreme loss (eq. 4), weighted DisCo, data scope
(eq. 6).

Conventions, stated once:
* Every function takes 1-D tensors (an (N, 1) network output is flattened) and per-event weights w and
  returns a scalar; a weighted mean is sum(w * l) / sum(w), and 0 (still attached to the graph, so backward()
  works) when no event is selected or sum(w) == 0. Labels: signal y = 1, background y = 0.
* Mass windows are open intervals, lo < m < hi (as in the paper's public code, `m > lo & m < hi`).
* The extreme loss clamps y_hat to the `clamp` bounds it is given (default 0.001-0.999, Sec. IV C).
* DisCo (Kasieczka & Shih, arXiv:2001.05310) with w' = w n / sum(w), a_ij = |x_i - x_j|, b_ij = |y_i - y_j|,
  a_i = mean_j w'_j a_ij, a = mean_i w'_i a_i: dCov^2(x, y) = S1 - 2 S2 + S3 with S1 = mean_ij w'_i w'_j a_ij
  b_ij,
  S2 = mean_i w'_i a_i b_i, S3 = a b, and DisCo = dCov^2(x, y) / sqrt(dCov^2(x, x) dCov^2(y, y)), i.e. the
  squared
  distance correlation dCor^2 (V-statistic) that their `distance_corr` returns for power=1; power=2 squares
  it.
  No N x N matrix is built: the pair sums come from sorted orders and prefix sums (`hzg.learn.pairsums`), so
  time is
  O(N log N) and memory O(N); the backward pass is analytic and uses sgn(0) = 0 at ties, as autograd of |.|
  does.
  It is computed in float64. It is differentiable in x and y, not in w (w' is detached). It is 0 for fewer
  than
  2 events, sum(w) == 0 or a constant input; near independence rounding can make it slightly negative, which
  is
  not clipped (the gradient stays intact).
"""

from __future__ import annotations

import torch

from hzg.learn import pairsums
from hzg.registry import LOSS_KINDS


def _flat(t: torch.Tensor) -> torch.Tensor:
    """The tensor as 1-D (an (N, 1) network output becomes (N,))."""
    return t.reshape(-1)


def _zero_like(t: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that stays attached to t's graph (so backward() works on an empty selection)."""
    return (t * 0).sum()


def _weighted_mean(values: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum(w * values) / sum(w), and 0 where sum(w) == 0 (no NaN, no host sync)."""
    wsum = w.sum()
    safe = torch.where(wsum == 0, torch.ones_like(wsum), wsum)
    return torch.where(wsum == 0, torch.zeros_like(wsum), (w * values).sum() / safe)


def bce(y_hat: torch.Tensor, y: torch.Tensor, w: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Weighted binary cross-entropy, eq. (1), on probabilities clamped to [eps, 1 - eps]."""
    p = _flat(y_hat).clamp(eps, 1.0 - eps)
    t = _flat(y).to(p.dtype)
    loss = -(t * torch.log(p) + (1.0 - t) * torch.log1p(-p))
    return _weighted_mean(loss, _flat(w).to(p.dtype))


def extreme(
    y_hat: torch.Tensor, y: torch.Tensor, w: torch.Tensor, clamp: tuple[float, float] = (0.001, 0.999)
) -> torch.Tensor:
    """Weighted extreme loss, eq. (4), with y_hat clamped to [clamp[0], clamp[1]] (the bounds given)."""
    lo, hi = float(clamp[0]), float(clamp[1])
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(f"extreme loss: clamp must satisfy 0 < lo < hi < 1, got {clamp!r}")
    p = _flat(y_hat).clamp(lo, hi)
    t = _flat(y).to(p.dtype)
    log_p, log_1mp = torch.log(p), torch.log1p(-p)
    loss = -t * (-1.0 / p - log_1mp + log_p) - (1.0 - t) * (1.0 / (p - 1.0) + log_1mp - log_p)
    return _weighted_mean(loss, _flat(w).to(p.dtype))


class _DistanceCorrelation(torch.autograd.Function):
    """dCor^2(x, y)^(power) with normalised weights w' (mean 1); analytic backward in x and y (not in w').

    Computed in float64 whatever the input precision (the pair sums are prefix sums over all events), and
    returned in the inputs' dtype.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, wn: torch.Tensor, power: float) -> torch.Tensor:
        dtype = x.dtype
        x, y, wn = x.double(), y.double(), wn.double()
        n = x.shape[0]

        def wmean(v: torch.Tensor) -> torch.Tensor:
            return (wn * v).mean()

        # Distances are shift invariant: centring only helps the closed-form variances below.
        xc, yc = x - wmean(x), y - wmean(y)
        xs, ys = pairsums.Sorted.of(xc), pairsums.Sorted.of(yc)
        a_row = pairsums.abs_sums(xs, wn[:, None])[:, 0] / n  # a_i = mean_j w'_j a_ij
        b_row = pairsums.abs_sums(ys, wn[:, None])[:, 0] / n
        a_all, b_all = wmean(a_row), wmean(b_row)  # a = mean_i w'_i a_i
        # S1 = mean_ij w'_i w'_j a_ij b_ij = (2/n^2) sum_i w'_i sum_{j before i in y-order} w'_j a_ij (y_i -
        # y_j)
        earlier = pairsums.ordered_abs_sums(ys.order, xs, torch.stack((wn, wn * yc), dim=1))
        s1 = 2.0 * (wn * (yc * earlier[:, 0] - earlier[:, 1])).sum() / n**2
        # dCov^2 = S1 - 2 S2 + S3, S2 = mean_i w'_i a_i b_i, S3 = a b.
        dcov = s1 - 2.0 * wmean(a_row * b_row) + a_all * b_all
        # S1(x, x) = mean_ij w'_i w'_j (x_i - x_j)^2 = 2 [mean(w' x^2) - mean(w' x)^2], as mean(w') = 1.
        var_x = 2.0 * (wmean(xc**2) - wmean(xc) ** 2) - 2.0 * wmean(a_row**2) + a_all**2
        var_y = 2.0 * (wmean(yc**2) - wmean(yc) ** 2) - 2.0 * wmean(b_row**2) + b_all**2
        denom = var_x * var_y
        # A constant input has all distances exactly 0 (a_all == 0): dCor is 0 there, with no gradient. A NaN
        # or infinite input (or weight) gives NaN, so that the loss shows it (the training stops on it).
        finite = torch.isfinite(denom) & torch.isfinite(dcov)
        ok = (a_all > 0) & (b_all > 0) & (denom > 0) & finite
        one = torch.ones_like(denom)
        var_x, var_y = torch.where(ok, var_x, one), torch.where(ok, var_y, one)
        r = torch.where(ok, dcov / torch.sqrt(var_x * var_y), torch.where(finite, 0.0, torch.nan).to(dcov))
        ctx.power, ctx.dtype = power, dtype
        ctx.save_for_backward(xc, yc, xs.order, ys.order, wn, a_row, b_row, a_all, b_all, var_x, var_y, r, ok)
        return (r if power == 1 else r**power).to(dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        xc, yc, x_order, y_order, wn, a_row, b_row, a_all, b_all, var_x, var_y, r, ok = ctx.saved_tensors
        xs, ys = pairsums.Sorted(xc, x_order), pairsums.Sorted(yc, y_order)
        n = xc.shape[0]
        chain = 1.0 if ctx.power == 1 else ctx.power * r ** (ctx.power - 1)
        scale = torch.where(ok, grad.double() * chain * (2.0 / n**2), torch.zeros_like(r))
        c_cov = 1.0 / torch.sqrt(var_x * var_y)

        def gradient(own, other, own_row, other_row, own_all, other_all, var_own):
            # d r / d own_k = (2/n^2) w'_k sum_j w'_j s_kj [c_cov O_kj - (r / var_own) S_kj], with O, S the
            # double-centred distance matrices of `other` and `own`, s_kj = sgn(own_k - own_j); |d|*s = d.
            c_own = r / var_own
            u = c_cov * other_row - c_own * own_row
            const = c_cov * other_all - c_own * own_all
            t_other = pairsums.signed_abs_sums(own, other, wn[:, None], n * other_row[:, None])[:, 0]
            t_sign, t_u = pairsums.signed_sums(own, torch.stack((wn, wn * u), dim=1)).unbind(dim=1)
            own = own.values
            inner = c_cov * t_other - c_own * n * (own - (wn * own).mean()) + (const - u) * t_sign - t_u
            return torch.where(ok, scale * wn * inner, 0.0).to(ctx.dtype)  # no gradient where dCor is 0

        gx = gradient(xs, ys, a_row, b_row, a_all, b_all, var_x) if ctx.needs_input_grad[0] else None
        gy = gradient(ys, xs, b_row, a_row, b_all, a_all, var_y) if ctx.needs_input_grad[1] else None
        return gx, gy, None, None


def distance_correlation(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, power: float = 1) -> torch.Tensor:
    """Weighted DisCo (module text): dCor^2(x, y) for power=1, its square for power=2; differentiable in x,
    y."""
    x, y = _flat(x), _flat(y)
    dtype = torch.promote_types(x.dtype, y.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    x, y, w = x.to(dtype), y.to(dtype), _flat(w).to(dtype)
    n = x.shape[0]
    if not x.shape == y.shape == w.shape:
        raise ValueError(
            f"distance_correlation: x, y and w need one length, got {x.shape}, {y.shape}, {w.shape}"
        )
    if n < 2:
        return _zero_like(y) + _zero_like(x)
    wsum = w.sum()
    wn = (w * (n / torch.where(wsum == 0, torch.ones_like(wsum), wsum))).detach()
    value = _DistanceCorrelation.apply(x, y, wn, power)
    return torch.where(wsum == 0, torch.zeros_like(value), value)


def in_window(mass: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    """Events inside the open mass window lo < m < hi."""
    m = _flat(mass)
    return (m > window[0]) & (m < window[1])


def classifier_mask(mass: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    """Data scope of the classifier term: signal and background with lo < m < hi (narrow window)."""
    return in_window(mass, window)


def disco_mask(mass: torch.Tensor, y: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    """Data scope of the DisCo term: background (y == 0) with lo < m < hi (wide window)."""
    return (_flat(y) == 0) & in_window(mass, window)


def class_balanced_weights(w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`w` rescaled so that signal (y = 1) and background each sum to half of its total: a weighted mean over
    them is the mean of the two classes' weighted means. Unchanged where a class sums to zero or less (it is
    missing from the batch, or its negative weights win). No host synchronisation (the GPU path)."""
    signal = (y == 1).to(w.dtype)
    s, b = (w * signal).sum(), (w * (1.0 - signal)).sum()
    usable = (s > 0) & (b > 0)
    tiny = torch.finfo(w.dtype).tiny
    scale = 0.5 * (s + b) * (signal / s.clamp_min(tiny) + (1.0 - signal) / b.clamp_min(tiny))
    return w * torch.where(usable, scale, torch.ones_like(scale))


def total_loss(
    y_hat: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    mass: torch.Tensor,
    kind: str,
    disco_lambda: float,
    data_scope: bool,
    narrow: tuple[float, float],
    wide: tuple[float, float],
    balance_classifier: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eqs. (5)-(6): classifier loss + lambda * DisCo(mass, y_hat); returns the loss and its parts as
    floats. `balance_classifier`: the classifier term weighs the two classes of its scope equally
    (`class_balanced_weights`, config `losses.<loss>.balance_classifier`); DisCo keeps the weights."""
    # data_scope: classifier on classifier_mask(mass, narrow), DisCo on disco_mask(mass, y, wide);
    # otherwise classifier on all events and DisCo on all background events.
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; expected one of {LOSS_KINDS}")
    y_hat, y, w, mass = _flat(y_hat), _flat(y), _flat(w), _flat(mass)
    classifier = bce if kind == "bce" else extreme
    cmask = classifier_mask(mass, narrow) if data_scope else torch.ones_like(y, dtype=torch.bool)
    cw = class_balanced_weights(w[cmask], y[cmask]) if balance_classifier else w[cmask]
    cls_term = classifier(y_hat[cmask], y[cmask], cw)
    loss = cls_term
    parts = {"classifier": float(cls_term.detach())}
    if disco_lambda > 0:
        dmask = disco_mask(mass, y, wide) if data_scope else (y == 0)
        disco = distance_correlation(mass[dmask], y_hat[dmask], w[dmask])
        loss = loss + disco_lambda * disco
        parts["disco"] = float(disco.detach())
    else:
        parts["disco"] = 0.0
    parts["total"] = float(loss.detach())
    return loss, parts


def total_loss_by_weight(
    y_hat: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    mass: torch.Tensor,
    kind: str,
    disco_lambda: float,
    data_scope: bool,
    narrow: tuple[float, float],
    wide: tuple[float, float],
    balance_classifier: bool = False,
) -> torch.Tensor:
    """`total_loss` without a host synchronisation (for the GPU): the data scope zeroes weights instead of
    selecting events (boolean indexing waits for the device), and no float() of the parts. Events of weight 0
    change neither the weighted classifier mean nor DisCo, so the value is that of `total_loss` up to float
    rounding."""
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; expected one of {LOSS_KINDS}")
    y_hat, y, w, mass = _flat(y_hat), _flat(y), _flat(w), _flat(mass)
    classifier = bce if kind == "bce" else extreme
    cw = w * classifier_mask(mass, narrow).to(w.dtype) if data_scope else w
    if balance_classifier:
        cw = class_balanced_weights(cw, y)
    loss = classifier(y_hat, y, cw)
    if disco_lambda > 0:
        dmask = disco_mask(mass, y, wide) if data_scope else (y == 0)
        loss = loss + disco_lambda * distance_correlation(mass, y_hat, w * dmask.to(w.dtype))
    return loss
