"""Device and numeric-precision choices, made once and printed, never fixed at import time."""
from __future__ import annotations

import contextlib
import functools

import torch

from . import settings

PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def resolve_device(device="auto") -> torch.device:
    """"auto" picks CUDA, then Apple's MPS, then the CPU; anything else is passed to `torch.device`."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e


#: oneDNN's ISA names (``ONEDNN_MAX_CPU_ISA``) that include native bfloat16 dot products
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                     "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT")


def cpu_limited_to_avx2() -> bool:
    """True when this process runs as on an AVX2-only CPU: ``CIFARKIT_CPU=avx2`` (see
    `cifarkit.settings.cpu_mode`), or torch's own switches ask for it (``ATEN_CPU_CAPABILITY`` below
    avx512, or ``ONEDNN_MAX_CPU_ISA`` below AVX512_CORE_BF16), whatever the hardware has."""
    if settings.cpu_mode() == "avx2":
        return True
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return True  # ATen's kernels stop at AVX2, or the CPU has no AVX-512 at all
    isa = settings.onednn_max_isa()
    return isa is not None and isa not in _ONEDNN_BF16_ISAS


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), where autocast pays off,
    and this process may use it (not limited to AVX2: `cpu_limited_to_avx2`). Cached; tests that
    change the environment clear it with ``cpu_has_fast_bf16.cache_clear()``."""
    if not getattr(torch.backends.mkldnn, "is_available", lambda: False)() or cpu_limited_to_avx2():
        return False
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, name, None)
        if fn is not None and fn():
            return True
    return False


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The (major, minor) compute capability of a CUDA device, e.g. (7, 5) for a T4."""
    return tuple(torch.cuda.get_device_capability(device))


def cuda_dtype(device: torch.device) -> torch.dtype:
    """The reduced precision a CUDA GPU computes fastest: bfloat16 from compute capability 8.0
    (Ampere: A100, RTX 30xx, L4, H100), float16 on 7.x (Volta and Turing: V100, T4, RTX 20xx; their
    tensor cores have no bf16), float32 below. ``torch.cuda.is_bf16_supported()`` is no guide: it
    also answers True where bf16 is only emulated, as on a T4."""
    major, _ = cuda_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16 if major >= 7 else torch.float32


def resolve_precision(precision="auto", device: torch.device | str = "cpu") -> str:
    """Map "auto" to the fastest safe choice for `device`: on a GPU "bf16-mixed" from compute
    capability 8.0, "16-mixed" (float16 with a gradient scaler) on 7.x, "32" below (`cuda_dtype`);
    on a CPU "bf16-mixed" where bfloat16 is native (`cpu_has_fast_bf16`), else "32"."""
    device = resolve_device(device)
    aliases = {"32": "32", "fp32": "32", 32: "32", "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed",
               "16": "16-mixed", "fp16": "16-mixed", 16: "16-mixed", "16-mixed": "16-mixed"}
    if precision in (None, "auto"):
        if device.type == "cuda":
            return {torch.bfloat16: "bf16-mixed", torch.float16: "16-mixed"}.get(cuda_dtype(device), "32")
        if device.type == "cpu":
            return "bf16-mixed" if cpu_has_fast_bf16() else "32"
        return "32"
    if precision not in aliases:
        raise ValueError(f"unknown precision {precision!r}: use 'auto', '32', 'bf16-mixed' or '16-mixed'")
    resolved = aliases[precision]
    if resolved == "16-mixed" and device.type == "cpu":
        raise ValueError("precision '16-mixed' needs a GPU; on a CPU use 'bf16-mixed' or '32'")
    return resolved


def use_channels_last(precision: str, device: torch.device, model=None, requested: bool | None = None) -> bool:
    """Whether to run `model` with channels-last tensors: `requested` when True or False; on a GPU,
    with autocast (the tensor cores want it); on a CPU, the model's ``channels_last`` attribute when
    it has one, else always (oneDNN's fast convolutions are channels-last ones)."""
    if requested is not None:
        return bool(requested)
    if device.type != "cpu":
        return precision != "32"
    preference = getattr(model, "channels_last", None)
    return preference if isinstance(preference, bool) else True


def autocast(precision: str, device: torch.device):
    """The autocast context for a resolved precision (a no-op context for "32")."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe(device: torch.device, precision: str) -> str:
    """One line naming the hardware and precision, for logs and result files."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        mode = ", AVX2 mode" if settings.cpu_mode() == "avx2" else ""
        name = f"CPU ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}{mode})"
    else:
        name = device.type
    return f"{name}, precision {precision}"
