"""GPUs for parallel experiments: DVC's queue (`dvc queue start -j 2`) does not assign GPUs, so each stage
that uses one claims free GPUs itself, through lock files every run on the machine shares, and makes them the
only ones CUDA sees. Called by the stage scripts before anything starts CUDA, which reads
CUDA_VISIBLE_DEVICES once.

The hardware a run uses: its device, the compute dtype that suits it, and peak GPU memory for the metrics.
Those functions import torch themselves: claim() runs before anything imports it."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .params import Model

if TYPE_CHECKING:
    import torch

LOCKS = "/tmp/llmclf-gpus"  # machine-wide, so every user's runs take the same locks; LLMCLF_GPU_LOCKS overrides
POLL_SECONDS = 5.0


def gpu_count() -> int:
    """The machine's GPUs, from `nvidia-smi -L`. Not torch: where NVML fails its count starts CUDA, and the
    GPUs visible to this process would be fixed before they were chosen."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def claim(processes: int = 1) -> list[int]:
    """Lock `processes` GPUs no other run holds (waiting while there are not enough free) for this process's
    life, its exec'd successor's and its children's (DDP workers), set CUDA_VISIBLE_DEVICES to them, and
    the CPU thread pools to a process's share of the cores (`share_cores`).
    Nothing to choose where CUDA_VISIBLE_DEVICES is set (the user's choice), under a launcher (LOCAL_RANK:
    the launching process claimed), with fewer than two GPUs (runs share the one), or with fewer GPUs than
    processes (`train.num_processes` reports that)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ or "LOCAL_RANK" in os.environ:
        return []
    total = gpu_count()
    if total < 2 or processes > total:
        return []
    folder = Path(os.environ.get("LLMCLF_GPU_LOCKS", LOCKS))
    try:
        folder.mkdir(parents=True)
        folder.chmod(0o1777)  # other users' runs create their lock files here too
    except FileExistsError:
        pass
    waited = False
    while not (gpus := _lock_free(folder, total, processes)):
        if not waited:
            print(f"gpus: all {total} GPUs are held by other runs (locks in {folder}); waiting for {processes}",
                  file=sys.stderr, flush=True)
            waited = True
        time.sleep(POLL_SECONDS)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    threads = share_cores(total)
    print(f"gpus: GPU {os.environ['CUDA_VISIBLE_DEVICES']} of {total}, {threads} CPU threads a process",
          file=sys.stderr, flush=True)
    return gpus


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")  # torch's, MKL's and OpenBLAS's pools


def share_cores(total_gpus: int) -> int:
    """Give each process (one a GPU) its share of the CPU cores: runs side by side would otherwise each
    start one thread per core, and the oversubscribed cores slow the CPU-side work of all of them (the
    TF-IDF baseline's search, model loading). Set before torch or numpy is imported, which read these
    once; OMP_NUM_THREADS set by the user wins. Returns the threads a process gets."""
    if "OMP_NUM_THREADS" in os.environ:
        return int(os.environ["OMP_NUM_THREADS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // total_gpus)
    for var in THREAD_VARS:
        os.environ.setdefault(var, str(threads))
    return threads


def _lock_free(folder: Path, total: int, n: int) -> list[int]:
    """n GPUs locked, or none: locks taken short of n are given back, so two waiting runs never each hold
    part of what the other needs."""
    held: dict[int, int] = {}
    for gpu in range(total):
        fd = os.open(folder / f"gpu{gpu}.lock", os.O_RDONLY | os.O_CREAT, 0o666)  # flock needs no write access
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        held[gpu] = fd
        if len(held) == n:
            for fd in held.values():  # never closed: the kernel lets go when the process and its children end
                os.set_inheritable(fd, True)  # kept across train's relaunch under `accelerate launch`
            return list(held)
    for fd in held.values():
        os.close(fd)
    return []


def default_device() -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def peak_gpu_memory() -> dict[str, float]:
    """The CUDA allocator's peak since the process started, for the metrics; empty on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}


def compute_dtype(model: Model) -> torch.dtype:
    import torch

    if model.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, model.dtype)
