"""The attention models' feed-forward network: the fused oneDNN path when scoring against the plain layers."""

import contextlib
import copy

import pytest
import torch
from torch import nn

from hzg.learn.models import build_model, fused as feed_forward, small_attention
from hzg.learn.models.fused import FeedForward

needs_fused = pytest.mark.skipif(
    feed_forward._FUSED is None or not torch.backends.mkldnn.is_available(),
    reason="this PyTorch has no oneDNN linear + pointwise kernel",
)


needs_kernel = pytest.mark.skipif(
    small_attention.extension() is None, reason="the kernel library is not built (no compiler)"
)


def _plain(ffn: FeedForward, x: torch.Tensor) -> torch.Tensor:
    return ffn[2](ffn[1](ffn[0](x)))


def test_feed_forward_is_the_sequential_it_replaces():
    """Same modules, parameter names and initial values as nn.Sequential(Linear, GELU, Linear): checkpoints of
    either load into the other."""
    torch.manual_seed(3)
    ffn = FeedForward(16, 64, 16)
    torch.manual_seed(3)
    seq = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 16))
    assert list(ffn.state_dict()) == list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(torch.equal(a, b) for a, b in zip(ffn.state_dict().values(), seq.state_dict().values()))
    assert ffn[1].approximate == "none"  # GELU with erf, as the fused kernel's "gelu" / "none"
    x = torch.randn(5, 12, 16)
    with feed_forward.disabled():
        torch.testing.assert_close(ffn(x), seq(x), rtol=0, atol=0)  # the plain layers, bit for bit
    torch.testing.assert_close(ffn(x), seq(x), rtol=1e-6, atol=1e-6)  # training: the kernel library's GELU


@needs_fused
@pytest.mark.parametrize("shape", [(3, 16), (257, 12, 16), (1, 1, 16)])
def test_scoring_takes_the_fused_kernel_with_the_plain_numbers(shape, monkeypatch):
    torch.manual_seed(0)
    ffn = FeedForward(16, 64, 16).eval()
    x = torch.randn(shape)
    calls = []
    real = feed_forward._FUSED
    monkeypatch.setattr(feed_forward, "_FUSED", lambda *a: calls.append(a[3]) or real(*a))
    with torch.no_grad():
        fused = ffn(x)
        plain = _plain(ffn, x)
    assert calls == ["gelu", "none"]  # both layers in oneDNN, the GELU in the first's epilogue
    assert fused.shape == plain.shape
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)


@needs_fused
def test_fusable_only_without_an_autograd_graph_on_dense_float32_cpu_tensors():
    ffn = FeedForward(4, 8, 4)
    layers = (ffn[0], ffn[2])
    x = torch.randn(10, 4)
    assert not feed_forward.fusable(x, *layers)  # parameters require grad: training
    with torch.no_grad():
        assert feed_forward.fusable(x, *layers)
        assert not feed_forward.fusable(x.double(), *layers)
        assert not feed_forward.fusable(torch.randn(4, 10).t(), *layers)  # not contiguous
        assert not feed_forward.fusable(x[:0], *layers)  # no events
        assert not feed_forward.fusable(x.to("meta"), *layers)
    with torch.inference_mode():
        assert feed_forward.fusable(x, *layers)
    ffn.requires_grad_(False)
    assert feed_forward.fusable(x, *layers)  # a frozen model, no input gradient: nothing to record
    assert not feed_forward.fusable(x.requires_grad_(), *layers)


