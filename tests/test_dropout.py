"""The CPU dropout with a 31-bit integer mask (hzg.learn.models.dropout)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hzg.learn.models import small_attention
from hzg.learn.models.dropout import Dropout, hashed_dropout, hashed_keep_mask, keep_mask


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


needs_kernel = pytest.mark.skipif(
    small_attention.extension() is None, reason="the project's CPU kernel library is not built here"
)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (33, 13, 16), (5, 3)])
def test_kernel_dropout_is_the_hashed_keep_mask(shape, dtype):
    """Forward: x where the keyed hash of the element's row-major index keeps it, times 1 / (1 - p); backward:
    the same mask on the gradient (the same seed, nothing stored)."""
    torch.manual_seed(10)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    grad = torch.randn(shape, dtype=dtype)
    seed = -(2**62) + 12345  # a negative signed seed, as the kernel takes it
    y = hashed_dropout(x, 0.3, seed)
    y.backward(grad)
    keep, p_drop = hashed_keep_mask(seed, shape, 0.3)
    scale = torch.tensor(1.0 / (1.0 - p_drop), dtype=torch.float64).to(dtype)
    assert torch.equal(y.detach(), torch.where(keep, x.detach() * scale, torch.zeros((), dtype=dtype)))
    assert torch.equal(x.grad, torch.where(keep, grad * scale, torch.zeros((), dtype=dtype)))


@needs_kernel
def test_kernel_dropout_of_a_strided_tensor_masks_its_logical_layout():
    torch.manual_seed(11)
    x = torch.randn(16, 40).t()
    assert torch.equal(hashed_dropout(x, 0.5, 99), hashed_dropout(x.contiguous(), 0.5, 99))


@needs_kernel
def test_module_takes_the_kernel_with_one_seed_from_torchs_generator():
    x = torch.randn(64, 12, 16)
    torch.manual_seed(12)
    y = Dropout(0.1).train()(x)
    torch.manual_seed(12)
    seed = small_attention.draw_seed()
    assert torch.equal(y, hashed_dropout(x, 0.1, seed))
    assert not torch.equal(Dropout(0.1).train()(x), y)  # the next call draws another seed


def test_without_the_kernel_the_mask_comes_from_torchs_generator(monkeypatch):
    monkeypatch.setattr(small_attention, "extension", lambda: None)
    x = torch.ones(100_000)
    torch.manual_seed(13)
    y = Dropout(0.2).train()(x)
    torch.manual_seed(13)
    keep, p_drop = keep_mask(x.shape, 0.2)
    assert torch.equal(y, x * keep.float() * (1.0 / (1.0 - p_drop)))
