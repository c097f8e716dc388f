"""The compiled small-attention CPU kernel against PyTorch's attention, and its fallback."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hzg.models import small_attention
from hzg.models.etn import MultiHeadAttention


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    def split(t):
        b, n, e = t.shape
        return t.reshape(b, n, heads, e // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(q.shape)


@pytest.fixture(scope="module")
def kernel():
    if small_attention.extension() is None:
        if shutil.which("c++") is None and shutil.which("g++") is None:
            pytest.skip("no C++ compiler here: the ETN uses PyTorch's attention (the fallback is tested)")
        pytest.fail("the small-attention kernel did not build although a C++ compiler is here (see the warning)")
    return small_attention


def packed(batch: int, n_tokens: int, e: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(batch, n_tokens, 3 * e, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2


# batches that fill whole tiles of lanes, leave a partial last tile, or are smaller than one tile;
# 1 query (the ETN's class token) and several; head sizes 4 (the ETN's) and 8
CASES = [(64, 12, 12, 16, 4), (37, 13, 13, 16, 4), (3, 1, 13, 16, 4), (19, 1, 16, 16, 4), (21, 7, 9, 32, 4),
         (10, 12, 12, 16, 2)]


@pytest.mark.parametrize("batch, tq, tk, e, heads", CASES)
def test_forward_and_gradients_equal_pytorch_attention(kernel, batch, tq, tk, e, heads):
    qkv = packed(batch, max(tq, tk), e, seed=batch)
    weights = torch.randn(batch, tq, e, generator=torch.Generator().manual_seed(1))
    results = []
    for attend in (kernel.attention, reference):
        x = qkv.clone().requires_grad_()
        q, k, v = x[:, :tq, :e], x[:, :tk, e:2 * e], x[:, :tk, 2 * e:]  # strided slices, as the ETN passes them
        out = attend(q, k, v, heads)
        (out * weights).sum().backward()
        results.append((out.detach(), x.grad))
    (out, grad), (ref_out, ref_grad) = results
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)  # float32 rounding, scores of order 10
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)


def test_gradcheck_in_float64(kernel):
    qkv = packed(11, 5, 8, seed=3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: kernel.attention(x[..., :8], x[..., 8:16], x[..., 16:], 2), (qkv,))


def test_large_scores_do_not_overflow(kernel):
    qkv = packed(9, 12, 16, seed=4) * 40  # scores of several thousand: softmax must subtract the maximum
    q, k, v = qkv.chunk(3, dim=-1)
    out = kernel.attention(q, k, v, 4)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference(q, k, v, 4), rtol=1e-4, atol=1e-4)


def test_result_does_not_depend_on_the_number_of_threads(kernel):
    q, k, v = packed(300, 12, 16, seed=5).chunk(3, dim=-1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernel.attention(q, k, v, 4)
        torch.set_num_threads(2)
        two = kernel.attention(q, k, v, 4)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_bad_shapes_are_refused(kernel):
    q = torch.randn(4, 3, 16)
    with pytest.raises(ValueError, match="not divisible by 3 heads"):
        kernel.attention(q, q, q, 3)
    with pytest.raises(RuntimeError, match="k and v have different numbers of tokens"):
        kernel.attention(q, q, torch.randn(4, 5, 16), 4)


def test_build_flags_follow_the_cpu():
    assert "-mavx2" in small_attention.build_flags("AVX2")[1]
    assert "-mavx2" in small_attention.build_flags("AVX512")[1]
    name, flags = small_attention.build_flags("DEFAULT")
    assert "-mavx2" not in flags and name != small_attention.build_flags("AVX2")[0]


def test_switched_off_the_etn_attention_falls_back_to_pytorch(kernel, monkeypatch):
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 4).eval()
    t = torch.randn(20, 13, 16)
    with torch.no_grad():
        fast, fast_cls = mha(t), mha(t[:, :1], t)
        monkeypatch.setenv(small_attention.ENV_SWITCH, "0")
        small_attention.extension.cache_clear()
        try:
            assert not small_attention.usable(t)
            slow, slow_cls = mha(t), mha(t[:, :1], t)
        finally:
            monkeypatch.delenv(small_attention.ENV_SWITCH)
            small_attention.extension.cache_clear()
    assert small_attention.usable(t)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_cls, slow_cls, rtol=1e-5, atol=1e-6)


def test_not_used_off_float_or_with_attention_dropout(kernel):
    assert not small_attention.usable(torch.zeros(2, 3, 4, dtype=torch.bfloat16))
    mha = MultiHeadAttention(16, 4, dropout=0.5).train()
    torch.manual_seed(0)
    t = torch.randn(6, 5, 16)
    a, b = mha(t), mha(t)
    assert not torch.equal(a, b)  # attention-weight dropout happened, so PyTorch's kernel ran


def test_pip_ninja_is_put_on_path_when_none_is_there(monkeypatch):
    # a venv used without activation (.venv/bin/snakemake) has pip's ninja off PATH; torch's builder needs it there
    ninja = pytest.importorskip("ninja")
    monkeypatch.setattr(small_attention.shutil, "which", lambda name: None)
    monkeypatch.setenv("PATH", "/nowhere")
    small_attention._put_ninja_on_path()
    assert small_attention.os.environ["PATH"].split(small_attention.os.pathsep)[0] == ninja.BIN_DIR
    assert (Path(ninja.BIN_DIR) / "ninja").exists()


def test_a_build_lock_is_waited_on_then_removed_once_stale(tmp_path):
    lock = tmp_path / "lock"
    assert not small_attention.clear_build_lock(tmp_path)  # nothing there: no wait
    lock.touch()
    start = small_attention.time.time()
    assert small_attention.clear_build_lock(tmp_path, max_age_s=0.3, poll_s=0.05) and not lock.exists()
    assert small_attention.time.time() - start >= 0.25  # it waited for the lock to go stale
    lock.touch()
    old = lock.stat().st_mtime - small_attention.STALE_LOCK_SECONDS - 5
    small_attention.os.utime(lock, (old, old))
    assert small_attention.clear_build_lock(tmp_path) and not lock.exists()  # stale: removed at once
