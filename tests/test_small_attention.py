"""The compiled small-attention CPU kernel against PyTorch's attention, and its fallback."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hzg.learn.models import small_attention
from hzg.learn.models.etn import MultiHeadAttention

REPO = Path(__file__).resolve().parents[1]


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
        pytest.fail(
            "the small-attention kernel did not build although a C++ compiler is here (see the warning)"
        )
    return small_attention


def packed(batch: int, n_tokens: int, e: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(batch, n_tokens, 3 * e, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2


# batches that fill whole tiles of lanes, leave a partial last tile, or are smaller than one tile;
# 1 query (the ETN's class token) and several; head sizes 4 (the ETN's: compiled for it, with the
# transposition between events and lanes in the AVX builds), 5 (the object models' masked attention: compiled
# for it) and 8 (any other size)
CASES = [
    (64, 12, 12, 16, 4),
    (37, 13, 13, 16, 4),
    (3, 1, 13, 16, 4),
    (19, 1, 16, 16, 4),
    (21, 7, 9, 32, 4),
    (10, 12, 12, 16, 2),
    (29, 12, 8, 20, 4),
    (5, 1, 9, 20, 4),
]


@pytest.mark.parametrize("batch, tq, tk, e, heads", CASES)
def test_forward_and_gradients_equal_pytorch_attention(kernel, batch, tq, tk, e, heads):
    qkv = packed(batch, max(tq, tk), e, seed=batch)
    weights = torch.randn(batch, tq, e, generator=torch.Generator().manual_seed(1))
    results = []
    for attend in (kernel.attention, reference):
        x = qkv.clone().requires_grad_()
        q, k, v = (
            x[:, :tq, :e],
            x[:, :tk, e : 2 * e],
            x[:, :tk, 2 * e :],
        )  # strided slices, as the ETN passes them
        out = attend(q, k, v, heads)
        (out * weights).sum().backward()
        results.append((out.detach(), x.grad))
    (out, grad), (ref_out, ref_grad) = results
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)  # float32 rounding, scores of order 10
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)


def test_gradcheck_in_float64(kernel):
    qkv = packed(11, 5, 8, seed=3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: kernel.attention(x[..., :8], x[..., 8:16], x[..., 16:], 2), (qkv,)
    )


def test_large_scores_do_not_overflow(kernel):
    qkv = packed(9, 12, 16, seed=4) * 40  # scores of several thousand: softmax must subtract the maximum
    q, k, v = qkv.chunk(3, dim=-1)
    out = kernel.attention(q, k, v, 4)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference(q, k, v, 4), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_a_key_lowered_by_the_mask_bias_gets_a_weight_of_exactly_zero(kernel, dropout):
    """A key whose score is 1e5 below the others (etn_objects' mask) has weight 0, not exp(-87) / sum (a
    denormal, on which the CPU is 10-20x slower): its value, however large, adds nothing, it gets no
    gradient, and no output or gradient is a denormal."""
    batch, tq, tk, heads, dh = 24, 6, 8, 4, 5
    g = torch.Generator().manual_seed(8)
    q = torch.randn(batch, tq, heads, dh, generator=g)
    k = torch.randn(batch, tk, heads, dh, generator=g)
    v = torch.randn(batch, tk, heads, dh, generator=g)
    q[..., -1], k[..., -1], v[..., -1] = 1.0, 0.0, 0.0
    k[:, 5:, :, -1] = -1.0e5  # keys 5, 6, 7 masked
    v[:, 5:] = 1.0e30  # a masked value would leak 1e-8 through a weight of 1e-38
    q, k, v = (t.reshape(batch, -1, heads * dh).requires_grad_() for t in (q, k, v))
    torch.manual_seed(3)
    out = kernel.attention(q, k, v, heads, dropout)
    out.backward(torch.randn(out.shape, generator=g))
    assert torch.isfinite(out).all() and out.abs().max() < 100
    assert (k.grad.view(batch, tk, heads, dh)[:, 5:] == 0).all()
    assert (v.grad.view(batch, tk, heads, dh)[:, 5:] == 0).all()
    tiny = torch.finfo(torch.float32).tiny  # the smallest normal float
    for t in (out, q.grad, k.grad, v.grad):
        assert not ((t != 0) & (t.abs() < tiny)).any()
    if not dropout:  # the masked keys change nothing: the attention over the five others, bit for bit
        unmasked = [t.detach()[:, :5].contiguous() for t in (k, v)]
        assert torch.equal(out, kernel.attention(q.detach(), *unmasked, heads))


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
    # AVX-512: the GELU kernels' 16 lanes; the attention keeps its 8 (the same bits as the AVX2 build)
    assert "-mavx512f" in small_attention.build_flags("AVX512")[1]
    assert "-mavx512f" not in small_attention.build_flags("AVX2")[1]
    assert small_attention.build_flags("AVX512")[0] != small_attention.build_flags("AVX2")[0]
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


def test_not_used_off_float(kernel):
    assert not small_attention.usable(torch.zeros(2, 3, 4, dtype=torch.bfloat16))
    assert small_attention.usable(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, dtype=torch.float64))


# ---- dropout on the attention weights (nn.MultiheadAttention(dropout=p) in training) ----

P = 0.1
SEED = 0x5DEECE66D_2545F491  # 64 bits: both halves of the key matter


def reference_with_mask(q, k, v, heads, keep, p_drop):
    """PyTorch's reference attention (the math kernel behind scaled_dot_product_attention) with a given
    mask."""
    out, _ = torch.ops.aten._scaled_dot_product_attention_math(
        *(t.reshape(*t.shape[:2], heads, -1).transpose(1, 2) for t in (q, k, v)), None, p_drop, False, keep
    )
    return out.transpose(1, 2).reshape(q.shape)


def explicit_reference_with_mask(q, k, v, heads, keep, p_drop):
    """The same written out: softmax, then the mask and the 1 / (1 - p) scale on the weights, then the
    values."""
    qh, kh, vh = (t.reshape(*t.shape[:2], heads, -1).transpose(1, 2) for t in (q, k, v))
    weights = (qh @ kh.transpose(-1, -2) * qh.shape[-1] ** -0.5).softmax(-1)
    out = (weights * keep / (1 - p_drop)) @ vh
    return out.transpose(1, 2).reshape(q.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch, tq, tk, e, heads", CASES)
def test_dropout_forward_and_gradients_equal_pytorch_with_the_same_mask(
    kernel, batch, tq, tk, e, heads, dtype
):
    qkv = packed(batch, max(tq, tk), e, seed=batch, dtype=dtype)
    weights = torch.randn(batch, tq, e, generator=torch.Generator().manual_seed(1), dtype=dtype)
    keep, p_drop = small_attention.dropout_keep_mask(SEED, batch, heads, tq, tk, P)
    assert 0 < (~keep).sum() < keep.numel()  # some weights dropped, not all
    results = []
    for attend in (
        lambda q, k, v: kernel.attention(q, k, v, heads, dropout=P, seed=SEED),
        lambda q, k, v: reference_with_mask(q, k, v, heads, keep, p_drop),
        lambda q, k, v: explicit_reference_with_mask(q, k, v, heads, keep, p_drop),
    ):
        x = qkv.clone().requires_grad_()
        q, k, v = x[:, :tq, :e], x[:, :tk, e : 2 * e], x[:, :tk, 2 * e :]
        out = attend(q, k, v)
        (out * weights).sum().backward()
        results.append((out.detach(), x.grad))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for ref_out, ref_grad in results[1:]:
        torch.testing.assert_close(results[0][0], ref_out, **tol)
        torch.testing.assert_close(results[0][1], ref_grad, **tol)
    # and not the attention without dropout
    x = qkv[:, : max(tq, tk)]
    assert not torch.allclose(
        results[0][0], reference(x[:, :tq, :e], x[:, :tk, e : 2 * e], x[:, :tk, 2 * e :], heads)
    )


def test_dropout_gradcheck_in_float64(kernel):
    qkv = packed(11, 5, 8, seed=3, dtype=torch.float64).requires_grad_()
    for p in (0.1, 0.5):
        keep, _ = small_attention.dropout_keep_mask(SEED, 11, 2, 5, 5, p)
        assert 0 < (~keep).sum() < keep.numel()
        assert torch.autograd.gradcheck(
            lambda x: kernel.attention(x[..., :8], x[..., 8:16], x[..., 16:], 2, dropout=p, seed=SEED), (qkv,)
        )
    q = qkv[:, :1, :8].detach().clone().requires_grad_()  # one query (the class token)
    kv = qkv[:, :, 8:].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda q, kv: kernel.attention(q, kv[..., :8], kv[..., 8:], 2, dropout=0.3, seed=SEED + 1), (q, kv)
    )


def test_dropout_mask_is_seeded_by_torchs_generator(kernel):
    q, k, v = packed(50, 12, 16, seed=6).chunk(3, dim=-1)
    torch.manual_seed(11)
    a = kernel.attention(q, k, v, 4, dropout=P)
    after = torch.rand(1)
    torch.manual_seed(11)
    b = kernel.attention(q, k, v, 4, dropout=P)
    assert torch.equal(a, b) and torch.equal(torch.rand(1), after)  # same seed, same mask; one draw consumed
    torch.manual_seed(11)
    seed = small_attention.draw_seed()
    assert torch.equal(a, kernel.attention(q, k, v, 4, dropout=P, seed=seed))
    assert not torch.equal(a, kernel.attention(q, k, v, 4, dropout=P))  # the next draw: another mask
    state = torch.get_rng_state()  # a checkpoint's RNG state resumes the same masks
    c = kernel.attention(q, k, v, 4, dropout=P)
    torch.set_rng_state(state)
    assert torch.equal(c, kernel.attention(q, k, v, 4, dropout=P))


def test_dropout_result_does_not_depend_on_the_number_of_threads(kernel):
    x = packed(300, 12, 16, seed=5).requires_grad_()
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            x.grad = None
            out = kernel.attention(*x.chunk(3, dim=-1), 4, dropout=P, seed=SEED)
            out.square().sum().backward()
            results.append((out.detach(), x.grad.clone()))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_dropout_mask_rate_and_independence():
    batch, heads, tq, tk = 2000, 4, 12, 12
    keep, p_drop = small_attention.dropout_keep_mask(SEED, batch, heads, tq, tk, P)
    assert abs(p_drop - P) <= 2**-32
    dropped = (~keep).double()
    n = dropped.numel()
    assert dropped.mean().item() == pytest.approx(P, abs=4 * (P * (1 - P) / n) ** 0.5)
    # every position (head, query, key) and every lane of the kernel's 8-event tiles drops at rate p
    per_position = dropped.mean(dim=0)
    assert (per_position - P).abs().max() < 5 * (P * (1 - P) / batch) ** 0.5
    per_lane = dropped.reshape(-1, 8, heads * tq * tk).mean(dim=(0, 2))
    assert (per_lane - P).abs().max() < 5 * (P * (1 - P) / (n / 8)) ** 0.5
    # neighbouring weights and neighbouring events are uncorrelated
    flat = dropped.flatten() - P
    for lag in (1, 2, tk, heads * tq * tk):
        corr = (flat[:-lag] * flat[lag:]).mean().item() / (P * (1 - P))
        assert abs(corr) < 5 / n**0.5, lag
    # another seed (even one differing in one bit of either half) gives an independent mask
    for other in (SEED + 1, SEED ^ (1 << 40)):
        keep2, _ = small_attention.dropout_keep_mask(other, batch, heads, tq, tk, P)
        both = ((~keep) & (~keep2)).double().mean().item()
        assert both == pytest.approx(P * P, abs=5 * (P * P / n) ** 0.5)
    assert small_attention.dropout_threshold(0.0) == (0, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        small_attention.dropout_threshold(1.0)


def test_the_etn_attention_uses_the_kernel_with_dropout_in_training_only(kernel, monkeypatch):
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 4, dropout=P)
    t = torch.randn(20, 13, 16)
    calls = []
    real = small_attention.attention
    monkeypatch.setattr(small_attention, "attention", lambda *a, **kw: calls.append(a[4:]) or real(*a, **kw))
    with torch.no_grad():
        mha.train()
        torch.manual_seed(3)
        a, a_cls = mha(t), mha(t[:, :1], t)
        torch.manual_seed(3)
        b, b_cls = mha(t), mha(t[:, :1], t)
        assert torch.equal(a, b) and torch.equal(a_cls, b_cls) and not torch.equal(a, mha(t))
        mha.eval()
        c, c_cls = mha(t), mha(t[:, :1], t)
        assert torch.equal(c, mha(t)) and torch.equal(c_cls, mha(t[:, :1], t))
    assert calls[:5] == [(P,)] * 5 and calls[5:] == [(0.0,)] * 4
    # dropping weights is unbiased: averaged over many masks, training mode gives the eval-mode output
    mha.train()
    with torch.no_grad():
        mean = torch.stack([mha(t[:4]) for _ in range(4000)]).mean(0)
    torch.testing.assert_close(mean, c[:4], rtol=0, atol=0.02)


def test_the_fallback_drops_attention_weights_too(kernel, monkeypatch):
    mha = MultiHeadAttention(16, 4, dropout=0.5).train()
    t = torch.randn(6, 5, 16)
    monkeypatch.setenv(small_attention.ENV_SWITCH, "0")
    small_attention.extension.cache_clear()
    try:
        assert not small_attention.usable(t)
        with torch.no_grad():
            a, b = mha(t), mha(t)
            a_cls, b_cls = mha(t[:, :1], t), mha(t[:, :1], t)
    finally:
        monkeypatch.delenv(small_attention.ENV_SWITCH)
        small_attention.extension.cache_clear()
    assert not torch.equal(a, b) and not torch.equal(a_cls, b_cls)


def test_pip_ninja_is_put_on_path_when_none_is_there(monkeypatch):
    # a venv used without activation (.venv/bin/snakemake) has pip's ninja off PATH; torch's builder needs it
    # there
    ninja = pytest.importorskip("ninja")
    monkeypatch.setattr(small_attention.shutil, "which", lambda name: None)
    monkeypatch.setenv("PATH", "/nowhere")
    small_attention._put_ninja_on_path()
    assert small_attention.os.environ["PATH"].split(small_attention.os.pathsep)[0] == ninja.BIN_DIR
    assert (Path(ninja.BIN_DIR) / "ninja").exists()


def test_build_directory_is_named_by_source_flags_and_torch_not_by_checkout(tmp_path, monkeypatch):
    """Two checkouts (different paths, same kernel) share one build; another kernel version gets its own."""
    name, flags = small_attention.build_name("AVX2")
    other_checkout = tmp_path / "elsewhere" / "small_attention.cpp"
    other_checkout.parent.mkdir()
    other_checkout.write_bytes(small_attention.SOURCE.read_bytes())
    monkeypatch.setattr(small_attention, "SOURCE", other_checkout)
    assert small_attention.build_name("AVX2") == (name, flags)
    assert (
        small_attention._source_copy(tmp_path, name) == tmp_path / f"{name}.cpp"
    )  # the same path from any checkout
    assert small_attention.build_name("AVX2", b"// another version")[0] != name
    assert small_attention.build_name("DEFAULT")[0] != name
    monkeypatch.setattr(small_attention.torch, "__version__", "0.0.0")
    assert small_attention.build_name("AVX2")[0] != name


@pytest.mark.parametrize("change", ["compiler", "torch", "python"])
def test_each_environment_gets_its_own_build(monkeypatch, change):
    """What torch's builder writes into the build commands besides source and flags (compiler, torch's
    headers and libraries, Python's headers) names the build too: jobs in different environments (each
    rule's conda env) would otherwise rebuild one shared directory whenever they alternate."""
    name = small_attention.build_name("AVX2")[0]
    if change == "compiler":
        monkeypatch.setenv("CXX", "/opt/another/bin/g++")
    elif change == "torch":
        monkeypatch.setattr(small_attention.torch, "__file__", "/envs/fit/site-packages/torch/__init__.py")
    else:
        paths = {**small_attention.sysconfig.get_paths(), "include": "/envs/fit/include/python3.11"}
        monkeypatch.setattr(small_attention.sysconfig, "get_paths", lambda: paths)
    assert small_attention.build_name("AVX2")[0] != name


