"""What the machine does fast: decides where bf16 is worth using (training and the encoder's
analysis; the decoder stays float32, see docs/performance.md, session 20), and which weight
layout the exact path's small GEMMs prefer."""

from __future__ import annotations

import functools
import os
from pathlib import Path

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which its bf16 kernels still use the bf16 instructions
_BF16_ISA_CAPS = ("ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                  "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16")


@functools.cache
def _cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return ("amx_bf16" in flags or "avx512_bf16" in flags) and _kernels_may_use_bf16()


def _kernels_may_use_bf16() -> bool:
    """Whether torch may use the CPU's bf16 instructions: a process can cap its kernels below
    the CPU (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA), as the determinism check does to stand in
    for another machine, and then bf16 is emulated (capped to AVX2, g_s with two layers in bf16
    took 21.8 s on a Kodak image here, against 0.74 s in float32)."""
    import torch

    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL"
    return cap.strip().upper() in _BF16_ISA_CAPS


def bf16_is_fast(device_type: str) -> bool:
    """bf16 pays off on GPUs and on CPUs with AMX/AVX512-BF16 that torch may use; elsewhere it
    is emulated and measured here (AMD EPYC Zen 3, AVX2 only) 10-60x slower than float32."""
    return device_type == "cuda" or (device_type == "cpu" and _cpu_has_fast_bf16())


@functools.cache
def blas_prefers_transposed_weights() -> bool:
    """Whether ``x @ w.T`` runs faster with ``w`` stored (in, out) than (out, in) on this CPU.

    MKL takes its Intel code path on Intel CPUs, and there the exact path's per-wavefront
    GEMMs (about a dozen rows) ran faster on (in, out) weights: 818 against 1,000 us for its
    eight layers at 12 rows (session 20, Xeon with AMX). On AMD CPUs MKL runs a generic path,
    where the same layout was slower (2.19 against 1.70 ms, session 16), so they keep (out, in).
    """
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
