"""What the machine does fast: decides where bf16 is worth using (training, the encoder's analysis)."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def _cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def bf16_is_fast(device_type: str) -> bool:
    """bf16 autocast pays off on GPUs and on CPUs with AMX/AVX512-BF16; elsewhere it is
    emulated and measured here (AMD EPYC Zen 3, AVX2 only) 10-60x slower than float32."""
    return device_type == "cuda" or (device_type == "cpu" and _cpu_has_fast_bf16())