def test_without_the_kernel_or_inside_vmap_the_plain_layers_score(monkeypatch):
    torch.manual_seed(1)
    ffn = FeedForward(16, 32, 16).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        expected = _plain(ffn, x)
        batched = torch.func.vmap(ffn)(x)  # a batched tensor: no fused kernel for it
        monkeypatch.setattr(feed_forward, "_FUSED", None)
        assert not feed_forward.fusable(x, ffn[0], ffn[2])
        unfused = ffn(x)
    torch.testing.assert_close(batched, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(unfused, expected, rtol=0, atol=0)


@needs_fused
@pytest.mark.parametrize("name, n_features", [("etn", 12), ("etn_objects", 12 + 8 * 5)])
def test_models_score_the_same_with_and_without_the_fused_kernel(name, n_features, monkeypatch):
    torch.manual_seed(2)
    kwargs = {"n_objects": 8} if name == "etn_objects" else {}
    model = build_model(name, n_features, **kwargs).eval()
    x = torch.randn(300, n_features)
    if name == "etn_objects":  # object types: padding (0) or an object (1-4), as the object block holds them
        x.view(300, -1)[:, 12 + 4 :: 5] = torch.randint(0, 5, (300, 8)).float()
    with torch.no_grad():
        fused = model(x)
        monkeypatch.setattr(feed_forward, "_FUSED", None)
        plain = model(x)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)


@needs_fused
def test_linear_scores_through_the_kernel_and_trains_through_f_linear(monkeypatch):
    torch.manual_seed(4)
    layer = nn.Linear(16, 48)
    x = torch.randn(64, 12, 16)
    calls = []
    real = feed_forward._FUSED
    monkeypatch.setattr(feed_forward, "_FUSED", lambda *a: calls.append(a[3]) or real(*a))
    out = feed_forward.linear(x, layer.weight, layer.bias)  # an autograd graph: F.linear
    assert calls == [] and out.requires_grad
    with torch.no_grad():
        scored = feed_forward.linear(x, layer.weight, layer.bias)
        sliced = feed_forward.linear(x, layer.weight[16:], layer.bias[16:])  # rows of a packed projection
    assert calls == ["none", "none"]
    torch.testing.assert_close(scored, out.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sliced, out.detach()[..., 16:], rtol=1e-6, atol=1e-6)


def test_disabled_scores_through_the_plain_layers_inside_the_block_only():
    ffn = FeedForward(4, 8, 4).eval()
    x = torch.randn(6, 4)
    with torch.no_grad():
        usable = feed_forward.fusable(x, ffn[0], ffn[2])
        with feed_forward.disabled():
            assert not feed_forward.fusable(x, ffn[0], ffn[2])
            with feed_forward.disabled():
                pass
            assert not feed_forward.fusable(x, ffn[0], ffn[2])  # nested: still off
        assert feed_forward.fusable(x, ffn[0], ffn[2]) == usable


needs_kernel = pytest.mark.skipif(
    small_attention.extension() is None, reason="the project's CPU kernel library is not built here"
)


def _norm_pair(width: int = 16) -> tuple[feed_forward.LayerNorm, nn.LayerNorm]:
    """The project's layer norm and nn.LayerNorm with the same weight and bias, far from 1 and 0."""
    fused_norm, plain_norm = feed_forward.LayerNorm(width), nn.LayerNorm(width)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        plain_norm.weight.copy_(torch.randn(width, generator=gen) * 3)
        plain_norm.bias.copy_(torch.randn(width, generator=gen))
    fused_norm.load_state_dict(plain_norm.state_dict())
    return fused_norm, plain_norm


