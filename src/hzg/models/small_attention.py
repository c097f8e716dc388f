"""Multi-head attention for many events with a few tokens each, as a compiled CPU kernel (csrc/small_attention.cpp).

PyTorch's fused CPU attention (`scaled_dot_product_attention`) pays a fixed cost per (event, head) that dwarfs the
arithmetic at the ETN's sizes (12-16 tokens, 4 heads of 4 dimensions): forward + backward of one attention layer for
8192 events take about 65 ms on 2 cores. The kernel here computes 8 events side by side in the lanes of AVX2 vector
registers (4 in SSE2 registers on CPUs without AVX2) and takes about 17 ms; results agree with PyTorch's to float
rounding (tested), and do not depend on the number of threads.

It is compiled on first use with `torch.utils.cpp_extension` (a C++ compiler and ninja are needed; about 30 s,
then cached in TORCH_EXTENSIONS_DIR, ~/.cache/torch_extensions by default, and shared by concurrent jobs through
torch's build lock; a lock older than STALE_LOCK_SECONDS, left by a job killed while building, is removed, as torch
would wait on it forever). Where it cannot be built, for tensors off the CPU (CUDA has fused kernels that do well), for
dtypes other than float32/float64, or with the environment variable HZG_SMALL_ATTENTION=0, callers fall back to
PyTorch's attention; a failed build is logged once as a warning.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "small_attention.cpp"
ENV_SWITCH = "HZG_SMALL_ATTENTION"
DTYPES = (torch.float32, torch.float64)
#: A build takes about 30 s; a build lock older than this was left by a killed job (torch would wait forever).
STALE_LOCK_SECONDS = 600


def build_flags(capability: str) -> tuple[str, list[str]]:
    """Extension name and compiler flags for torch's CPU capability string ("DEFAULT", "AVX2", "AVX512", ...)."""
    common = ["-O3", "-fopenmp"]  # OpenMP: at::parallel_for splits events over torch's intra-op threads
    if capability in ("AVX2", "AVX512"):
        return "hzg_small_attention_avx2", common + ["-mavx2", "-mfma", "-DSMALL_ATTENTION_LANES=8"]
    return "hzg_small_attention_base", common + ["-DSMALL_ATTENTION_LANES=4"]


def _put_ninja_on_path() -> None:
    """torch's builder runs `ninja` from PATH; a venv used without activation has pip's ninja off PATH."""
    if shutil.which("ninja") is None:
        try:
            import ninja
        except ImportError:
            return
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def clear_build_lock(build_directory: Path, max_age_s: float = STALE_LOCK_SECONDS, poll_s: float = 1.0) -> bool:
    """Wait while another job builds (its lock is there), deleting the lock once it is older than max_age_s:
    then a killed job left it. True if a lock was deleted."""
    lock = Path(build_directory) / "lock"
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return False
        if age > max_age_s:
            log.warning("removing the stale build lock %s (%.0f s old, left by an interrupted build)", lock, age)
            lock.unlink(missing_ok=True)
            return True
        time.sleep(poll_s)


@functools.cache
def extension() -> ModuleType | None:
    """The compiled kernel, built on first call; None where it is switched off or cannot be built."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    name, flags = build_flags(torch.backends.cpu.get_cpu_capability())
    try:
        from torch.utils.cpp_extension import _get_build_directory, load

        _put_ninja_on_path()
        clear_build_lock(Path(_get_build_directory(name, verbose=False)))
        log.info("loading the small-attention CPU kernel %s (compiled on first use, about 30 s)", name)
        return load(name=name, sources=[str(SOURCE)], extra_cflags=flags, verbose=False)
    except Exception as err:  # no compiler, no ninja, a failed build: PyTorch's attention still works
        log.warning("small-attention CPU kernel not built (%s: %s); using PyTorch's attention instead",
                    type(err).__name__, str(err).strip().splitlines()[-1] if str(err).strip() else "")
        return None


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernel can compute attention on these tensors (CPU, float32/float64, kernel built)."""
    return all(t.device.type == "cpu" and t.dtype in DTYPES for t in tensors) and extension() is not None


class _SmallAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
        out, probs = extension().forward(q, k, v, heads, any(ctx.needs_input_grad[:3]))
        ctx.save_for_backward(q, k, v, probs)
        ctx.heads = heads
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        q, k, v, probs = ctx.saved_tensors
        dq, dk, dv = extension().backward(grad, q, k, v, probs, ctx.heads)
        return dq, dk, dv, None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q_h k_h^T / sqrt(d_h)) v_h for every head h, heads side by side: q (B, Tq, E), k, v (B, Tk, E) -> (B, Tq, E).

    Same result as `scaled_dot_product_attention` on the heads split out of E (no mask, no dropout). Needs `usable`.
    """
    if q.shape[-1] % heads:
        raise ValueError(f"small attention: embedding size {q.shape[-1]} is not divisible by {heads} heads")
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    return _SmallAttention.apply(q, k, v, heads)
