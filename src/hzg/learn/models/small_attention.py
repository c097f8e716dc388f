"""Multi-head attention for many events with a few tokens each, as a compiled CPU kernel
(csrc/small_attention.cpp).

PyTorch's fused CPU attention (`scaled_dot_product_attention`) pays a fixed cost per (event, head) that
dwarfs the
arithmetic at the ETN's sizes (12-16 tokens, 4 heads of 4 dimensions): forward + backward of one attention
layer for
8192 events take about 65 ms on 2 cores. The kernel here computes 8 events side by side in the lanes of AVX2
vector
registers (4 in SSE2 registers on CPUs without AVX2) and takes about 17 ms; results agree with PyTorch's to
float
rounding (tested), and do not depend on the number of threads.

Dropout on the attention weights (`nn.MultiheadAttention(dropout=p)` in training) is computed in the kernel
too: the
weights used are m_ij p_ij / (1 - p) with a keep mask m. The mask is a counter-based random function (a keyed
integer
hash, see `dropout_keep_mask`) of one 64-bit seed per call, drawn from torch's default generator (so
`torch.manual_seed` fixes it and a checkpoint's RNG
state resumes it), and of each weight's index in the (batch, heads, Tq, Tk) layout: it does not depend on the
number
of threads or the CPU, and `dropout_keep_mask` computes the same mask in numpy (tested). Drawing the mask
with torch's
generator instead (as `hzg.learn.models.dropout` does) would take about 35 ms per attention layer and batch
of 8192 events,
more than the attention itself. The drop probability is round(p 2^31) / 2^31 (p to within 2^-32, as in
`hzg.learn.models.dropout`), and kept weights are scaled by the inverse of one minus it.

It is compiled on first use with `torch.utils.cpp_extension` (a C++ compiler and ninja are needed; about 12 s,
then cached in TORCH_EXTENSIONS_DIR, ~/.cache/torch_extensions by default). The build directory is named by a
hash of the kernel's source, flags, torch version and environment (compiler, torch installation, Python
headers: `build_name`), and compiled from a copy of the source named the same way, so two checkouts (any
paths) in one environment share one build, different versions never relink each other's, and jobs in
different environments (each rule's conda env on a cluster) do not rebuild each other's. Concurrent jobs
take turns through an flock on a file beside the build directory (`build_lock`): the kernel releases it when
its holder dies, however it dies, so a killed build never blocks the next; whoever holds it removes torch's
own `lock` file left by a killed job (torch would wait on it forever). A job waits at most
BUILD_WAIT_SECONDS (environment variable HZG_SMALL_ATTENTION_WAIT) for another's build, then falls back with
a warning. Where it cannot be built, for tensors off the CPU (CUDA has fused kernels that do well), for
dtypes other than float32/float64, or with the environment variable HZG_SMALL_ATTENTION=0, callers fall
back to PyTorch's attention; a failed build is logged once as a warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hzg import io

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "small_attention.cpp"
ENV_SWITCH = "HZG_SMALL_ATTENTION"
DTYPES = (torch.float32, torch.float64)
#: Longest wait for another job's build of the kernel (a build takes about 12 s); then PyTorch's attention
#: is used.
BUILD_WAIT_SECONDS = 900.0
WAIT_ENV = "HZG_SMALL_ATTENTION_WAIT"


def build_flags(capability: str) -> tuple[str, list[str]]:
    """Extension name and compiler flags for torch's CPU capability string ("DEFAULT", "AVX2", "AVX512",
    ...)."""
    common = ["-O3", "-fopenmp"]  # OpenMP: at::parallel_for splits events over torch's intra-op threads
    avx2 = ["-mavx2", "-mfma", "-DSMALL_ATTENTION_LANES=8"]
    if capability == "AVX512":  # the attention's 8 lanes as with AVX2, the GELU kernels' 16 in one register
        return "hzg_small_attention_avx512", common + avx2 + ["-mavx512f"]
    if capability == "AVX2":
        return "hzg_small_attention_avx2", common + avx2
    return "hzg_small_attention_base", common + ["-DSMALL_ATTENTION_LANES=4"]


def _put_ninja_on_path() -> None:
    """torch's builder runs `ninja` from PATH; a venv used without activation has pip's ninja off PATH."""
    if shutil.which("ninja") is None:
        try:
            import ninja
        except ImportError:
            return
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def build_environment() -> list[str]:
    """What torch's builder writes into the build's commands besides the source and the flags: the compiler,
    the torch installation (its headers and libraries) and Python's headers. Each environment (a venv, each
    rule's conda env) gets its own build: with one shared build directory, ninja sees other commands and
    rebuilds whenever a job of another environment loads the kernel (16 s a time, one job at a time under
    the build lock)."""
    return [
        os.environ.get("CXX", "c++"),
        str(Path(torch.__file__).resolve().parent),
        sysconfig.get_paths()["include"],
    ]


def build_name(capability: str, source: bytes | None = None) -> tuple[str, list[str]]:
    """Extension name (`build_flags`' name plus a hash of the source, the flags, torch's version and the
    `build_environment`) and flags."""
    name, flags = build_flags(capability)
    digest = hashlib.sha256(SOURCE.read_bytes() if source is None else source)
    digest.update("\0".join([*flags, torch.__version__, *build_environment()]).encode())
    return f"{name}_{digest.hexdigest()[:12]}", flags


class BuildLockTimeout(TimeoutError):
    """Another job held the build lock for longer than the wait allowed."""


@contextlib.contextmanager
def build_lock(build_directory: Path, wait_s: float, poll_s: float = 0.5) -> Iterator[None]:
    """Hold an exclusive flock on `<build_directory>.lock` (released by the kernel if the holder dies); wait
    at most
    `wait_s` for it, then raise BuildLockTimeout. Inside, torch's own `lock` file in the build directory,
    which
    only a killed build can have left (every builder holds this flock), is removed."""
    build_directory = Path(build_directory)
    build_directory.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(build_directory.with_name(build_directory.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BuildLockTimeout(
                        f"another job has been building the kernel in {build_directory} for more "
                        f"than {wait_s:.0f} s"
                    ) from None
                time.sleep(poll_s)
            except OSError as err:  # a filesystem without flock: torch's own lock is all there is
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                log.warning(
                    "no flock on %s (%s): concurrent builds rely on torch's lock", build_directory, err
                )
                yield
                return
        stale = build_directory / "lock"
        if stale.exists():
            log.warning("removing %s, left by a build that was killed", stale)
            stale.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # releases the flock


def _source_copy(root: Path, name: str) -> Path:
    """The kernel's source copied to `<root>/<name>.cpp` (content-addressed: the same path from every
    checkout)."""
    copy = root / f"{name}.cpp"
    if not copy.exists() or copy.read_bytes() != SOURCE.read_bytes():
        with io.atomic_path(copy) as tmp:
            shutil.copyfile(SOURCE, tmp)
    return copy


@functools.cache
def extension() -> Any | None:
    """The compiled kernel's operators (torch.ops.<name>: .forward, .backward, .layer_norm), built on first
    call; None where it is switched off or cannot be built."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    name, flags = build_name(torch.backends.cpu.get_cpu_capability())
    try:
        from torch.utils.cpp_extension import _get_build_directory, load

        _put_ninja_on_path()
        build_directory = Path(_get_build_directory(name, verbose=False))
        with build_lock(build_directory, float(os.environ.get(WAIT_ENV, BUILD_WAIT_SECONDS))):
            source = _source_copy(build_directory.parent, name)
            log.info("loading the small-attention CPU kernel %s (compiled on first use, about 12 s)", name)
            load(
                name=name,
                sources=[str(source)],
                extra_cflags=flags,
                build_directory=str(build_directory),
                verbose=False,
                is_python_module=False,  # loaded with torch.ops.load_library: operators, no pybind11
            )
            return getattr(torch.ops, name)
    except Exception as err:  # no compiler, no ninja, a failed build, a build lock held too long
        log.warning(
            "small-attention CPU kernel not built (%s: %s); using PyTorch's attention instead",
            type(err).__name__,
            str(err).strip().splitlines()[-1] if str(err).strip() else "",
        )
        return None