def _trained(norm: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    """Output and the gradients of x, weight and bias for the output gradient `grad`."""
    x = x.detach().clone().requires_grad_()
    norm.zero_grad(set_to_none=True)
    out = norm(x)
    out.backward(grad)
    return [out.detach(), x.grad, norm.weight.grad, norm.bias.grad]


def test_layer_norm_is_the_module_it_replaces():
    """Same parameters, names and initial values as nn.LayerNorm."""
    fused_norm, plain_norm = feed_forward.LayerNorm(16), nn.LayerNorm(16)
    assert list(fused_norm.state_dict()) == list(plain_norm.state_dict()) == ["weight", "bias"]
    assert all(torch.equal(a, b) for a, b in zip(fused_norm.parameters(), plain_norm.parameters()))


@needs_kernel
@pytest.mark.parametrize("shape", [(3, 16), (4096, 13, 16), (7, 1, 16), (600, 10), (9, 2, 64)])
def test_layer_norm_trains_through_the_kernel_to_float_rounding(shape):
    """With an autograd graph: the kernel's forward and backward passes (one autograd node), output and the
    gradients of input, weight and bias as close to the float64 layer norm as PyTorch's float32 ones."""
    fused_norm, plain_norm = _norm_pair(shape[-1])
    torch.manual_seed(6)
    x = torch.randn(shape) * 4 + torch.randn(shape[:-1] + (1,)) * 20
    grad = torch.randn(shape)
    assert type(fused_norm(x.requires_grad_()).grad_fn).__name__ == "_LayerNormBackward"
    kernel = _trained(fused_norm, x, grad)
    pytorch = _trained(plain_norm, x, grad)
    exact = _trained(plain_norm.double(), x.double(), grad.double())
    for name, k, p, e in zip(("output", "dx", "dweight", "dbias"), kernel, pytorch, exact):
        assert k.dtype == torch.float32 and k.shape == e.shape, name
        eps32 = torch.finfo(torch.float32).eps * float(e.abs().max())
        kernel_error, pytorch_error = (float((t.double() - e).abs().max()) for t in (k, p))
        assert kernel_error < 2 * pytorch_error + 4 * eps32, name


@needs_kernel
def test_layer_norm_training_gradients_do_not_depend_on_the_number_of_threads():
    """The weight and bias gradients are summed per fixed block of rows, then over the blocks in order."""
    fused_norm, _ = _norm_pair()
    torch.manual_seed(8)
    x, grad = torch.randn(5000, 13, 16), torch.randn(5000, 13, 16)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(_trained(fused_norm, x, grad))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


@needs_kernel
def test_layer_norm_training_kernel_passes_gradcheck_in_float64():
    norm, _ = _norm_pair(16)
    norm.double()
    x = torch.randn(6, 3, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,))
    assert type(norm(x).grad_fn).__name__ == "_LayerNormBackward"


def test_layer_norm_trains_through_pytorch_without_the_kernel(monkeypatch):
    """`disabled()` and without the kernel: PyTorch's layer norm in training, bit for bit."""
    fused_norm, plain_norm = _norm_pair()
    torch.manual_seed(9)
    x, grad = torch.randn(40, 12, 16), torch.randn(40, 12, 16)
    expected = _trained(plain_norm, x, grad)
    with feed_forward.disabled():
        assert all(torch.equal(a, b) for a, b in zip(_trained(fused_norm, x, grad), expected))
    monkeypatch.setattr(small_attention, "extension", lambda: None)
    assert all(torch.equal(a, b) for a, b in zip(_trained(fused_norm, x, grad), expected))


@needs_kernel
@pytest.mark.parametrize("shape", [(3, 16), (4096, 13, 16), (7, 1, 16), (50, 10), (9, 2, 64)])
def test_layer_norm_scores_through_the_kernel_to_float_rounding(shape, kernel_calls):
    """16-wide tokens (the attention models') and other widths (the kernel's generic loop), with a scale
    and offset far from 1 and 0 and large token means."""
    torch.manual_seed(6)
    norm = feed_forward.LayerNorm(shape[-1], eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(shape[-1]) * 3)
        norm.bias.copy_(torch.randn(shape[-1]))
    x = torch.randn(shape) * 4 + torch.randn(shape[:-1] + (1,)) * 20
    calls = kernel_calls("layer_norm")
    with torch.no_grad():
        scored = norm(x)
        expected = nn.functional.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        exact = nn.functional.layer_norm(
            x.double(), norm.normalized_shape, norm.weight.double(), norm.bias.double(), norm.eps
        )
    assert calls == [x.shape]
    assert scored.shape == expected.shape and scored.dtype == torch.float32
    # float32 rounding, mostly of the token's centring (a mean of 20 against a spread of 4 here): as large as
    # PyTorch's own, measured against the float64 layer norm
    eps32 = torch.finfo(torch.float32).eps * float(exact.abs().max())
    kernel_error = float((scored.double() - exact).abs().max())
    pytorch_error = float((expected.double() - exact).abs().max())
    assert kernel_error < 2 * pytorch_error + 2 * eps32