LOAD = """
import sys, torch
sys.path.insert(0, {src!r})
from hzg.learn.models import small_attention as s
assert s.extension() is not None, "kernel not built"
print(s.build_name(torch.backends.cpu.get_cpu_capability())[0])
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("c++") is None, reason="needs c++ and g++")
def test_jobs_of_two_environments_do_not_rebuild_each_others_kernel(kernel, tmp_path):
    """Two environments, here two compiler commands (ninja rebuilds when a command changes, as it does
    between conda envs whose torch lies elsewhere), each build once, into their own directories: loading the
    kernel in one leaves the other's library as it was, and the first loads its own again without a build
    (built twice here, about 30 s)."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}

    def load(cxx: str) -> tuple[str, Path]:
        run = subprocess.run(
            [sys.executable, "-c", LOAD.format(src=str(REPO / "src"))],
            env={**env, "CXX": cxx},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        name = run.stdout.split()[-1]
        return name, next(tmp_path.rglob(f"{name}.so"))

    name_a, library_a = load("c++")
    built_a = library_a.stat().st_mtime_ns
    name_b, library_b = load("g++")
    assert name_b != name_a and library_b != library_a
    assert library_a.stat().st_mtime_ns == built_a
    assert load("c++") == (name_a, library_a) and library_a.stat().st_mtime_ns == built_a


HOLDER = """
import sys, time
sys.path.insert(0, {src!r})
from pathlib import Path
from hzg.learn.models import small_attention
with small_attention.build_lock(Path({build!r}), wait_s=5):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold_lock_in_a_subprocess(build):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(src=str(REPO / "src"), build=str(build))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_build_lock_held_by_a_live_job_is_waited_on_for_a_bounded_time_then_freed_by_its_death(tmp_path):
    build = tmp_path / "hzg_small_attention_x"
    proc = _hold_lock_in_a_subprocess(build)
    try:
        start = time.monotonic()
        with pytest.raises(small_attention.BuildLockTimeout, match="for more than 0 s"):
            with small_attention.build_lock(build, wait_s=0.4, poll_s=0.05):
                pass
        assert time.monotonic() - start >= 0.35  # it waited, and not forever
    finally:
        proc.send_signal(signal.SIGKILL)  # a job killed mid-build (even after a build longer than 10 minutes)
        proc.wait()
    start = time.monotonic()
    with small_attention.build_lock(build, wait_s=5, poll_s=0.05):
        assert time.monotonic() - start < 1.0  # the dead holder's lock went with it


def test_torch_lock_left_by_a_killed_build_is_removed_by_the_lock_holder(tmp_path, caplog):
    build = tmp_path / "hzg_small_attention_x"
    build.mkdir()
    (
        build / "lock"
    ).touch()  # torch's FileBaton of a job killed while building: torch would wait on it forever
    with small_attention.build_lock(build, wait_s=1):
        assert not (build / "lock").exists()
    assert "left by a build that was killed" in caplog.text


def test_kernel_falls_back_to_pytorch_when_another_build_holds_the_lock_too_long(
    tmp_path, monkeypatch, caplog
):
    from torch.utils.cpp_extension import _get_build_directory

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv(small_attention.WAIT_ENV, "0.3")
    name, _ = small_attention.build_name(torch.backends.cpu.get_cpu_capability())
    proc = _hold_lock_in_a_subprocess(Path(_get_build_directory(name, verbose=False)))
    small_attention.extension.cache_clear()
    try:
        assert small_attention.extension() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        small_attention.extension.cache_clear()
    assert "BuildLockTimeout" in caplog.text and "using PyTorch's attention instead" in caplog.text


def build_variant(capability: str, folder: Path):
    """The kernel library as `build_flags` makes it for another CPU capability, built into `folder`."""
    from torch.utils.cpp_extension import load

    name, flags = small_attention.build_name(capability)
    small_attention._put_ninja_on_path()
    load(
        name=name,
        sources=[str(small_attention.SOURCE)],
        extra_cflags=flags,
        build_directory=str(folder),
        verbose=False,
        is_python_module=False,
    )
    return getattr(torch.ops, name)


@pytest.fixture(scope="module")
def baseline_build(tmp_path_factory):
    return build_variant("DEFAULT", tmp_path_factory.mktemp("baseline"))


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the x86-64 baseline build")
@pytest.mark.parametrize("e", [16, 20, 32])  # head sizes 4 and 5 (compiled for), 8 (any)
def test_the_baseline_build_without_avx_computes_the_attention_of_this_build(kernel, baseline_build, e):
    """On a CPU without AVX2 the library is built for the x86-64 baseline (4 lanes, no AVX: no transposition
    in registers, no fused multiply-add): it must build, and give this build's attention, with dropout, to
    float rounding (built once, about 12 s)."""
    base = baseline_build
    native = kernel.extension()
    assert native is not base
    threshold = small_attention.dropout_threshold(0.1)[0]
    for tq, tk in ((12, 12), (1, 13)):
        qkv = packed(37, max(tq, tk), e, seed=tq)
        q, k, v = qkv[:, :tq, :e], qkv[:, :tk, e : 2 * e], qkv[:, :tk, 2 * e :]
        outputs = []
        for ops in (native, base):
            out, probs = ops.forward(q, k, v, 4, True, 1234, threshold)
            grads = ops.backward(torch.ones_like(out), q, k, v, probs, 4, threshold)
            outputs.append([out, *grads])
        for a, b in zip(*outputs):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # as against PyTorch, above


@pytest.mark.slow
@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() != "AVX512",
    reason="the AVX-512 build is made on AVX-512 CPUs only",
)
def test_the_avx512_build_computes_the_attention_of_the_avx2_build_bit_for_bit(kernel, tmp_path):
    """On an AVX-512 CPU the library is built with -mavx512f (the GELU kernels' 16 lanes); the attention
    keeps its 8 lanes and must give the AVX2 build's outputs and gradients, with dropout, to the last bit
    (built here into a temporary folder, about 12 s)."""
    avx2 = build_variant("AVX2", tmp_path)
    native = kernel.extension()
    assert native is not avx2
    qkv = packed(37, 12, 16, seed=5)
    q, k, v = qkv.chunk(3, dim=-1)
    threshold = small_attention.dropout_threshold(0.1)[0]
    outputs = []
    for ops in (native, avx2):
        out, probs = ops.forward(q, k, v, 4, True, 1234, threshold)
        grads = ops.backward(torch.ones_like(out), q, k, v, probs, 4, threshold)
        outputs.append([out, probs, *grads])
    for a, b in zip(*outputs):
        assert torch.equal(a, b)