def cpu_tensors(*tensors: torch.Tensor) -> bool:
    """Whether these are tensors the kernel library takes: CPU, float32/float64, not `torch.func.vmap`
    batches, and not while `torch.compile` traces (its operators have no fake-tensor rules: a compiled model
    takes PyTorch's operations, which the compiler fuses itself)."""
    return not torch.compiler.is_compiling() and all(
        t.device.type == "cpu" and t.dtype in DTYPES and not torch._C._functorch.is_batchedtensor(t)
        for t in tensors
    )


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernel can compute attention on these tensors (`cpu_tensors`, kernel built)."""
    return cpu_tensors(*tensors) and extension() is not None


#: bits of the uniform integer each attention weight's keep decision compares with round(p 2^31)
_BITS = 31
_LOWBIAS32 = (0x7FEB352D, 0x846CA68B)  # the multipliers of Wellons' lowbias32 integer hash


def _lowbias32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(_LOWBIAS32[0])
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(_LOWBIAS32[1])
    return x ^ (x >> np.uint32(16))


def dropout_threshold(p: float) -> tuple[int, float]:
    """The kernel's integer threshold for attention dropout p, and the drop probability it gives (p to
    2^-32)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
    threshold = min(round(p * 2**_BITS), 2**_BITS - 1)
    return threshold, threshold / 2**_BITS