def test_layer_norm_falls_back_to_pytorch(monkeypatch):
    """float64, a non-contiguous input, a multi-dimensional normalised shape, `disabled()`, inside vmap and
    without the kernel: PyTorch's layer norm, bit for bit."""
    torch.manual_seed(7)
    norm = feed_forward.LayerNorm(16).eval()
    x = torch.randn(20, 5, 16)

    def plain(t, module=norm):
        return nn.functional.layer_norm(t, module.normalized_shape, module.weight, module.bias, module.eps)

    with torch.no_grad():
        double = feed_forward.LayerNorm(16).double()
        assert torch.equal(double(x.double()), plain(x.double(), double))
        strided = torch.randn(16, 20).t()
        assert torch.equal(norm(strided), plain(strided))
        wide = feed_forward.LayerNorm((5, 16))
        assert torch.equal(wide(x), plain(x, wide))
        with feed_forward.disabled():
            assert torch.equal(norm(x), plain(x))
        assert torch.equal(torch.func.vmap(norm)(x), torch.func.vmap(plain)(x))
        monkeypatch.setattr(small_attention, "extension", lambda: None)
        assert torch.equal(norm(x), plain(x))


def _graph_nodes(out: torch.Tensor) -> set[str]:
    """Names of the autograd nodes that `out` was computed through."""
    names, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            todo.extend(n for n, _ in node.next_functions)
    return names


@pytest.mark.parametrize("chunk", [7, 4096])
@pytest.mark.parametrize("shape", [(3, 16), (40, 12, 16), (5, 1, 16)])
def test_feed_forward_trains_over_chunks_with_the_plain_gradients(shape, chunk, monkeypatch):
    """In training on a CPU the chunked forward/backward (one autograd node), with chunk edges inside the
    input: output and every gradient as close to the float64 layers as PyTorch's float32 ones."""
    monkeypatch.setattr(feed_forward, "FFN_CHUNK_ROWS", chunk)
    torch.manual_seed(12)
    ffn = FeedForward(16, 64, 16)
    x, grad = torch.randn(shape) * 2, torch.randn(shape[:-1] + (16,))

    def trained(module: nn.Module, inputs: torch.Tensor, plain: bool = False) -> list[torch.Tensor]:
        inputs = inputs.detach().clone().requires_grad_()
        module.zero_grad(set_to_none=True)
        out = _plain(module, inputs) if plain else module(inputs)
        out.backward(grad.to(inputs.dtype))
        return [out.detach(), inputs.grad, *(p.grad for p in module.parameters())]

    assert "_ChunkedFeedForwardBackward" in _graph_nodes(ffn(x.requires_grad_()))
    chunked, pytorch = trained(ffn, x), trained(ffn, x, plain=True)
    exact = trained(copy.deepcopy(ffn).double(), x.double(), plain=True)
    for k, p, e in zip(chunked, pytorch, exact):
        assert k.shape == e.shape and k.dtype == torch.float32
        eps32 = torch.finfo(torch.float32).eps * float(e.abs().max())
        assert float((k.double() - e).abs().max()) < 2 * float((p.double() - e).abs().max()) + 8 * eps32


def test_chunked_feed_forward_passes_gradcheck_in_float64(monkeypatch):
    monkeypatch.setattr(feed_forward, "FFN_CHUNK_ROWS", 4)
    ffn = FeedForward(3, 5, 2).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert "_ChunkedFeedForwardBackward" in _graph_nodes(ffn(x))
    assert torch.autograd.gradcheck(ffn, (x,))


