"""Which library computes fp32 matmuls on the CPU: an explicit, checked choice.

torch's MKL does not use AVX-512 on AMD CPUs; oneDNN inside the same torch does (about 2x on
this machine class, design/performance.md). `torch.backends.mkldnn.matmul.fp32_precision = "bf16"`
routes fp32 matmuls to oneDNN. On CPUs without AMX oneDNN still computes exact fp32; on CPUs
with AMX it may really compute in bf16. So `onednn` is only taken after a probe shows fp32-exact
results, and `auto` falls back to `ieee` (torch's default) where it does not.
"""

from __future__ import annotations

from typing import Literal

import torch

MatmulMode = Literal["auto", "ieee", "onednn"]

# fp32 GEMM of this size has relative error ~1e-7..1e-6; bf16 inputs give ~4e-3.
_EXACT_TOLERANCE = 1e-5


def probe_relative_error() -> float:
    """Relative error of a 256x512x512 fp32 matmul against float64, under current settings."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 512, generator=g)
    b = torch.randn(512, 512, generator=g)
    exact = a.double() @ b.double()
    return float((torch.addmm(torch.zeros(512), a, b).double() - exact).norm() / exact.norm())


def configure_matmul(mode: MatmulMode = "auto") -> str:
    """Select the fp32 matmul path; returns the mode in effect ('ieee' or 'onednn')."""
    if mode not in ("auto", "ieee", "onednn"):
        raise ValueError(f"matmul={mode!r}: must be 'auto', 'ieee' or 'onednn'")
    mkldnn = torch.backends.mkldnn
    if mode == "ieee" or not mkldnn.is_available():
        if mode == "onednn":
            raise RuntimeError("matmul='onednn': this torch build has no oneDNN (mkldnn)")
        mkldnn.matmul.fp32_precision = "ieee"
        return "ieee"
    mkldnn.matmul.fp32_precision = "bf16"
    error = probe_relative_error()
    if error <= _EXACT_TOLERANCE:
        return "onednn"
    mkldnn.matmul.fp32_precision = "ieee"
    if mode == "onednn":
        raise RuntimeError(
            f"matmul='onednn' would compute in reduced precision on this CPU (relative error "
            f"{error:.1e}, AMX bf16?); use 'ieee' or 'auto'")
    return "ieee"


def current_matmul() -> str:
    """The fp32 matmul path in effect now."""
    return "onednn" if torch.backends.mkldnn.matmul.fp32_precision == "bf16" else "ieee"


CudaMatmulPrecision = Literal["fp32", "tf32"]


def configure_cuda_matmul(precision: CudaMatmulPrecision, device: torch.device) -> None:
    """CUDA fp32 matmuls in exact IEEE fp32 or on TF32 tensor cores; refuses TF32 off CUDA."""
    if precision not in ("fp32", "tf32"):
        raise ValueError(f"matmul_precision={precision!r}: must be 'fp32' or 'tf32'")
    if device.type != "cuda":
        if precision == "tf32":
            raise ValueError(f"matmul_precision='tf32' has no effect on device {device}: TF32 "
                             "is a CUDA tensor-core format; use 'fp32'")
        return
    # The per-backend API (as for oneDNN above): it leaves the CPU's setting alone.
    torch.backends.cuda.matmul.fp32_precision = "tf32" if precision == "tf32" else "ieee"


def current_cuda_matmul() -> str:
    """The CUDA fp32 matmul precision in effect now."""
    return "tf32" if torch.backends.cuda.matmul.fp32_precision == "tf32" else "fp32"