def draw_seed() -> int:
    """A 63-bit seed for one call's dropout mask, from torch's default generator."""
    return int(torch.empty((), dtype=torch.int64).random_())


def kernel_seed(seed: int | None) -> int:
    """`seed` (any integer; None: one `draw_seed`) as the kernel's signed 64-bit integer (same 64 bits)."""
    return ((draw_seed() if seed is None else seed) + 2**63) % 2**64 - 2**63


def dropout_keep_mask(
    seed: int, batch: int, heads: int, tq: int, tk: int, p: float
) -> tuple[torch.Tensor, float]:
    """The kernel's attention-dropout keep mask (batch, heads, tq, tk) for `seed`, and its drop probability.

    Weight n (row-major index in that shape, < 2^32) is kept where x >> 1 >= `dropout_threshold(p)` for
    x = h(h(n ^ key0) ^ key1), h the lowbias32 hash and key0, key1 the low and high 32 bits of the seed: two
    rounds
    of a 32-bit hash, 31 random bits per weight. Computed here in numpy, for tests and checks.
    """
    threshold, p_drop = dropout_threshold(p)
    seed %= 2**64
    n = np.arange(batch * heads * tq * tk, dtype=np.uint64)
    if n.size and n[-1] >= 2**32:
        raise ValueError("attention dropout needs fewer than 2^32 attention weights per call")
    x = _lowbias32(n.astype(np.uint32) ^ np.uint32(seed & 0xFFFFFFFF))
    x = _lowbias32(x ^ np.uint32(seed >> 32))
    keep = (x >> np.uint32(32 - _BITS)) >= np.uint32(threshold)
    return torch.from_numpy(keep.reshape(batch, heads, tq, tk)), p_drop


class _SmallAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, seed: int, threshold: int
    ) -> torch.Tensor:
        out, probs = extension().forward(q, k, v, heads, any(ctx.needs_input_grad[:3]), seed, threshold)
        ctx.save_for_backward(q, k, v, probs)
        ctx.heads, ctx.threshold = heads, threshold
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, probs = ctx.saved_tensors
        dq, dk, dv = extension().backward(grad, q, k, v, probs, ctx.heads, ctx.threshold)
        return dq, dk, dv, None, None, None


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    dropout: float = 0.0,
    seed: int | None = None,
) -> torch.Tensor:
    """softmax(q_h k_h^T / sqrt(d_h)) v_h for every head h, heads side by side: q (B, Tq, E), k, v (B, Tk, E)
    -> (B, Tq, E).

    Same result as `scaled_dot_product_attention` on the heads split out of E (no mask). With `dropout` > 0
    the
    attention weights are dropped with that probability and the rest scaled up, as in training-mode
    `nn.MultiheadAttention(dropout=...)`; the mask is `dropout_keep_mask(seed, ...)`, `seed` drawn from
    torch's
    default generator when not given. Needs `usable`.
    """
    if q.shape[-1] % heads:
        raise ValueError(f"small attention: embedding size {q.shape[-1]} is not divisible by {heads} heads")
    threshold, _ = dropout_threshold(dropout)
    seed = kernel_seed(seed) if threshold or seed is not None else 0
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    return _SmallAttention.apply(q, k, v, heads, seed, threshold)