def test_feed_forward_trains_through_the_plain_layers_where_it_cannot_chunk():
    """`disabled()`, another activation than GELU with erf, and inside vmap: the plain layers, bit for bit."""
    torch.manual_seed(13)
    ffn = FeedForward(16, 64, 16)
    x = torch.randn(10, 12, 16, requires_grad=True)
    with feed_forward.disabled():
        assert torch.equal(ffn(x), _plain(ffn, x))
        assert "_ChunkedFeedForwardBackward" not in _graph_nodes(ffn(x))
    tanh = FeedForward(16, 64, 16)
    tanh[1] = nn.GELU(approximate="tanh")
    assert torch.equal(tanh(x), _plain(tanh, x))
    batched = torch.func.vmap(ffn)(x)
    assert torch.allclose(batched, _plain(ffn, x), atol=1e-6)


def test_training_linear_is_f_linear_bit_for_bit():
    """In training on a CPU the product, then the bias added in place (PyTorch's addmm copies the bias into
    every row first, a pass that scales badly over threads): F.linear's values and gradients, bit for bit."""
    torch.manual_seed(21)
    layer = nn.Linear(16, 48)
    x = torch.randn(300, 12, 16)
    grad = torch.randn(300, 12, 48)
    results = []
    for f in (feed_forward.linear, torch.nn.functional.linear):
        inputs = x.clone().requires_grad_()
        layer.zero_grad(set_to_none=True)
        out = f(inputs, layer.weight, layer.bias)
        out.backward(grad)
        results.append([out.detach(), inputs.grad, layer.weight.grad, layer.bias.grad])
    assert "AddBackward0" in _graph_nodes(feed_forward.linear(x.requires_grad_(), layer.weight, layer.bias))
    for ours, theirs in zip(*results):
        assert torch.equal(ours, theirs)


