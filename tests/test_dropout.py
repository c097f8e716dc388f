"""The CPU dropout with a 31-bit integer mask (hzg.learn.models.dropout)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hzg.learn.models.dropout import Dropout, keep_mask


def test_drop_rate_and_scale_match_nn_dropout():
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = Dropout(0.1).train()(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=4 * (0.1 * 0.9 / x.numel()) ** 0.5)  # 4 sigma
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.9), rtol=1e-6)
    assert y.mean().item() == pytest.approx(1.0, abs=4 * (0.1 / 0.9 / x.numel()) ** 0.5)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_mask_probability_is_p_to_2_to_the_minus_32(p):
    _, p_drop = keep_mask((10,), p)
    assert abs(p_drop - p) <= 2**-32


def test_every_shape_and_odd_sizes():
    torch.manual_seed(1)
    for shape in [(1,), (3,), (7, 5), (2, 3, 5)]:
        keep, _ = keep_mask(shape, 0.3)
        assert keep.shape == shape and keep.dtype == torch.bool


def test_mask_bits_are_uniform_in_both_halves_of_a_word():
    # both 31-bit integers of every 64-bit draw must be uniform: compare the even and odd elements' drop rates
    torch.manual_seed(2)
    keep, _ = keep_mask((1_000_000,), 0.5)
    tol = 4 * (0.25 / 500_000) ** 0.5
    assert (~keep[0::2]).float().mean().item() == pytest.approx(0.5, abs=tol)
    assert (~keep[1::2]).float().mean().item() == pytest.approx(0.5, abs=tol)


def test_seeded_and_identity_in_eval():
    x = torch.randn(1000)
    drop = Dropout(0.2)
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    b = drop(x)
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_gradient_is_the_mask():
    torch.manual_seed(4)
    x = torch.randn(500, requires_grad=True)
    y = Dropout(0.25)(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() != 0).float() / 0.75)


def test_invalid_probability():
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.0"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="got -0.1"):
        keep_mask((3,), -0.1)


def test_same_interface_as_nn_dropout():
    assert Dropout(0.1).state_dict() == nn.Dropout(0.1).state_dict() == {}
    assert "p=0.1" in repr(Dropout(0.1))
