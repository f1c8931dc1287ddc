"""The hardware a run uses: its device, the compute dtype that suits it, and peak GPU memory for the metrics."""
from __future__ import annotations

import torch

from .params import Model


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def peak_gpu_memory() -> dict[str, float]:
    """The CUDA allocator's peak since the process started, for the metrics; empty on CPU."""
    if not torch.cuda.is_available():
        return {}
    return {"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}


def compute_dtype(model: Model) -> torch.dtype:
    if model.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, model.dtype)