def _gelu_reference(z: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.double()
    return torch.nn.functional.gelu(z), torch.ops.aten.gelu_backward(grad.double(), z)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gelu_bias_kernels_are_the_exact_gelu(dtype):
    """gelu_bias_ and gelu_bias_backward_ (in place): gelu(h + b) and grad gelu'(h + b) as close to float64 as
    PyTorch's own float32 GELU; float64 to rounding; the bias gradient the column sums."""
    kernel = small_attention.extension()
    torch.manual_seed(22)
    h, b, grad = (
        torch.randn(1500, 64, dtype=dtype) * 3,
        torch.randn(64, dtype=dtype),
        torch.randn(1500, 64, dtype=dtype),
    )
    value, derivative = _gelu_reference(h + b, grad)
    tol = (
        1e-12
        if dtype == torch.float64
        else 2 * float((torch.nn.functional.gelu(h + b).double() - value).abs().max())
    )
    forward = h.clone()
    assert kernel.gelu_bias_(forward, b).data_ptr() == forward.data_ptr()  # in place
    hidden, dpre = h.clone(), grad.clone()
    dbias = kernel.gelu_bias_backward_(hidden, b, dpre)
    assert float((forward.double() - value).abs().max()) <= tol
    assert float((hidden.double() - value).abs().max()) <= tol
    assert float((dpre.double() - derivative).abs().max()) <= max(tol, 1e-12)
    torch.testing.assert_close(
        dbias.double(), derivative.sum(0), rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-4
    )


@needs_kernel
def test_gelu_bias_gradient_does_not_depend_on_the_number_of_threads():
    kernel = small_attention.extension()
    torch.manual_seed(23)
    h, b, grad = torch.randn(5000, 64), torch.randn(64), torch.randn(5000, 64)
    before = torch.get_num_threads()
    sums = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sums.append(kernel.gelu_bias_backward_(h.clone(), b, grad.clone()))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(sums[0], sums[1])


@needs_kernel
def test_gelu_kernels_refuse_what_they_cannot_compute():
    kernel = small_attention.extension()
    with pytest.raises(RuntimeError, match="multiple of 16"):
        kernel.gelu_bias_(torch.randn(4, 12), torch.randn(12))
    with pytest.raises(RuntimeError, match="bias must be"):
        kernel.gelu_bias_(torch.randn(4, 16), torch.randn(8))
    with pytest.raises(RuntimeError, match="grad must be"):
        kernel.gelu_bias_backward_(torch.randn(4, 16), torch.randn(16), torch.randn(5, 16))
    with pytest.raises(RuntimeError, match="bias must be"):
        kernel.gelu_tokens(torch.randn(3, 4, 16), torch.randn(2, 16))


@needs_kernel
def test_feed_forward_trains_through_the_gelu_kernel_where_its_width_allows(monkeypatch):
    """Hidden width 64: the chunked network's GELU in the kernel library (float64: gradcheck); a width the
    kernel's registers do not divide: PyTorch's GELU, the plain numbers bit for bit in one chunk, at one
    and at two threads. Over several chunks the values agree to float rounding, not bit for bit: the BLAS
    may take another kernel for a short chunk (MKL on an AVX2 CPU at one thread rounds a 2-row product
    differently from the same rows of a 7-row one; measured on an AMD EPYC, not on the AVX-512 Xeons)."""
    monkeypatch.setattr(feed_forward, "FFN_CHUNK_ROWS", 5)
    ffn = FeedForward(3, 16, 2).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    assert feed_forward._gelu_kernel(16, ffn[0].weight) is not None
    assert torch.autograd.gradcheck(ffn, (x,))
    odd = FeedForward(16, 24, 16)
    assert feed_forward._gelu_kernel(24, odd[0].weight) is None
    xf = torch.randn(7, 16, requires_grad=True)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with feed_forward.disabled():
                plain = odd(xf)
            monkeypatch.setattr(feed_forward, "FFN_CHUNK_ROWS", 7)
            assert torch.equal(odd(xf), plain)
            monkeypatch.setattr(feed_forward, "FFN_CHUNK_ROWS", 5)
            torch.testing.assert_close(odd(xf), plain)
    finally:
        torch.set_num_threads(before)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gelu_tokens_is_the_embeddings_bias_transpose_and_gelu(dtype):
    """fused.gelu_tokens against PyTorch's operations (disabled()): values and both gradients to float
    rounding; float64 passes gradcheck."""
    torch.manual_seed(24)
    t = (torch.randn(12, 700, 16, dtype=dtype) * 2).requires_grad_()
    b = torch.randn(12, 16, dtype=dtype, requires_grad=True)
    grad = torch.randn(700, 12, 16, dtype=dtype)
    results = []
    for off in (False, True):
        t.grad = b.grad = None
        with feed_forward.disabled() if off else contextlib.nullcontext():
            out = feed_forward.gelu_tokens(t, b)
            assert ("_GeluTokensBackward" in _graph_nodes(out)) != off
        out.backward(grad)
        results.append([out.detach(), t.grad, b.grad])
    tol = {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    for ours, theirs in zip(*results):
        assert ours.shape == theirs.shape and ours.is_contiguous()
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol * 10)
    if dtype == torch.float64:
        small_t = torch.randn(3, 5, 16, dtype=dtype, requires_grad=True)
        small_b = torch.randn(3, 16, dtype=dtype, requires_grad=True)
        assert torch.autograd.gradcheck(feed_forward.gelu_tokens, (small_t, small_b))


@pytest.mark.parametrize("n_features", [12, 15])
def test_torch_compile_traces_the_etn_on_a_cpu_in_one_graph(n_features):
    """Under `torch.compile` the attention models take PyTorch's operations (the kernel library's have no
    fake-tensor rules, and oneDNN's availability check and the CPU dropout's generator calls would break the
    graph): one graph (fullgraph), training runs, and the compiled scores are the eager ones."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_model("etn", n_features)
    x = torch.randn(64, n_features)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    model.train()
    compiled(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)
    torch._dynamo.reset()
